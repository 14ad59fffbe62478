// NAT rewrites as tables: each row is a frame built byte by byte, the call
// made on it, and the frame expected. Expected frames are built from scratch
// with the new tuple and every checksum computed over the whole packet, so
// equality proves the incremental (RFC 1624) updates bit for bit.
#include <arpa/inet.h>

#include <gtest/gtest.h>

#include <memory>
#include <random>

#include "dataplane/packet_parse.h"
#include "lb/nat.h"
#include "tests/fixtures/packet_builder.h"

namespace sluice::lb {
namespace {

using namespace sluice::testing;

const MacAddress gw = mac("02:00:00:00:00:01");
const MacAddress peer = mac("02:00:00:00:00:02");
// FullNAT: client → VIP arrives, leaves as SNAT address → backend. Some
// address bytes are 0xff so that the sums carry.
const IpAddress client4 = ip("198.51.100.7"), vip4 = ip("203.0.113.10");
const IpAddress snat4 = ip("10.255.0.1"), backend4 = ip("10.1.255.250");
const IpAddress router4 = ip("192.0.2.254");
const IpAddress client6 = ip("2001:db8:100::7"), vip6 = ip("2001:db8:200::10");
const IpAddress snat6 = ip("2001:db8:300::ffff:1"), backend6 = ip("fd00:ffff::5");
const IpAddress router6 = ip("2001:db8:ff::1");

const Bytes payload = {'h', 'e', 'l', 'l', 'o', ',', ' ', 'b', 'a', 'c', 'k', 'e', 'n', 'd', '!'};

FlowKey tuple(const IpAddress &src, uint16_t sport, const IpAddress &dst, uint16_t dport,
              uint8_t protocol) {
    FlowKey key;
    key.family = src.is_v4() ? 4 : 6;
    key.protocol = protocol;
    const size_t n = src.is_v4() ? 4 : 16;
    std::copy(src.bytes.begin(), src.bytes.begin() + n, key.source.begin());
    std::copy(dst.bytes.begin(), dst.bytes.begin() + n, key.destination.begin());
    key.source_port = htons(sport);
    key.destination_port = htons(dport);
    return key;
}

Bytes ether_for(const IpAddress &src) {
    return ethernet(gw, peer, src.is_v4() ? ether_type::ipv4 : ether_type::ipv6);
}

// A whole TCP segment or UDP datagram with a correct checksum.
Bytes segment(uint8_t protocol, const IpAddress &src, uint16_t sport, const IpAddress &dst,
              uint16_t dport, const Bytes &data = payload) {
    const Bytes header = protocol == ip_proto::tcp ? tcp(sport, dport, 0x18)
                                                   : udp(sport, dport, data.size());
    return with_transport_checksum(src, dst, protocol, concat({header, data}));
}

Bytes frame(uint8_t protocol, const IpAddress &src, uint16_t sport, const IpAddress &dst,
            uint16_t dport, const Bytes &data = payload) {
    return concat({ether_for(src), ip_packet(src, dst, protocol,
                                             segment(protocol, src, sport, dst, dport, data))});
}

// UDP without a checksum (zero).
Bytes udp_frame_without_checksum(const IpAddress &src, uint16_t sport, const IpAddress &dst,
                                 uint16_t dport) {
    return concat({ether_for(src),
                   ip_packet(src, dst, ip_proto::udp,
                             concat({udp(sport, dport, payload.size()), payload}))});
}

Bytes tcp4_with_options(const IpAddress &src, uint16_t sport, const IpAddress &dst,
                        uint16_t dport) {
    const Bytes seg = segment(ip_proto::tcp, src, sport, dst, dport);
    // Router alert (RFC 2113), then NOPs to a 4-byte boundary... and one more word.
    const Bytes options = {0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00};
    return concat({ether_for(src), ipv4(src, dst, ip_proto::tcp, seg.size(), options), seg});
}

Bytes tcp4_vlan(const IpAddress &src, uint16_t sport, const IpAddress &dst, uint16_t dport) {
    const Bytes seg = segment(ip_proto::tcp, src, sport, dst, dport);
    return concat({ethernet(gw, peer, ether_type::vlan), vlan_tag(100, ether_type::ipv4),
                   ipv4(src, dst, ip_proto::tcp, seg.size()), seg});
}

// Fragments of one UDP datagram with 40 bytes of data: the first carries the
// header and 16 bytes (3 units of 8), the later one the remaining 24 bytes.
const Bytes long_payload(40, 0x5a);
constexpr uint16_t more_fragments = 0x2000;

Bytes udp4_first_fragment(const IpAddress &src, uint16_t sport, const IpAddress &dst,
                          uint16_t dport) {
    const Bytes part =
        first_bytes(segment(ip_proto::udp, src, sport, dst, dport, long_payload), 24);
    return concat(
        {ether_for(src), ipv4(src, dst, ip_proto::udp, part.size(), {}, more_fragments), part});
}

Bytes udp4_later_fragment(const IpAddress &src, const IpAddress &dst) {
    const Bytes part(long_payload.begin() + 16, long_payload.end());
    return concat({ether_for(src), ipv4(src, dst, ip_proto::udp, part.size(), {}, 3), part});
}

Bytes tcp6_first_fragment(const IpAddress &src, uint16_t sport, const IpAddress &dst,
                          uint16_t dport) {
    const Bytes part =
        first_bytes(segment(ip_proto::tcp, src, sport, dst, dport, long_payload), 32);
    return concat({ether_for(src), ipv6(src, dst, ip_proto::ipv6_fragment, 8 + part.size()),
                   ipv6_fragment(ip_proto::tcp, 0, true), part});
}

Bytes tcp6_later_fragment(const IpAddress &src, const IpAddress &dst) {
    const Bytes part(long_payload.begin() + 12, long_payload.end());
    return concat({ether_for(src), ipv6(src, dst, ip_proto::ipv6_fragment, 8 + part.size()),
                   ipv6_fragment(ip_proto::tcp, 4, false), part});
}

Bytes udp6_after_hop_by_hop(const IpAddress &src, uint16_t sport, const IpAddress &dst,
                            uint16_t dport) {
    const Bytes seg = segment(ip_proto::udp, src, sport, dst, dport);
    return concat({ether_for(src), ipv6(src, dst, ip_proto::hop_by_hop, 8 + seg.size()),
                   ipv6_extension(ip_proto::udp), seg});
}

// The source port that makes a datagram's checksum compute to zero, so that
// it is sent as 0xffff (RFC 768).
uint16_t source_port_for_zero_udp_checksum(const IpAddress &src, const IpAddress &dst,
                                           uint16_t dport) {
    for (uint32_t port = 1; port <= 0xffff; ++port) {
        const Bytes seg = concat({udp(uint16_t(port), dport, payload.size()), payload});
        const uint64_t sum = pseudo_header_sum(src, dst, uint32_t(seg.size()), ip_proto::udp);
        if (checksum_finish(checksum_add(sum, seg.data(), seg.size())) == 0)
            return uint16_t(port);
    }
    ADD_FAILURE() << "no port gives a zero UDP checksum";
    return 0;
}

ParsedPacket parsed(const Bytes &frame) {
    ParsedPacket packet;
    EXPECT_EQ(parse_packet(frame.data(), uint32_t(frame.size()), packet), DropReason::none);
    return packet;
}

// ---------------------------------------------------------------------------
// flow_key_of

struct FlowKeyCase {
    const char *description;
    Bytes frame;
    FlowKey expected;
};

TEST(FlowKeyOf, ReadsTheTupleThePacketCarries) {
    FlowKey echo = tuple(client4, 0, vip4, 0, ip_proto::icmp);
    FlowKey later_fragment = tuple(client4, 0, vip4, 0, ip_proto::udp);
    const std::vector<FlowKeyCase> cases = {
        {"IPv4 TCP", frame(ip_proto::tcp, client4, 40000, vip4, 80),
         tuple(client4, 40000, vip4, 80, ip_proto::tcp)},
        {"IPv6 UDP", frame(ip_proto::udp, client6, 5353, vip6, 53),
         tuple(client6, 5353, vip6, 53, ip_proto::udp)},
        {"VLAN-tagged IPv4 TCP", tcp4_vlan(client4, 1, vip4, 443),
         tuple(client4, 1, vip4, 443, ip_proto::tcp)},
        {"IPv4 first fragment has ports", udp4_first_fragment(client4, 7, vip4, 9),
         tuple(client4, 7, vip4, 9, ip_proto::udp)},
        {"IPv4 later fragment has none", udp4_later_fragment(client4, vip4), later_fragment},
        {"ICMP echo has no ports", echo_request_v4(gw, peer, client4, vip4), echo},
        {"ARP is not IP", concat({ethernet(gw, peer, ether_type::arp),
                                  arp(1, peer, client4, MacAddress{}, vip4)}),
         FlowKey{}},
    };
    for (const FlowKeyCase &c : cases) {
        SCOPED_TRACE(c.description);
        EXPECT_EQ(flow_key_of(c.frame.data(), parsed(c.frame)), c.expected);
    }
}

// ---------------------------------------------------------------------------
// rewrite_tuple

struct RewriteCase {
    const char *description;
    Bytes input;
    FlowKey to;
    Bytes expected;
};

std::vector<RewriteCase> rewrite_cases() {
    const uint16_t zero_port = source_port_for_zero_udp_checksum(snat4, backend4, 53);
    return {
        {"IPv4 TCP FullNAT: client→VIP becomes SNAT→backend, all four fields",
         frame(ip_proto::tcp, client4, 40000, vip4, 80),
         tuple(snat4, 61000, backend4, 8080, ip_proto::tcp),
         frame(ip_proto::tcp, snat4, 61000, backend4, 8080)},
        {"IPv4 TCP FullNAT reply: backend→SNAT becomes VIP→client",
         frame(ip_proto::tcp, backend4, 8080, snat4, 61000),
         tuple(vip4, 80, client4, 40000, ip_proto::tcp),
         frame(ip_proto::tcp, vip4, 80, client4, 40000)},
        {"IPv4 UDP NAT: only the destination changes",
         frame(ip_proto::udp, client4, 5353, vip4, 53),
         tuple(client4, 5353, backend4, 5300, ip_proto::udp),
         frame(ip_proto::udp, client4, 5353, backend4, 5300)},
        {"IPv4 UDP without checksum stays without (RFC 768)",
         udp_frame_without_checksum(client4, 5353, vip4, 53),
         tuple(snat4, 1024, backend4, 53, ip_proto::udp),
         udp_frame_without_checksum(snat4, 1024, backend4, 53)},
        {"IPv4 UDP whose new checksum computes to zero is sent as 0xffff",
         frame(ip_proto::udp, client4, 5353, vip4, 53),
         tuple(snat4, zero_port, backend4, 53, ip_proto::udp),
         frame(ip_proto::udp, snat4, zero_port, backend4, 53)},
        {"IPv4 UDP whose checksum was 0xffff (a computed zero) rewritten",
         frame(ip_proto::udp, snat4, zero_port, backend4, 53),
         tuple(client4, 5353, vip4, 53, ip_proto::udp),
         frame(ip_proto::udp, client4, 5353, vip4, 53)},
        {"IPv6 TCP FullNAT", frame(ip_proto::tcp, client6, 40000, vip6, 443),
         tuple(snat6, 61000, backend6, 8443, ip_proto::tcp),
         frame(ip_proto::tcp, snat6, 61000, backend6, 8443)},
        {"IPv6 UDP FullNAT", frame(ip_proto::udp, client6, 5353, vip6, 53),
         tuple(snat6, 1024, backend6, 5300, ip_proto::udp),
         frame(ip_proto::udp, snat6, 1024, backend6, 5300)},
        {"IPv6 UDP with the invalid zero checksum is left zero (RFC 8200 8.1)",
         udp_frame_without_checksum(client6, 5353, vip6, 53),
         tuple(snat6, 1024, backend6, 53, ip_proto::udp),
         udp_frame_without_checksum(snat6, 1024, backend6, 53)},
        {"IPv6 UDP after a hop-by-hop header", udp6_after_hop_by_hop(client6, 5353, vip6, 53),
         tuple(snat6, 1024, backend6, 5300, ip_proto::udp),
         udp6_after_hop_by_hop(snat6, 1024, backend6, 5300)},
        {"IPv4 with options", tcp4_with_options(client4, 40000, vip4, 80),
         tuple(snat4, 61000, backend4, 8080, ip_proto::tcp),
         tcp4_with_options(snat4, 61000, backend4, 8080)},
        {"VLAN-tagged IPv4 TCP", tcp4_vlan(client4, 40000, vip4, 80),
         tuple(snat4, 61000, backend4, 8080, ip_proto::tcp),
         tcp4_vlan(snat4, 61000, backend4, 8080)},
        {"IPv4 first fragment: ports, and the checksum over the whole datagram",
         udp4_first_fragment(client4, 5353, vip4, 53),
         tuple(snat4, 1024, backend4, 5300, ip_proto::udp),
         udp4_first_fragment(snat4, 1024, backend4, 5300)},
        {"IPv4 later fragment: addresses only, its data untouched",
         udp4_later_fragment(client4, vip4), tuple(snat4, 1024, backend4, 5300, ip_proto::udp),
         udp4_later_fragment(snat4, backend4)},
        {"IPv6 first fragment: ports, and the checksum over the whole segment",
         tcp6_first_fragment(client6, 40000, vip6, 443),
         tuple(snat6, 61000, backend6, 8443, ip_proto::tcp),
         tcp6_first_fragment(snat6, 61000, backend6, 8443)},
        {"IPv6 later fragment: addresses only", tcp6_later_fragment(client6, vip6),
         tuple(snat6, 61000, backend6, 8443, ip_proto::tcp), tcp6_later_fragment(snat6, backend6)},
        {"ICMPv6 echo: its checksum covers the pseudo-header (RFC 4443 2.3)",
         echo_request_v6(gw, peer, client6, vip6), tuple(snat6, 0, backend6, 0, ip_proto::icmpv6),
         echo_request_v6(gw, peer, snat6, backend6)},
        {"ICMPv4 echo: its checksum does not cover the addresses (RFC 792)",
         echo_request_v4(gw, peer, client4, vip4), tuple(snat4, 0, backend4, 0, ip_proto::icmp),
         echo_request_v4(gw, peer, snat4, backend4)},
        {"Tuple of the other family: a caller's mistake, nothing changes",
         frame(ip_proto::tcp, client4, 40000, vip4, 80),
         tuple(snat6, 61000, backend6, 8080, ip_proto::tcp),
         frame(ip_proto::tcp, client4, 40000, vip4, 80)},
    };
}

TEST(RewriteTuple, MatchesTheFrameBuiltFromScratch) {
    for (const RewriteCase &c : rewrite_cases()) {
        SCOPED_TRACE(c.description);
        Bytes frame = c.input;
        rewrite_tuple(frame.data(), parsed(frame), c.to);
        EXPECT_EQ(frame, c.expected);
    }
}

TEST(RewriteTuple, ZeroChecksumCaseReallyEndsInAllOnes) {
    // Guards the table row above against a builder that stopped writing 0xffff.
    const uint16_t port = source_port_for_zero_udp_checksum(snat4, backend4, 53);
    const Bytes f = frame(ip_proto::udp, snat4, port, backend4, 53);
    EXPECT_EQ(f[14 + 20 + 6], 0xff);
    EXPECT_EQ(f[14 + 20 + 7], 0xff);
}

// The same promise over random tuples, payload lengths (odd and even) and
// both families.
TEST(RewriteTuple, RandomTuplesMatchFullRecomputation) {
    std::mt19937 rng(1624);
    auto random_address = [&](bool v4) {
        IpAddress a = v4 ? client4 : client6;
        for (size_t i = 0; i < (v4 ? 4u : 16u); ++i)
            a.bytes[i] = uint8_t(rng());
        if (v4)
            a.bytes[0] = uint8_t(1 + rng() % 223);  // not multicast, which the parser refuses
        else
            a.bytes[0] = 0x20;
        return a;
    };
    for (int i = 0; i < 2000; ++i) {
        const bool v4 = rng() & 1;
        const uint8_t protocol = rng() & 1 ? ip_proto::tcp : ip_proto::udp;
        Bytes data(rng() % 64);
        for (uint8_t &b : data)
            b = uint8_t(rng());
        const IpAddress s = random_address(v4), d = random_address(v4);
        const IpAddress s2 = random_address(v4), d2 = random_address(v4);
        const uint16_t sp = uint16_t(rng()), dp = uint16_t(rng());
        const uint16_t sp2 = uint16_t(rng()), dp2 = uint16_t(rng());
        Bytes f = frame(protocol, s, sp, d, dp, data);
        rewrite_tuple(f.data(), parsed(f), tuple(s2, sp2, d2, dp2, protocol));
        ASSERT_EQ(f, frame(protocol, s2, sp2, d2, dp2, data)) << "iteration " << i;
    }
}

// ---------------------------------------------------------------------------
// decrement_hop_limit

struct HopLimitCase {
    const char *description;
    Bytes input;
    bool forwarded;
    Bytes expected;
};

Bytes tcp4_ttl(uint8_t ttl) {
    const Bytes seg = segment(ip_proto::tcp, client4, 40000, vip4, 80);
    return concat({ether_for(client4), ipv4(client4, vip4, ip_proto::tcp, seg.size(), {}, 0, ttl),
                   seg});
}

Bytes tcp6_hop_limit(uint8_t hop_limit) {
    return ipv6_frame(gw, peer, client6, vip6, ip_proto::tcp,
                      segment(ip_proto::tcp, client6, 40000, vip6, 80), hop_limit);
}

TEST(DecrementHopLimit, DecrementsOrRefuses) {
    const Bytes arp_frame = concat({ethernet(gw, peer, ether_type::arp),
                                    arp(1, peer, client4, MacAddress{}, vip4)});
    const std::vector<HopLimitCase> cases = {
        {"IPv4 TTL 64 becomes 63", tcp4_ttl(64), true, tcp4_ttl(63)},
        {"IPv4 TTL 255 becomes 254", tcp4_ttl(255), true, tcp4_ttl(254)},
        {"IPv4 TTL 2 becomes 1", tcp4_ttl(2), true, tcp4_ttl(1)},
        {"IPv4 TTL 1 must not be forwarded", tcp4_ttl(1), false, tcp4_ttl(1)},
        {"IPv4 TTL 0 must not be forwarded", tcp4_ttl(0), false, tcp4_ttl(0)},
        {"IPv6 hop limit 64 becomes 63", tcp6_hop_limit(64), true, tcp6_hop_limit(63)},
        {"IPv6 hop limit 1 must not be forwarded", tcp6_hop_limit(1), false, tcp6_hop_limit(1)},
        {"ARP has no hop limit", arp_frame, false, arp_frame},
    };
    for (const HopLimitCase &c : cases) {
        SCOPED_TRACE(c.description);
        Bytes frame = c.input;
        EXPECT_EQ(decrement_hop_limit(frame.data(), parsed(frame)), c.forwarded);
        EXPECT_EQ(frame, c.expected);
    }
}

// ---------------------------------------------------------------------------
// forward_rewrite: its IPv4 fast path against the two calls it stands for

// `frame` with the general path's bytes: decrement_hop_limit(), then
// rewrite_tuple() to the answer turned round. Parsed as a NIC that verified
// the IPv4 header checksum would have it, so that a wrong one gets through.
// The fast path's sums are the flow's (rewrite_sums), for the packet's side:
// the packet carries the forward tuple, or with `reverse_side` the reverse.
void expect_as_general_path(const Bytes &frame, const FlowKey &answer, bool reverse_side = false) {
    ParsedPacket packet;
    ASSERT_EQ(parse_packet(frame.data(), uint32_t(frame.size()), packet, true), DropReason::none);
    Bytes general = frame;
    const bool forwarded = decrement_hop_limit(general.data(), packet);
    if (forwarded)
        rewrite_tuple(general.data(), packet, answer.reversed());
    const FlowKey carried = flow_key_of(frame.data(), packet);
    const RewriteSums sums = reverse_side ? rewrite_sums(answer, carried)[1]
                                          : rewrite_sums(carried, answer)[0];
    Bytes fast = frame;
    EXPECT_EQ(forward_rewrite(fast.data(), packet, answer, sums), forwarded);
    EXPECT_EQ(fast, general);
}

// Every frame of the rewrite table (IPv4 options, VLAN tags, fragments, UDP
// without checksum or with 0xffff, IPv6, ICMP, the other family), at TTLs
// that are forwarded and refused, and with a wrong IPv4 header or L4
// checksum, which the update must carry through as the general path does.
TEST(ForwardRewrite, MatchesHopLimitThenRewriteTuple) {
    for (const RewriteCase &c : rewrite_cases()) {
        SCOPED_TRACE(c.description);
        ParsedPacket packet;
        ASSERT_EQ(parse_packet(c.input.data(), uint32_t(c.input.size()), packet, true),
                  DropReason::none);
        const FlowKey answer = c.to.reversed();
        expect_as_general_path(c.input, answer);
        if (packet.network == NetworkLayer::other || packet.network == NetworkLayer::arp)
            continue;
        const bool v4 = packet.network == NetworkLayer::ipv4;
        for (const uint8_t hops : {255, 2, 1, 0}) {
            SCOPED_TRACE(int(hops));
            Bytes f = c.input;
            f[packet.l3_offset + (v4 ? 8 : 7)] = hops;
            expect_as_general_path(f, answer);
        }
        if (v4) {
            Bytes f = c.input;
            f[packet.l3_offset + 10] ^= 0x5a;  // header checksum
            SCOPED_TRACE("bad IPv4 header checksum");
            expect_as_general_path(f, answer);
        }
        if (packet.has_l4 && (packet.l4_protocol == ip_proto::tcp ||
                              packet.l4_protocol == ip_proto::udp)) {
            Bytes f = c.input;
            f[packet.l4_offset + (packet.l4_protocol == ip_proto::tcp ? 17 : 7)] ^= 0x33;
            SCOPED_TRACE("bad L4 checksum");
            expect_as_general_path(f, answer);
        }
    }
}

// Random tuples, payloads and TTLs, both protocols, both families: the
// carries of the one's-complement sums land everywhere.
TEST(ForwardRewrite, RandomTuplesMatchTheGeneralPath) {
    std::mt19937 rng(791);
    auto random_address = [&](bool v4) {
        IpAddress a = v4 ? client4 : client6;
        for (size_t i = 0; i < (v4 ? 4u : 16u); ++i)
            a.bytes[i] = uint8_t(rng());
        a.bytes[0] = v4 ? uint8_t(1 + rng() % 223) : 0x20;  // the parser refuses multicast sources
        return a;
    };
    for (int i = 0; i < 20000; ++i) {
        const bool v4 = rng() % 4 != 0;
        const uint8_t protocol = rng() & 1 ? ip_proto::tcp : ip_proto::udp;
        Bytes data(rng() % 32);
        for (uint8_t &b : data)
            b = uint8_t(rng());
        Bytes f = frame(protocol, random_address(v4), uint16_t(rng()), random_address(v4),
                        uint16_t(rng()), data);
        ParsedPacket packet;
        ASSERT_EQ(parse_packet(f.data(), uint32_t(f.size()), packet, true), DropReason::none);
        f[packet.l3_offset + (v4 ? 8 : 7)] = uint8_t(rng());
        if (v4 && rng() % 8 == 0) {  // all-ones and zero header checksums too
            f[packet.l3_offset + 10] = f[packet.l3_offset + 11] = rng() & 1 ? 0xff : 0;
        }
        const IpAddress answer_source = random_address(v4), answer_destination = random_address(v4);
        const uint16_t answer_source_port = uint16_t(rng()), answer_destination_port = uint16_t(rng());
        const FlowKey answer = tuple(answer_source, answer_source_port, answer_destination,
                                     answer_destination_port, protocol);
        expect_as_general_path(f, answer);
        // The answer's packets, back the other way with the flow's other sums.
        ParsedPacket sent;
        ASSERT_EQ(parse_packet(f.data(), uint32_t(f.size()), sent, true), DropReason::none);
        Bytes back = frame(protocol, answer_source, answer_source_port, answer_destination,
                           answer_destination_port, data);
        back[packet.l3_offset + (v4 ? 8 : 7)] = uint8_t(rng());
        expect_as_general_path(back, flow_key_of(f.data(), sent), true);
        if (HasFailure())
            FAIL() << "iteration " << i;
    }
}

// ---------------------------------------------------------------------------
// ICMP errors

// The IP packet a router quotes: header and whole L4 segment with correct
// checksums, cut to `quote_length` bytes afterwards.
Bytes quoted(uint8_t protocol, const IpAddress &src, uint16_t sport, const IpAddress &dst,
             uint16_t dport, size_t quote_length) {
    return first_bytes(ip_packet(src, dst, protocol, segment(protocol, src, sport, dst, dport)),
                       quote_length);
}

Bytes quoted_udp_without_checksum(const IpAddress &src, uint16_t sport, const IpAddress &dst,
                                  uint16_t dport) {
    return ip_packet(src, dst, ip_proto::udp,
                     concat({udp(sport, dport, payload.size()), payload}));
}

Bytes quoted_tcp4_with_options(const IpAddress &src, uint16_t sport, const IpAddress &dst,
                               uint16_t dport) {
    const Bytes seg = segment(ip_proto::tcp, src, sport, dst, dport);
    const Bytes options = {0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00};
    return concat({ipv4(src, dst, ip_proto::tcp, seg.size(), options), seg});
}

Bytes quoted_echo_v6(const IpAddress &src, const IpAddress &dst) {
    Bytes body = {0x00, 0x77, 0x00, 0x01};
    append(body, payload);
    return ip_packet(src, dst, ip_proto::icmpv6, icmpv6(src, dst, 128, 0, body));
}

Bytes quoted_echo_v4(const IpAddress &src, const IpAddress &dst) {
    return ip_packet(src, dst, ip_proto::icmp, icmp(8, 0, 0x77, 1, payload));
}

// ICMP errors from `from` to `to` quoting `quote`.
Bytes error4(const IpAddress &from, const IpAddress &to, uint8_t type, uint8_t code,
             uint32_t rest, const Bytes &quote) {
    return ipv4_frame(gw, peer, from, to, ip_proto::icmp, icmp_error(type, code, rest, quote));
}

Bytes error6(const IpAddress &from, const IpAddress &to, uint8_t type, uint8_t code,
             uint32_t rest, const Bytes &quote) {
    return ipv6_frame(gw, peer, from, to, ip_proto::icmpv6,
                      icmpv6_error(from, to, type, code, rest, quote));
}

Bytes error4_vlan(const IpAddress &from, const IpAddress &to, const Bytes &quote) {
    const Bytes message = icmp_error(11, 0, 0, quote);
    return concat({ethernet(gw, peer, ether_type::vlan), vlan_tag(7, ether_type::ipv4),
                   ipv4(from, to, ip_proto::icmp, message.size()), message});
}

// A quote of 20 + 17 bytes: the TCP checksum's first byte is in it, the
// second is not, so the checksum cannot be updated and keeps its old first
// byte. The rest of the quote is the new tuple's.
Bytes quote_with_half_tcp_checksum(const IpAddress &src, uint16_t sport, const IpAddress &dst,
                                   uint16_t dport, const Bytes &old_quote) {
    Bytes q = quoted(ip_proto::tcp, src, sport, dst, dport, 37);
    q[36] = old_quote.at(36);
    return q;
}

// In each row, a router sends an error about the packet the balancer sent
// (SNAT → backend after FullNAT), to the SNAT address. The balancer passes
// it to the client: from the VIP, quoting client → VIP.
struct IcmpErrorCase {
    const char *description;
    Bytes input;
    FlowKey quoted_before;  // what quoted_flow_key reads from the input
    FlowKey outer;
    FlowKey quoted_after;
    Bytes expected;
};

constexpr uint8_t unreachable = 3, time_exceeded = 11;
constexpr uint8_t port_unreachable = 3, fragmentation_needed = 4;
constexpr uint8_t unreachable6 = 1, packet_too_big6 = 2, time_exceeded6 = 3;

std::vector<IcmpErrorCase> icmp_error_cases() {
    const FlowKey outer4 = tuple(vip4, 0, client4, 0, ip_proto::icmp);
    const FlowKey outer6 = tuple(vip6, 0, client6, 0, ip_proto::icmpv6);
    const Bytes half_checksum_quote = quoted(ip_proto::tcp, snat4, 61000, backend4, 8080, 37);
    return {
        {"IPv4 fragmentation needed quoting a TCP header in full, and some data",
         error4(router4, snat4, unreachable, fragmentation_needed, 1400,
                quoted(ip_proto::tcp, snat4, 61000, backend4, 8080, 20 + 20 + 8)),
         tuple(snat4, 61000, backend4, 8080, ip_proto::tcp), outer4,
         tuple(client4, 40000, vip4, 80, ip_proto::tcp),
         error4(vip4, client4, unreachable, fragmentation_needed, 1400,
                quoted(ip_proto::tcp, client4, 40000, vip4, 80, 20 + 20 + 8))},
        {"IPv4 fragmentation needed quoting only TCP's first 8 bytes (RFC 792)",
         error4(router4, snat4, unreachable, fragmentation_needed, 1400,
                quoted(ip_proto::tcp, snat4, 61000, backend4, 8080, 20 + 8)),
         tuple(snat4, 61000, backend4, 8080, ip_proto::tcp), outer4,
         tuple(client4, 40000, vip4, 80, ip_proto::tcp),
         error4(vip4, client4, unreachable, fragmentation_needed, 1400,
                quoted(ip_proto::tcp, client4, 40000, vip4, 80, 20 + 8))},
        {"IPv4 quote ending inside the TCP checksum leaves that checksum alone",
         error4(router4, snat4, unreachable, fragmentation_needed, 1400, half_checksum_quote),
         tuple(snat4, 61000, backend4, 8080, ip_proto::tcp), outer4,
         tuple(client4, 40000, vip4, 80, ip_proto::tcp),
         error4(vip4, client4, unreachable, fragmentation_needed, 1400,
                quote_with_half_tcp_checksum(client4, 40000, vip4, 80, half_checksum_quote))},
        {"IPv4 port unreachable quoting a whole UDP datagram",
         error4(router4, snat4, unreachable, port_unreachable, 0,
                quoted(ip_proto::udp, snat4, 1024, backend4, 5300, 200)),
         tuple(snat4, 1024, backend4, 5300, ip_proto::udp), outer4,
         tuple(client4, 5353, vip4, 53, ip_proto::udp),
         error4(vip4, client4, unreachable, port_unreachable, 0,
                quoted(ip_proto::udp, client4, 5353, vip4, 53, 200))},
        {"IPv4 port unreachable quoting UDP without checksum: it stays zero",
         error4(router4, snat4, unreachable, port_unreachable, 0,
                quoted_udp_without_checksum(snat4, 1024, backend4, 5300)),
         tuple(snat4, 1024, backend4, 5300, ip_proto::udp), outer4,
         tuple(client4, 5353, vip4, 53, ip_proto::udp),
         error4(vip4, client4, unreachable, port_unreachable, 0,
                quoted_udp_without_checksum(client4, 5353, vip4, 53))},
        {"IPv4 time exceeded quoting an IPv4 header with options",
         error4(router4, snat4, time_exceeded, 0, 0,
                first_bytes(quoted_tcp4_with_options(snat4, 61000, backend4, 8080), 28 + 20)),
         tuple(snat4, 61000, backend4, 8080, ip_proto::tcp), outer4,
         tuple(client4, 40000, vip4, 80, ip_proto::tcp),
         error4(vip4, client4, time_exceeded, 0, 0,
                first_bytes(quoted_tcp4_with_options(client4, 40000, vip4, 80), 28 + 20))},
        {"IPv4 time exceeded in a VLAN-tagged frame",
         error4_vlan(router4, snat4, quoted(ip_proto::tcp, snat4, 61000, backend4, 8080, 48)),
         tuple(snat4, 61000, backend4, 8080, ip_proto::tcp), outer4,
         tuple(client4, 40000, vip4, 80, ip_proto::tcp),
         error4_vlan(vip4, client4, quoted(ip_proto::tcp, client4, 40000, vip4, 80, 48))},
        {"IPv4 time exceeded quoting an ICMP echo: addresses only",
         error4(router4, snat4, time_exceeded, 0, 0, quoted_echo_v4(snat4, backend4)),
         tuple(snat4, 0, backend4, 0, ip_proto::icmp), outer4,
         tuple(client4, 0, vip4, 0, ip_proto::icmp),
         error4(vip4, client4, time_exceeded, 0, 0, quoted_echo_v4(client4, vip4))},
        {"IPv6 packet too big quoting TCP",
         error6(router6, snat6, packet_too_big6, 0, 1280,
                quoted(ip_proto::tcp, snat6, 61000, backend6, 8443, 40 + 20 + 10)),
         tuple(snat6, 61000, backend6, 8443, ip_proto::tcp), outer6,
         tuple(client6, 40000, vip6, 443, ip_proto::tcp),
         error6(vip6, client6, packet_too_big6, 0, 1280,
                quoted(ip_proto::tcp, client6, 40000, vip6, 443, 40 + 20 + 10))},
        {"IPv6 port unreachable quoting UDP",
         error6(router6, snat6, unreachable6, 4, 0,
                quoted(ip_proto::udp, snat6, 1024, backend6, 5300, 200)),
         tuple(snat6, 1024, backend6, 5300, ip_proto::udp), outer6,
         tuple(client6, 5353, vip6, 53, ip_proto::udp),
         error6(vip6, client6, unreachable6, 4, 0,
                quoted(ip_proto::udp, client6, 5353, vip6, 53, 200))},
        {"IPv6 time exceeded quoting an ICMPv6 echo: its checksum follows the addresses",
         error6(router6, snat6, time_exceeded6, 0, 0, quoted_echo_v6(snat6, backend6)),
         tuple(snat6, 0, backend6, 0, ip_proto::icmpv6), outer6,
         tuple(client6, 0, vip6, 0, ip_proto::icmpv6),
         error6(vip6, client6, time_exceeded6, 0, 0, quoted_echo_v6(client6, vip6))},
    };
}

TEST(IcmpError, ReadsTheQuotedTuple) {
    for (const IcmpErrorCase &c : icmp_error_cases()) {
        SCOPED_TRACE(c.description);
        FlowKey key;
        ASSERT_TRUE(quoted_flow_key(c.input.data(), parsed(c.input), key));
        EXPECT_EQ(key, c.quoted_before);
    }
}

TEST(IcmpError, RewriteMatchesTheErrorBuiltFromScratch) {
    for (const IcmpErrorCase &c : icmp_error_cases()) {
        SCOPED_TRACE(c.description);
        Bytes frame = c.input;
        ASSERT_TRUE(rewrite_icmp_error(frame.data(), parsed(frame), c.outer, c.quoted_after));
        EXPECT_EQ(frame, c.expected);
        FlowKey key;
        ASSERT_TRUE(quoted_flow_key(frame.data(), parsed(frame), key));
        EXPECT_EQ(key, c.quoted_after);
    }
}

struct RefusedCase {
    const char *description;
    Bytes frame;
};

std::vector<RefusedCase> refused_cases() {
    const Bytes tcp_quote4 = quoted(ip_proto::tcp, snat4, 61000, backend4, 8080, 48);
    const Bytes tcp_quote6 = quoted(ip_proto::tcp, snat6, 61000, backend6, 8443, 68);
    Bytes ihl_beyond_quote = first_bytes(tcp_quote4, 28);
    ihl_beyond_quote[0] = 0x4f;  // 60-byte header in a 28-byte quote
    Bytes ihl_too_small = tcp_quote4;
    ihl_too_small[0] = 0x44;
    Bytes later_fragment = tcp_quote4;
    later_fragment[7] = 0x10;  // fragment offset 16 units
    Bytes extension_quote = ip_packet(snat6, backend6, ip_proto::hop_by_hop,
                                      concat({ipv6_extension(ip_proto::tcp), Bytes(20)}));
    // Ethernet padding after a short quote must not count as quote.
    Bytes padded = error4(router4, snat4, unreachable, fragmentation_needed, 1400,
                          first_bytes(tcp_quote4, 27));
    append(padded, Bytes(32, 0));
    Bytes fragmented_error = concat(
        {ether_for(router4),
         ipv4(router4, snat4, ip_proto::icmp, 8 + 48, {}, more_fragments),
         icmp_error(unreachable, fragmentation_needed, 1400, tcp_quote4)});
    return {
        {"IPv4 quote with 7 bytes of TCP",
         error4(router4, snat4, unreachable, 1, 0, first_bytes(tcp_quote4, 27))},
        {"IPv4 quote cut inside the IP header",
         error4(router4, snat4, unreachable, 1, 0, first_bytes(tcp_quote4, 15))},
        {"IPv4 error with no quote at all", error4(router4, snat4, unreachable, 1, 0, {})},
        {"IPv4 quote whose IHL runs past the quote",
         error4(router4, snat4, unreachable, 1, 0, ihl_beyond_quote)},
        {"IPv4 quote with IHL below 5", error4(router4, snat4, unreachable, 1, 0, ihl_too_small)},
        {"IPv4 error quoting IPv6", error4(router4, snat4, unreachable, 1, 0, tcp_quote6)},
        {"IPv4 quote of a later fragment has no ports",
         error4(router4, snat4, time_exceeded, 1, 0, later_fragment)},
        {"IPv4 short quote followed by Ethernet padding", padded},
        {"IPv4 error that is itself a fragment", fragmented_error},
        {"IPv4 redirect is not an error we translate",
         error4(router4, snat4, 5, 1, 0x0a000001, tcp_quote4)},
        {"IPv4 echo request", echo_request_v4(gw, peer, client4, vip4)},
        {"IPv4 TCP", frame(ip_proto::tcp, client4, 40000, vip4, 80)},
        {"IPv6 quote cut inside the IP header",
         error6(router6, snat6, packet_too_big6, 0, 1280, first_bytes(tcp_quote6, 39))},
        {"IPv6 quote with 7 bytes of TCP",
         error6(router6, snat6, packet_too_big6, 0, 1280, first_bytes(tcp_quote6, 47))},
        {"IPv6 quote with an extension header",
         error6(router6, snat6, packet_too_big6, 0, 1280, extension_quote)},
        {"IPv6 error quoting IPv4", error6(router6, snat6, unreachable6, 0, 0, tcp_quote4)},
        {"IPv6 error of 4 bytes, not even its MTU field",
         ipv6_frame(gw, peer, router6, snat6, ip_proto::icmpv6,
                    icmpv6(router6, snat6, packet_too_big6, 0, {}))},
        {"IPv6 echo request", echo_request_v6(gw, peer, client6, vip6)},
        {"ARP", concat({ethernet(gw, peer, ether_type::arp),
                        arp(1, peer, client4, MacAddress{}, vip4)})},
    };
}

TEST(IcmpError, RefusesWhatItCannotTranslate) {
    for (const RefusedCase &c : refused_cases()) {
        SCOPED_TRACE(c.description);
        const ParsedPacket packet = parsed(c.frame);
        FlowKey key;
        EXPECT_FALSE(quoted_flow_key(c.frame.data(), packet, key));
        Bytes frame = c.frame;
        const bool v4 = packet.network != NetworkLayer::ipv6;
        EXPECT_FALSE(rewrite_icmp_error(
            frame.data(), packet, tuple(v4 ? vip4 : vip6, 0, v4 ? client4 : client6, 0, 1),
            tuple(v4 ? client4 : client6, 1, v4 ? vip4 : vip6, 2, ip_proto::tcp)));
        EXPECT_EQ(frame, c.frame);
    }
}

TEST(IcmpError, RefusesTuplesOfTheOtherFamily) {
    const Bytes input = error4(router4, snat4, unreachable, fragmentation_needed, 1400,
                               quoted(ip_proto::tcp, snat4, 61000, backend4, 8080, 48));
    Bytes frame = input;
    const ParsedPacket packet = parsed(frame);
    EXPECT_FALSE(rewrite_icmp_error(frame.data(), packet, tuple(vip6, 0, client6, 0, 58),
                                    tuple(client4, 40000, vip4, 80, ip_proto::tcp)));
    EXPECT_FALSE(rewrite_icmp_error(frame.data(), packet, tuple(vip4, 0, client4, 0, 1),
                                    tuple(client6, 40000, vip6, 80, ip_proto::tcp)));
    EXPECT_EQ(frame, input);
}

// ---------------------------------------------------------------------------
// Robustness: frames the parser accepts, mutated and cut anywhere, copied to
// a heap buffer of exactly l3_end bytes so that AddressSanitizer reports any
// read or write past the IP packet.

// Makes a mutated frame's lengths and checksums consistent again, so that
// the parser accepts it and the checksum properties can be checked.
void repair(Bytes &f, size_t l3, bool v4) {
    const size_t ip_length = f.size() - l3;
    if (v4) {
        put16(f, l3 + 2, uint16_t(ip_length));
        const size_t header_length = size_t(f[l3] & 0x0f) * 4;
        if (header_length < 20 || l3 + header_length > f.size())
            return;  // no whole header: the parser refuses it anyway
        refresh_ipv4_checksum(f, l3);
    } else {
        put16(f, l3 + 4, uint16_t(ip_length - 40));
    }
    const size_t icmp_at = l3 + (v4 ? size_t(f[l3] & 0x0f) * 4 : 40);
    if (icmp_at + 4 > f.size())
        return;
    f[icmp_at + 2] = f[icmp_at + 3] = 0;
    uint64_t sum = 0;
    if (!v4) {
        IpAddress s, d;
        s.family = d.family = AddressFamily::ipv6;
        std::copy(f.begin() + long(l3) + 8, f.begin() + long(l3) + 24, s.bytes.begin());
        std::copy(f.begin() + long(l3) + 24, f.begin() + long(l3) + 40, d.bytes.begin());
        sum = pseudo_header_sum(s, d, uint32_t(f.size() - icmp_at), ip_proto::icmpv6);
    }
    const uint16_t checksum =
        checksum_finish(checksum_add(sum, f.data() + icmp_at, f.size() - icmp_at));
    std::memcpy(f.data() + icmp_at + 2, &checksum, 2);
}

bool icmp_checksum_good(const uint8_t *f, const ParsedPacket &p) {
    uint64_t sum = 0;
    if (p.network == NetworkLayer::ipv6)
        sum = ipv6_pseudo_header_sum(f + p.l3_offset + 8, f + p.l3_offset + 24, p.l4_length,
                                     ip_proto::icmpv6);
    return checksum_finish(checksum_add(sum, f + p.l4_offset, p.l4_length)) == 0;
}

TEST(IcmpError, MutatedAndTruncatedFramesStayWithinTheIpPacket) {
    std::vector<Bytes> seeds;
    for (const IcmpErrorCase &c : icmp_error_cases())
        seeds.push_back(c.input);
    for (const RefusedCase &c : refused_cases())
        seeds.push_back(c.frame);
    for (const RewriteCase &c : rewrite_cases())
        seeds.push_back(c.input);

    std::mt19937 rng(792);
    int parsed_frames = 0, quotes_found = 0, rewrites = 0;
    for (int i = 0; i < 40000; ++i) {
        Bytes f = seeds[rng() % seeds.size()];
        const bool tagged = f[12] == 0x81;
        const size_t l3 = tagged ? 18 : 14;
        const uint16_t type = uint16_t(f[l3 - 2] << 8 | f[l3 - 1]);
        if (type != ether_type::ipv4 && type != ether_type::ipv6)
            continue;
        const bool v4 = type == ether_type::ipv4;
        const int mutation = int(rng() % 4);
        if (mutation == 3) {
            // Random bytes after the Ethernet header and any tag.
            f.resize(l3 + rng() % 120);
            for (size_t j = l3; j < f.size(); ++j)
                f[j] = uint8_t(rng());
            if (f.size() > l3)
                f[l3] = uint8_t(v4 ? 0x45 : 0x60);
        } else {
            // Flip a few bytes past the outer IP header, then cut anywhere.
            const size_t header = v4 ? 20 : 40;
            const int flips = int(rng() % 4);
            for (int k = 0; k < flips && f.size() > l3 + header; ++k)
                f[l3 + header + rng() % (f.size() - l3 - header)] = uint8_t(rng());
            if (mutation >= 1 && f.size() > l3 + header)
                f.resize(l3 + header + rng() % (f.size() - l3 - header + 1));
        }
        if (f.size() >= l3 + (v4 ? 20 : 40))
            repair(f, l3, v4);

        ParsedPacket packet;
        if (parse_packet(f.data(), uint32_t(f.size()), packet) != DropReason::none)
            continue;
        if (packet.network != NetworkLayer::ipv4 && packet.network != NetworkLayer::ipv6)
            continue;
        ++parsed_frames;
        const std::unique_ptr<uint8_t[]> exact(new uint8_t[packet.l3_end]);
        std::memcpy(exact.get(), f.data(), packet.l3_end);
        const bool checksum_was_good = packet.has_l4 && icmp_checksum_good(exact.get(), packet);

        (void)flow_key_of(exact.get(), packet);
        FlowKey key;
        const bool found = quoted_flow_key(exact.get(), packet, key);
        quotes_found += found;
        const uint8_t family = packet.network == NetworkLayer::ipv6 ? 6 : 4;
        FlowKey outer = key.reversed(), inner = key;
        outer.family = family;
        inner.family = family;
        for (size_t j = 0; j < (family == 4 ? 4u : 16u); ++j) {
            outer.source[j] = uint8_t(rng());
            inner.destination[j] = uint8_t(rng());
        }
        inner.source_port = uint16_t(rng());
        const bool rewritten = rewrite_icmp_error(exact.get(), packet, outer, inner);
        ASSERT_EQ(rewritten, found);
        if (rewritten) {
            ++rewrites;
            // Independent of the rows above: the checksums a receiver checks
            // still hold after any rewrite.
            if (family == 4) {
                EXPECT_EQ(internet_checksum(exact.get() + packet.l3_offset,
                                            packet.l3_header_length), 0);
            }
            if (checksum_was_good) {
                EXPECT_TRUE(icmp_checksum_good(exact.get(), packet)) << "iteration " << i;
            }
            FlowKey after;
            ASSERT_TRUE(quoted_flow_key(exact.get(), packet, after));
            EXPECT_EQ(after.source, inner.source);
            EXPECT_EQ(after.destination, inner.destination);
        }
        rewrite_tuple(exact.get(), packet, outer);
        (void)decrement_hop_limit(exact.get(), packet);
    }
    // The mutations must reach the interesting paths, not just the parser's
    // refusals.
    EXPECT_GT(parsed_frames, 20000);
    EXPECT_GT(quotes_found, 2000);
    EXPECT_EQ(rewrites, quotes_found);
}

TEST(TurnIntoReset, AnswersASynOverIpv6WithRstAck) {
    const IpAddress client = ip("2001:db8:0:1::2"), vip = ip("2001:db8:10::1");
    const MacAddress client_mac = mac("02:00:00:00:00:02"), gw = mac("02:00:00:00:01:00");
    Bytes syn = tcp(40000, 80, 0x02, 12);  // with options, which the RST drops
    syn[4] = 0x10;                         // seq 0x10000000
    Bytes frame = concat({ethernet(gw, client_mac, 0x86dd), ipv6(client, vip, 0, 8 + syn.size()),
                          ipv6_extension(6), with_transport_checksum(client, vip, 6, syn)});
    ParsedPacket p;
    ASSERT_EQ(parse_packet(frame.data(), uint32_t(frame.size()), p), DropReason::none);
    const uint32_t length = turn_into_reset(frame.data(), p, gw.bytes.data());
    ASSERT_EQ(length, 14u + 40 + 20);
    frame.resize(length);
    ASSERT_EQ(parse_packet(frame.data(), length, p), DropReason::none);
    EXPECT_EQ(p.l4_protocol, 6);
    const FlowKey k = flow_key_of(frame.data(), p);
    EXPECT_EQ(0, std::memcmp(k.source.data(), vip.bytes.data(), 16));
    EXPECT_EQ(0, std::memcmp(k.destination.data(), client.bytes.data(), 16));
    EXPECT_EQ(ntohs(k.source_port), 80);
    EXPECT_EQ(ntohs(k.destination_port), 40000);
    const uint8_t *rst = frame.data() + p.l4_offset;
    EXPECT_EQ(rst[13], 0x14);  // RST|ACK: the SYN had no ACK
    EXPECT_EQ(Bytes(rst + 4, rst + 8), (Bytes{0, 0, 0, 0}));
    EXPECT_EQ(Bytes(rst + 8, rst + 12), (Bytes{0x10, 0, 0, 1}));  // SEG.SEQ + 1 for the SYN
    EXPECT_EQ(Bytes(frame.begin(), frame.begin() + 6), Bytes(client_mac.bytes.begin(), client_mac.bytes.end()));
    EXPECT_EQ(checksum_finish(checksum_add(pseudo_header_sum(vip, client, 20, 6), rst, 20)), 0);
}

TEST(TurnIntoReset, NeverAnswersARstOrAnotherProtocol) {
    const IpAddress a = ip("198.18.0.2"), b = ip("198.18.10.1");
    const MacAddress m = mac("02:00:00:00:00:02");
    for (const Bytes &original : {ipv4_frame(m, m, a, b, 6, with_transport_checksum(a, b, 6, tcp(1, 2, 0x04))),
                                  ipv4_frame(m, m, a, b, 17, with_transport_checksum(a, b, 17, udp(1, 2, 0)))}) {
        Bytes frame = original;
        ParsedPacket p;
        ASSERT_EQ(parse_packet(frame.data(), uint32_t(frame.size()), p), DropReason::none);
        EXPECT_EQ(turn_into_reset(frame.data(), p, m.bytes.data()), 0u);
        EXPECT_EQ(frame, original);
    }
}

} // namespace
} // namespace sluice::lb
