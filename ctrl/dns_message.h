// What the DNS SRV feed reads from a DNS response (RFC 1035 section 4.1):
// the SRV, A and AAAA records of its answer section with their TTLs, and the
// negative-caching TTL of an SOA in its authority section (RFC 2308 section 5).
// c-ares sends the queries and matches the answers to them; this reads the
// answers, because c-ares 1.18's own SRV parser drops the TTLs the feed
// refreshes by. The input is untrusted bytes from the network: every read is
// bounds-checked, and compression pointers must point backwards, so a loop
// of them cannot hang it (tests/fuzz/dns_answer_fuzz.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dataplane/net_addr.h"

namespace sluice::ctrl {

// RFC 2782: a service's host and port, and the record's place among its peers.
struct DnsSrvRecord {
    uint16_t priority = 0;
    uint16_t weight = 0;
    uint16_t port = 0;
    // Lowercase, without the final dot; "." for the root ("decidedly not
    // available", RFC 2782).
    std::string target;
    uint32_t ttl = 0;

    bool operator==(const DnsSrvRecord &) const = default;
};

struct DnsAddressRecord {
    IpAddress address;
    uint32_t ttl = 0;

    bool operator==(const DnsAddressRecord &) const = default;
};

struct DnsAnswer {
    uint8_t rcode = 0;                        // RFC 1035 4.1.1: 0 no error, 2 SERVFAIL, 3 NXDOMAIN
    std::vector<DnsSrvRecord> srv;            // class IN, in the order of the message
    std::vector<DnsAddressRecord> addresses;  // A and AAAA, class IN
    // min(SOA TTL, SOA MINIMUM) over the authority section's SOAs.
    std::optional<uint32_t> negative_ttl;
    // SRV records left out because their target is not a host name (RFC 952 /
    // 1123 letters, digits and hyphens; underscores too), e.g. a label with a
    // dot or a control byte in it, which could not be asked for by name.
    size_t unusable_targets = 0;
};

// Reads `message`. Returns "" with `answer` filled, or why the message is
// malformed ("the answer section runs past the end"), `answer` then
// unspecified. Records of other types and classes are skipped; the
// additional section is not read. TTLs with the top bit set count as 0
// (RFC 2181 section 8).
std::string parse_dns_answer(std::span<const uint8_t> message, DnsAnswer &answer);

} // namespace sluice::ctrl
