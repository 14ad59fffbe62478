// Parsing of a received frame: Ethernet, up to two 802.1Q/802.1ad tags, ARP,
// IPv4 (with options), IPv6 (following extension headers), TCP, UDP, ICMP and
// ICMPv6. Works on plain bytes, with no EAL, so that unit tests and the fuzzer
// drive it directly (glb-director's habit). Every length is checked before it
// is read: a frame that fails a check is reported with its DropReason and
// nothing past `length` is ever touched.
#pragma once

#include <cstdint>

#include "dataplane/drop_reason.h"

namespace sluice {

enum class NetworkLayer : uint8_t { other, arp, ipv4, ipv6 };

namespace ether_type {
constexpr uint16_t ipv4 = 0x0800;
constexpr uint16_t arp = 0x0806;
constexpr uint16_t vlan = 0x8100;
constexpr uint16_t qinq = 0x88a8;
constexpr uint16_t ipv6 = 0x86dd;
} // namespace ether_type

namespace ip_proto {
constexpr uint8_t hop_by_hop = 0;
constexpr uint8_t icmp = 1;
constexpr uint8_t tcp = 6;
constexpr uint8_t udp = 17;
constexpr uint8_t ipv6_routing = 43;
constexpr uint8_t ipv6_fragment = 44;
constexpr uint8_t ah = 51;
constexpr uint8_t icmpv6 = 58;
constexpr uint8_t ipv6_no_next = 59;
constexpr uint8_t ipv6_dest_options = 60;
} // namespace ip_proto

// TCP header flags (RFC 9293 3.1), in byte 13 of the header.
namespace tcp_flag {
constexpr uint8_t fin = 0x01;
constexpr uint8_t syn = 0x02;
constexpr uint8_t rst = 0x04;
constexpr uint8_t ack = 0x10;
} // namespace tcp_flag

// Offsets are from the start of the frame.
struct ParsedPacket {
    NetworkLayer network = NetworkLayer::other;
    uint8_t vlan_count = 0;
    uint16_t ether_type = 0;    // after any VLAN tags
    uint16_t l3_offset = 0;     // ARP or IP header
    uint16_t l3_header_length = 0;  // IPv4 header with options; IPv6 with extensions
    uint16_t l3_end = 0;        // end of the IP packet (frames may carry padding)
    uint8_t l4_protocol = 0;    // IPv4 protocol or the last IPv6 next header
    bool fragment = false;      // part of a fragmented datagram
    uint32_t fragment_id = 0;   // its IPv4 or IPv6 identification, when `fragment`
    bool has_l4 = false;        // an L4 header was found and checked
    uint16_t l4_offset = 0;
    uint16_t l4_length = 0;     // bytes from l4_offset to l3_end

    uint16_t l3_payload_length() const { return uint16_t(l3_end - l4_offset); }
};

// Returns DropReason::none when the frame is well formed, and fills `out`.
// IPv4 header checksums are verified unless the NIC already did.
DropReason parse_packet(const uint8_t *frame, uint32_t length, ParsedPacket &out,
                        bool ipv4_checksum_verified = false);

} // namespace sluice
