// DSR encapsulation as a table: each row is an inner packet, the call, and
// the outer headers expected, built field by field with the builder and
// checksums computed over the whole datagram. Every row also checks that
// the inner packet and the bytes before the outer header are untouched.
#include <gtest/gtest.h>

#include "dataplane/packet_parse.h"
#include "lb/encap.h"
#include "tests/fixtures/packet_builder.h"

namespace sluice::lb {
namespace {

using namespace sluice::testing;

const MacAddress gw = mac("02:00:00:00:00:01");
const MacAddress peer = mac("02:00:00:00:00:02");
const IpAddress client4 = ip("198.51.100.7"), vip4 = ip("203.0.113.10");
const IpAddress balancer4 = ip("10.0.0.1"), backend4 = ip("10.1.255.250");
const IpAddress client6 = ip("2001:db8:100::7"), vip6 = ip("2001:db8:200::10");
const IpAddress balancer6 = ip("fd00::1"), backend6 = ip("fd00:ffff::5");

constexpr uint8_t dscp_ef = 0xb8;  // DSCP 46 (RFC 3246), ECN not-ECT
constexpr uint8_t ect0 = 0x02;     // ECN ECT(0) (RFC 3168 5)
constexpr uint16_t gue_port = 6080;
constexpr uint16_t dont_fragment = 0x4000;

const Bytes data = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1', '\r'};

// A client's TCP segment to the VIP as the balancer received it.
Bytes inner_ipv4(uint8_t tos, uint16_t fragment) {
    const Bytes seg =
        with_transport_checksum(client4, vip4, 6, concat({tcp(40000, 80, 0x18), data}));
    Bytes packet = concat({ipv4(client4, vip4, 6, seg.size(), {}, fragment), seg});
    packet[1] = tos;
    refresh_ipv4_checksum(packet, 0);
    return packet;
}

Bytes inner_ipv6(uint8_t traffic_class, uint32_t flow_label) {
    const Bytes seg =
        with_transport_checksum(client6, vip6, 17, concat({udp(5353, 53, data.size()), data}));
    Bytes packet = ip_packet(client6, vip6, 17, seg);
    packet[0] = uint8_t(0x60 | traffic_class >> 4);
    packet[1] = uint8_t(traffic_class << 4 | (flow_label >> 16 & 0x0f));
    packet[2] = uint8_t(flow_label >> 8);
    packet[3] = uint8_t(flow_label);
    return packet;
}

// Outer headers, field by field.
Bytes outer_ipv4(uint8_t protocol, size_t payload_length, uint8_t tos, bool df, uint8_t ttl) {
    Bytes h = ipv4(balancer4, backend4, protocol, payload_length, {}, df ? dont_fragment : 0, ttl);
    h[1] = tos;
    put16(h, 4, 0);  // identification
    refresh_ipv4_checksum(h, 0);
    return h;
}

Bytes outer_ipv6(uint8_t next_header, size_t payload_length, uint8_t traffic_class,
                 uint32_t flow_label, uint8_t hop_limit) {
    Bytes h = ipv6(balancer6, backend6, next_header, payload_length, hop_limit);
    h[0] = uint8_t(0x60 | traffic_class >> 4);
    h[1] = uint8_t(traffic_class << 4 | (flow_label >> 16 & 0x0f));
    h[2] = uint8_t(flow_label >> 8);
    h[3] = uint8_t(flow_label);
    return h;
}

// UDP and GUE variant 0 headers (draft-ietf-intarea-gue 3.1): version 0,
// C 0, Hlen 0, proto/ctype, flags 0. Over IPv6 the UDP checksum is computed
// over the whole datagram with the builder's own code.
Bytes udp_gue(const IpAddress &src, const IpAddress &dst, uint16_t sport, const Bytes &inner) {
    const Bytes gue = {0x00, uint8_t((inner[0] >> 4) == 4 ? 4 : 41), 0x00, 0x00};
    Bytes datagram = concat({udp(sport, gue_port, gue.size() + inner.size()), gue, inner});
    if (!src.is_v4())
        datagram = with_transport_checksum(src, dst, 17, datagram);
    return first_bytes(datagram, 12);
}

enum class Method { ipip, gue };

struct EncapCase {
    const char *description;
    Bytes inner;
    Method method;
    IpAddress source, destination;
    uint16_t source_port;  // GUE only
    uint8_t ttl;
    Bytes expected_outer;  // empty: refused, nothing written
};

std::vector<EncapCase> cases() {
    const Bytes v4_df = inner_ipv4(dscp_ef, dont_fragment);
    const Bytes v4_ecn = inner_ipv4(ect0, 0);
    const Bytes v6 = inner_ipv6(dscp_ef | ect0, 0x9abcd);
    const Bytes v6_no_label = inner_ipv6(0, 0);
    return {
        {"4in4 copies TOS and DF (RFC 2003 3.1), protocol 4", v4_df, Method::ipip, balancer4,
         backend4, 0, 64, outer_ipv4(4, v4_df.size(), dscp_ef, true, 64)},
        {"4in4 without DF, ECN copied (RFC 6040 4.1), TTL as asked", v4_ecn, Method::ipip,
         balancer4, backend4, 0, 7, outer_ipv4(4, v4_ecn.size(), ect0, false, 7)},
        {"6in6 copies traffic class and flow label, next header 41", v6, Method::ipip,
         balancer6, backend6, 0, 64, outer_ipv6(41, v6.size(), dscp_ef | ect0, 0x9abcd, 64)},
        {"6in6 hop limit as asked", v6_no_label, Method::ipip, balancer6, backend6, 0, 255,
         outer_ipv6(41, v6_no_label.size(), 0, 0, 255)},
        {"4in6 is a caller's mistake: refused", v4_df, Method::ipip, balancer6, backend6, 0, 64,
         {}},
        {"6in4 is a caller's mistake: refused", v6, Method::ipip, balancer4, backend4, 0, 64, {}},
        {"GUE over IPv4 carrying IPv4: UDP checksum zero", v4_df, Method::gue, balancer4,
         backend4, 0xbeef, 64,
         concat({outer_ipv4(17, 12 + v4_df.size(), dscp_ef, true, 64),
                 udp_gue(balancer4, backend4, 0xbeef, v4_df)})},
        {"GUE over IPv4 carrying IPv6: proto/ctype 41, DF set", v6, Method::gue, balancer4,
         backend4, 0x1234, 32,
         concat({outer_ipv4(17, 12 + v6.size(), dscp_ef | ect0, true, 32),
                 udp_gue(balancer4, backend4, 0x1234, v6)})},
        {"GUE over IPv6 carrying IPv4: UDP checksum computed (RFC 8200 8.1)", v4_ecn, Method::gue,
         balancer6, backend6, 0xbeef, 64,
         concat({outer_ipv6(17, 12 + v4_ecn.size(), ect0, 0, 64),
                 udp_gue(balancer6, backend6, 0xbeef, v4_ecn)})},
        {"GUE over IPv6 carrying IPv6", v6, Method::gue, balancer6, backend6, 0xffff, 64,
         concat({outer_ipv6(17, 12 + v6.size(), dscp_ef | ect0, 0x9abcd, 64),
                 udp_gue(balancer6, backend6, 0xffff, v6)})},
        {"GUE with source and destination of different families: refused", v4_df, Method::gue,
         balancer4, backend6, 1, 64, {}},
        {"Inner packet that is not IP: refused", Bytes(40, 0x50), Method::gue, balancer4,
         backend4, 1, 64, {}},
        {"Inner IPv4 shorter than its header: refused", first_bytes(v4_df, 19), Method::ipip,
         balancer4, backend4, 0, 64, {}},
        {"Inner IPv6 shorter than its header: refused", first_bytes(v6, 39), Method::ipip,
         balancer6, backend6, 0, 64, {}},
    };
}

constexpr size_t headroom = 64;
constexpr uint8_t poison = 0xee;

// Encapsulates into a buffer laid out as the mbuf is: headroom, then the
// inner packet. Returns the bytes written; `buffer` holds the result.
size_t encapsulate(const EncapCase &c, Bytes &buffer) {
    buffer = concat({Bytes(headroom, poison), c.inner});
    const uint8_t *inner = buffer.data() + headroom;
    const uint16_t length = uint16_t(c.inner.size());
    if (c.method == Method::ipip) {
        const size_t overhead = c.source.is_v4() ? ipip_overhead_v4 : ipip_overhead_v6;
        return encapsulate_ipip(buffer.data() + headroom - overhead, inner, length, c.source,
                                c.destination, c.ttl);
    }
    const size_t overhead = c.source.is_v4() ? gue_overhead_v4 : gue_overhead_v6;
    return encapsulate_gue(buffer.data() + headroom - overhead, inner, length, c.source,
                           c.destination, c.source_port, gue_port, c.ttl);
}

TEST(Encapsulate, WritesTheOuterHeadersBuiltFieldByField) {
    for (const EncapCase &c : cases()) {
        SCOPED_TRACE(c.description);
        Bytes buffer;
        const size_t written = encapsulate(c, buffer);
        ASSERT_EQ(written, c.expected_outer.size());
        const size_t start = headroom - written;
        EXPECT_EQ(Bytes(buffer.begin() + long(start), buffer.begin() + headroom),
                  c.expected_outer);
        EXPECT_EQ(Bytes(buffer.begin(), buffer.begin() + long(start)), Bytes(start, poison))
            << "wrote before the outer header";
        EXPECT_EQ(Bytes(buffer.begin() + headroom, buffer.end()), c.inner)
            << "the inner packet changed";
    }
}

// Checks that do not rely on the builder: the outer packet parses, its
// checksums verify by full recomputation, and the inner packet follows.
TEST(Encapsulate, OuterPacketParsesAndItsChecksumsVerify) {
    for (const EncapCase &c : cases()) {
        if (c.expected_outer.empty())
            continue;
        SCOPED_TRACE(c.description);
        Bytes buffer;
        const size_t written = encapsulate(c, buffer);
        const Bytes frame = concat(
            {ethernet(gw, peer, c.source.is_v4() ? 0x0800 : 0x86dd),
             Bytes(buffer.begin() + long(headroom - written), buffer.end())});
        ParsedPacket packet;
        ASSERT_EQ(parse_packet(frame.data(), uint32_t(frame.size()), packet), DropReason::none);
        EXPECT_EQ(packet.l3_end, frame.size());
        const uint8_t *outer = frame.data() + 14;
        if (c.source.is_v4()) {
            EXPECT_EQ(internet_checksum(outer, 20), 0);
        }
        const size_t inner_at = 14 + written;
        if (c.method == Method::ipip) {
            EXPECT_EQ(packet.l4_protocol, c.source.is_v4() ? 4 : 41);
            EXPECT_EQ(packet.l4_offset, inner_at);
            continue;
        }
        ASSERT_TRUE(packet.has_l4);
        EXPECT_EQ(packet.l4_protocol, 17);
        EXPECT_EQ(packet.l4_offset + 12u, inner_at);
        const uint8_t *udp = frame.data() + packet.l4_offset;
        if (c.source.is_v4()) {
            EXPECT_EQ(udp[6], 0);
            EXPECT_EQ(udp[7], 0);
        } else {
            const uint64_t sum =
                ipv6_pseudo_header_sum(outer + 8, outer + 24, packet.l4_length, 17);
            EXPECT_EQ(checksum_finish(checksum_add(sum, udp, packet.l4_length)), 0);
        }
    }
}

// RFC 768: a UDP checksum that computes to zero goes out as all ones. The
// source port moves the sum through every value, so one of them hits zero.
TEST(Encapsulate, GueChecksumComputingToZeroIsSentAsAllOnes) {
    const Bytes inner = inner_ipv4(0, 0);
    for (uint32_t port = 0; port <= 0xffff; ++port) {
        Bytes datagram = concat({udp(uint16_t(port), gue_port, 4 + inner.size()),
                                 Bytes{0, 4, 0, 0}, inner});
        const uint64_t sum =
            pseudo_header_sum(balancer6, backend6, uint32_t(datagram.size()), 17);
        if (checksum_finish(checksum_add(sum, datagram.data(), datagram.size())) != 0)
            continue;
        Bytes buffer(gue_overhead_v6);
        ASSERT_EQ(encapsulate_gue(buffer.data(), inner.data(), uint16_t(inner.size()), balancer6,
                                  backend6, uint16_t(port), gue_port),
                  gue_overhead_v6);
        EXPECT_EQ(buffer[40 + 6], 0xff);
        EXPECT_EQ(buffer[40 + 7], 0xff);
        return;
    }
    FAIL() << "no source port gives a zero checksum";
}

TEST(Encapsulate, RefusesLengthsTheOuterHeaderCannotCarry) {
    // An inner packet whose header claims little but whose length, with the
    // outer header added, passes 65535.
    Bytes inner = inner_ipv4(0, 0);
    inner.resize(0xffff - 20 + 1);
    Bytes buffer(gue_overhead_v6, poison);
    EXPECT_EQ(encapsulate_ipip(buffer.data(), inner.data(), uint16_t(inner.size()), balancer4,
                               backend4),
              0u);
    inner.resize(0xffff - 12 + 1);
    EXPECT_EQ(encapsulate_gue(buffer.data(), inner.data(), uint16_t(inner.size()), balancer6,
                              backend6, 1, gue_port),
              0u);
    EXPECT_EQ(buffer, Bytes(gue_overhead_v6, poison));
    // The largest that fits is accepted.
    inner.resize(0xffff - 20);
    EXPECT_EQ(encapsulate_ipip(buffer.data(), inner.data(), uint16_t(inner.size()), balancer4,
                               backend4),
              ipip_overhead_v4);
}

} // namespace
} // namespace sluice::lb
