#include "lb/encap.h"

#include "dataplane/byte_order.h"

#include <cstring>

#include "dataplane/checksum.h"

namespace sluice::lb {

namespace {

constexpr uint8_t protocol_ipv4_in_ip = 4;  // RFC 2003 3
constexpr uint8_t protocol_ipv6 = 41;       // RFC 2473 3
constexpr uint8_t protocol_udp = 17;
constexpr size_t udp_header_length = 8;
constexpr uint32_t max_ip_length = 0xffff;  // no jumbograms (RFC 2675)


// What the outer header takes from the inner one.
struct InnerHeader {
    uint8_t version = 0;
    uint8_t traffic_class = 0;  // IPv4 TOS or IPv6 traffic class: DSCP and ECN
    bool dont_fragment = false;
    uint32_t flow_label = 0;
};

// Reads the inner packet's version and the fields copied outward; refuses
// a packet too short to hold its own IP header.
bool read_inner(const uint8_t *inner, uint16_t length, InnerHeader &out) {
    if (length < 20)
        return false;
    out.version = inner[0] >> 4;
    if (out.version == 4) {
        out.traffic_class = inner[1];
        out.dont_fragment = inner[6] & 0x40;
        return true;
    }
    if (out.version == 6 && length >= 40) {
        out.traffic_class = uint8_t((inner[0] & 0x0f) << 4 | inner[1] >> 4);
        out.flow_label = uint32_t(inner[1] & 0x0f) << 16 | uint32_t(inner[2]) << 8 | inner[3];
        // RFC 8200 5: routers never fragment IPv6, so neither may the outer
        // IPv4 header on its way: too big is reported, not split.
        out.dont_fragment = true;
        return true;
    }
    return false;
}

// RFC 791 3.1, 20 bytes, no options. The identification is 0: the interface
// has no per-tunnel counter to draw from. That is fine for atomic datagrams
// (DF set, RFC 6864 4.1); with DF clear a router that fragments the outer
// packet could mix up fragments of different packets on the same tunnel
// (RFC 6864 4.2). Routers on a DSR tunnel should have the MTU for it.
void write_ipv4_header(uint8_t *header, uint8_t tos, uint16_t total_length,
                       bool dont_fragment, uint8_t ttl, uint8_t protocol,
                       const IpAddress &source, const IpAddress &destination) {
    header[0] = 0x45;
    header[1] = tos;
    write_be16(header + 2, total_length);
    write_be16(header + 4, 0);
    write_be16(header + 6, dont_fragment ? 0x4000 : 0);
    header[8] = ttl;
    header[9] = protocol;
    write_be16(header + 10, 0);
    std::memcpy(header + 12, source.bytes.data(), 4);
    std::memcpy(header + 16, destination.bytes.data(), 4);
    const uint16_t sum = internet_checksum(header, 20);
    std::memcpy(header + 10, &sum, 2);
}

// RFC 8200 3.
void write_ipv6_header(uint8_t *header, uint8_t traffic_class, uint32_t flow_label,
                       uint16_t payload_length, uint8_t next_header, uint8_t hop_limit,
                       const IpAddress &source, const IpAddress &destination) {
    header[0] = uint8_t(0x60 | traffic_class >> 4);
    header[1] = uint8_t(traffic_class << 4 | (flow_label >> 16 & 0x0f));
    header[2] = uint8_t(flow_label >> 8);
    header[3] = uint8_t(flow_label);
    write_be16(header + 4, payload_length);
    header[6] = next_header;
    header[7] = hop_limit;
    std::memcpy(header + 8, source.bytes.data(), 16);
    std::memcpy(header + 24, destination.bytes.data(), 16);
}

} // namespace

// The outer header copies the inner TOS / traffic class whole: DSCP as RFC
// 2003 3.1 and RFC 2473 6.5 allow, and ECN as RFC 6040 4.1's normal mode
// asks. Across families (4in6, 6in4) the caller has made a mistake: the
// IPIP protocol number would not match what the backend decapsulates, so
// nothing is written and 0 returned.
size_t encapsulate_ipip(uint8_t *outer, const uint8_t *inner, uint16_t inner_length,
                        const IpAddress &source, const IpAddress &destination, uint8_t ttl) {
    InnerHeader header;
    if (!read_inner(inner, inner_length, header) || source.family != destination.family)
        return 0;
    if (header.version == 4 && source.is_v4()) {
        if (inner_length > max_ip_length - ipip_overhead_v4)
            return 0;
        write_ipv4_header(outer, header.traffic_class, uint16_t(ipip_overhead_v4 + inner_length),
                          header.dont_fragment, ttl, protocol_ipv4_in_ip, source, destination);
        return ipip_overhead_v4;
    }
    if (header.version == 6 && !source.is_v4()) {
        // RFC 2473 6.5-6.6 leave the flow label to the tunnel; copying the
        // inner one keeps the flow's packets on one ECMP path (RFC 6438).
        write_ipv6_header(outer, header.traffic_class, header.flow_label, inner_length,
                          protocol_ipv6, ttl, source, destination);
        return ipip_overhead_v6;
    }
    return 0;
}

// GUE variant 0 (draft-ietf-intarea-gue 3.1): a 4-byte header, version 0,
// C = 0 (data), Hlen = 0 (no extension fields), Proto/ctype the inner IP
// protocol number, flags 0. The outer header copies the inner TOS / traffic
// class and flow label as encapsulate_ipip does; it may be of the other
// family. Returns 0, writing nothing, for an inner packet that is not IP or
// too long for the outer header, or source and destination of different
// families.
size_t encapsulate_gue(uint8_t *outer, const uint8_t *inner, uint16_t inner_length,
                       const IpAddress &source, const IpAddress &destination,
                       uint16_t source_port, uint16_t destination_port, uint8_t ttl) {
    InnerHeader header;
    if (!read_inner(inner, inner_length, header) || source.family != destination.family)
        return 0;
    const uint32_t udp_length = uint32_t(udp_header_length + gue_header_length) + inner_length;
    const size_t ip_length = source.is_v4() ? 20 : 40;
    // The UDP length and the IPv4 total length (the IPv6 payload length is
    // the UDP length) must fit in 16 bits.
    if (udp_length + (source.is_v4() ? ip_length : 0) > max_ip_length)
        return 0;

    uint8_t *udp = outer + ip_length;
    write_be16(udp, source_port);
    write_be16(udp + 2, destination_port);
    write_be16(udp + 4, uint16_t(udp_length));
    write_be16(udp + 6, 0);
    uint8_t *gue = udp + udp_header_length;
    gue[0] = 0;  // version 0, C = 0, Hlen = 0
    gue[1] = header.version == 4 ? protocol_ipv4_in_ip : protocol_ipv6;
    write_be16(gue + 2, 0);  // flags

    if (source.is_v4()) {
        // A zero UDP checksum over IPv4: none computed (RFC 768); the inner
        // packet carries its own.
        write_ipv4_header(outer, header.traffic_class, uint16_t(ip_length + udp_length),
                          header.dont_fragment, ttl, protocol_udp, source, destination);
        return gue_overhead_v4;
    }
    write_ipv6_header(outer, header.traffic_class, header.flow_label, uint16_t(udp_length),
                      protocol_udp, ttl, source, destination);
    // RFC 8200 8.1: over IPv6 the checksum is required. (RFC 6935 would allow
    // zero for tunnels, but only where every receiver is configured for it.)
    // The 12 header bytes are an even count, so the inner bytes keep their
    // word alignment in the sum.
    uint64_t sum = ipv6_pseudo_header_sum(source.bytes.data(), destination.bytes.data(),
                                          udp_length, protocol_udp);
    sum = checksum_add(sum, udp, udp_header_length + gue_header_length);
    sum = checksum_add(sum, inner, inner_length);
    uint16_t checksum = checksum_finish(sum);
    if (checksum == 0)
        checksum = 0xffff;  // RFC 768: zero would mean "none"
    std::memcpy(udp + 6, &checksum, 2);
    return gue_overhead_v6;
}

} // namespace sluice::lb
