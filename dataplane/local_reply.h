// Answers for a port's own addresses, built in place in the received frame:
// ARP replies (RFC 826), ICMP echo replies (RFC 792), ICMPv6 echo replies
// (RFC 4443) and neighbor advertisements (RFC 4861). Plain bytes, no EAL.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "dataplane/drop_reason.h"
#include "dataplane/net_addr.h"
#include "dataplane/packet_parse.h"

namespace sluice {

// What a port answers for. Immutable while workers run.
struct LocalAddresses {
    MacAddress mac;
    std::vector<uint32_t> ipv4;  // network byte order
    std::vector<std::array<uint8_t, 16>> ipv6;

    void add(const IpAddress &address);
    bool owns(const IpAddress &address) const {
        return address.is_v4() ? owns_ipv4(address.bytes.data()) : owns_ipv6(address.bytes.data());
    }
    bool owns_ipv4(const uint8_t *address) const;
    bool owns_ipv6(const uint8_t *address) const;
};

enum class LocalReply : uint8_t {
    not_local,             // not for the gateway itself: forward or hand to the kernel
    arp_reply,
    icmp_echo_reply,
    icmpv6_echo_reply,
    neighbor_advertisement,
    drop,                  // for us, but invalid: `drop_reason` says why
};

// If `frame` asks something of `local`, rewrites it into the answer (the new
// length goes to `length`; it never exceeds `capacity`) and says which answer
// it is. The answer leaves through the port it came in on.
LocalReply answer_local(uint8_t *frame, uint32_t &length, uint32_t capacity,
                        const ParsedPacket &packet, const LocalAddresses &local,
                        DropReason &drop_reason);

} // namespace sluice
