// Encapsulation for direct server return (DSR): the packet travels unchanged
// inside an outer header to the backend, which decapsulates it and answers
// the client directly. IP-in-IP (RFC 2003 for IPv4 in IPv4; RFC 2473 for IPv6
// in IPv6) and GUE (draft-ietf-intarea-gue, variant 0) over UDP. No EAL.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/net_addr.h"

namespace sluice::lb {

constexpr size_t ipip_overhead_v4 = 20;
constexpr size_t ipip_overhead_v6 = 40;
constexpr size_t gue_header_length = 4;
constexpr size_t gue_overhead_v4 = 20 + 8 + gue_header_length;
constexpr size_t gue_overhead_v6 = 40 + 8 + gue_header_length;

// Writes an outer IP header for the inner IP packet of `inner_length` bytes
// into the `ipip_overhead_*` bytes that end where the inner packet starts
// (`outer` points at them). Outer and inner family must match (4in4, 6in6):
// the inner packet's version picks the outer protocol (4 = IPIP, 41 = IPv6).
// The outer TTL/hop limit is `ttl`; the IPv4 outer header gets DF copied from
// the inner header and a correct checksum. Returns the bytes written.
size_t encapsulate_ipip(uint8_t *outer, const uint8_t *inner, uint16_t inner_length,
                        const IpAddress &source, const IpAddress &destination, uint8_t ttl = 64);

// Writes outer IP + UDP + GUE headers (variant 0, no flags, proto/ctype = 4
// or 41 from the inner packet's version). The outer family follows `source`
// and may differ from the inner one. `source_port` carries the flow's entropy
// (callers pass a hash of the inner tuple) so that ECMP and RSS on the way
// spread flows. The UDP checksum is zero over IPv4 and computed over IPv6
// (RFC 8200 8.1). Returns the bytes written.
size_t encapsulate_gue(uint8_t *outer, const uint8_t *inner, uint16_t inner_length,
                       const IpAddress &source, const IpAddress &destination,
                       uint16_t source_port, uint16_t destination_port, uint8_t ttl = 64);

} // namespace sluice::lb
