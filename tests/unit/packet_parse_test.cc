// The parser as a table: each row is a frame built byte by byte, the verdict
// expected, and for good frames the layers found.
#include <gtest/gtest.h>

#include "dataplane/checksum.h"
#include "dataplane/packet_parse.h"
#include "tests/fixtures/packet_builder.h"

namespace sluice {
namespace {

using namespace testing;

const MacAddress gw = mac("02:00:00:00:00:01");
const MacAddress client = mac("02:00:00:00:00:02");
const IpAddress c4 = ip("198.18.0.2"), g4 = ip("198.18.0.1");
const IpAddress c6 = ip("2001:db8:0:1::2"), g6 = ip("2001:db8:0:1::1");

Bytes udp4() { return ipv4_frame(gw, client, c4, g4, 17, concat({udp(1000, 53, 4), Bytes(4)})); }
Bytes tcp4() { return ipv4_frame(gw, client, c4, g4, 6, tcp(40000, 80, 0x02)); }
Bytes tcp6() { return ipv6_frame(gw, client, c6, g6, 6, tcp(40000, 80, 0x02)); }

Bytes with_byte(Bytes b, size_t at, uint8_t value) {
    b.at(at) = value;
    return b;
}
Bytes truncated(Bytes b, size_t length) {
    b.resize(length);
    return b;
}
// Changes an IPv4 header field and fixes the header checksum after it.
Bytes ipv4_with(Bytes b, size_t at, uint8_t value, size_t l3 = 14) {
    b.at(at) = value;
    const size_t header = size_t(b[l3] & 0x0f) * 4;
    b[l3 + 10] = b[l3 + 11] = 0;
    if (header >= 20 && l3 + header <= b.size()) {
        const uint16_t sum = internet_checksum(b.data() + l3, header);
        std::memcpy(b.data() + l3 + 10, &sum, 2);
    }
    return b;
}

struct Case {
    const char *description;
    Bytes frame;
    DropReason verdict;
    NetworkLayer network = NetworkLayer::other;
    uint8_t l4_protocol = 0;
    bool has_l4 = false;
};

std::vector<Case> cases() {
    const Bytes options_nop(8, 0x01);  // 8 bytes of IPv4 NOP options
    std::vector<Case> c = {
        // Well formed.
        {"UDP over IPv4", udp4(), DropReason::none, NetworkLayer::ipv4, 17, true},
        {"TCP SYN over IPv4", tcp4(), DropReason::none, NetworkLayer::ipv4, 6, true},
        {"TCP over IPv6", tcp6(), DropReason::none, NetworkLayer::ipv6, 6, true},
        {"IPv4 with options",
         concat({ethernet(gw, client, 0x0800), ipv4(c4, g4, 6, 20, options_nop), tcp(1, 2, 2)}),
         DropReason::none, NetworkLayer::ipv4, 6, true},
        {"IPv4 over one VLAN tag",
         concat({ethernet(gw, client, 0x8100), vlan_tag(100, 0x0800), ipv4(c4, g4, 6, 20),
                 tcp(1, 2, 2)}),
         DropReason::none, NetworkLayer::ipv4, 6, true},
        {"IPv6 over QinQ",
         concat({ethernet(gw, client, 0x88a8), vlan_tag(10, 0x8100), vlan_tag(20, 0x86dd),
                 ipv6(c6, g6, 6, 20), tcp(1, 2, 2)}),
         DropReason::none, NetworkLayer::ipv6, 6, true},
        {"IPv6 hop-by-hop then destination options then UDP",
         concat({ethernet(gw, client, 0x86dd), ipv6(c6, g6, 0, 8 + 16 + 8),
                 ipv6_extension(60), ipv6_extension(17, 1), udp(1, 2, 0)}),
         DropReason::none, NetworkLayer::ipv6, 17, true},
        {"IPv6 first fragment keeps its L4 header",
         concat({ethernet(gw, client, 0x86dd), ipv6(c6, g6, 44, 8 + 8),
                 ipv6_fragment(17, 0, true), udp(1, 2, 1000)}),
         DropReason::none, NetworkLayer::ipv6, 17, true},
        {"IPv6 later fragment has no L4 header",
         concat({ethernet(gw, client, 0x86dd), ipv6(c6, g6, 44, 8 + 8),
                 ipv6_fragment(17, 100, false), Bytes(8)}),
         DropReason::none, NetworkLayer::ipv6, 17, false},
        {"IPv4 later fragment has no L4 header",
         concat({ethernet(gw, client, 0x0800), ipv4(c4, g4, 17, 8, {}, 100), Bytes(8)}),
         DropReason::none, NetworkLayer::ipv4, 17, false},
        {"IPv4 first fragment with a UDP length beyond it",
         concat({ethernet(gw, client, 0x0800), ipv4(c4, g4, 17, 16, {}, 0x2000),
                 udp(1, 2, 3000), Bytes(8)}),
         DropReason::none, NetworkLayer::ipv4, 17, true},
        {"ICMP echo", echo_request_v4(gw, client, c4, g4), DropReason::none, NetworkLayer::ipv4,
         1, true},
        {"ICMPv6 echo", echo_request_v6(gw, client, c6, g6), DropReason::none,
         NetworkLayer::ipv6, 58, true},
        {"ARP request", concat({ethernet(gw, client, 0x0806), arp(1, client, c4, {}, g4)}),
         DropReason::none, NetworkLayer::arp},
        {"Ethernet padding after a short IPv4 packet",
         concat({tcp4(), Bytes(6)}), DropReason::none, NetworkLayer::ipv4, 6, true},
        {"unknown EtherType passes unjudged", concat({ethernet(gw, client, 0x88cc), Bytes(40)}),
         DropReason::none},
        {"GRE over IPv4 passes without L4", ipv4_frame(gw, client, c4, g4, 47, Bytes(8)),
         DropReason::none, NetworkLayer::ipv4, 47, false},

        // Malformed.
        {"empty frame", Bytes{}, DropReason::truncated_ethernet},
        {"13-byte frame", truncated(udp4(), 13), DropReason::truncated_ethernet},
        {"VLAN tag cut off", truncated(concat({ethernet(gw, client, 0x8100), vlan_tag(1, 0x800)}), 16),
         DropReason::truncated_vlan},
        {"three VLAN tags",
         concat({ethernet(gw, client, 0x8100), vlan_tag(1, 0x8100), vlan_tag(2, 0x8100),
                 vlan_tag(3, 0x0800), ipv4(c4, g4, 6, 20), tcp(1, 2, 2)}),
         DropReason::too_many_vlan_tags},
        {"ARP cut off", truncated(concat({ethernet(gw, client, 0x0806), arp(1, client, c4, {}, g4)}), 40),
         DropReason::truncated_arp},
        {"ARP for another protocol",
         with_byte(concat({ethernet(gw, client, 0x0806), arp(1, client, c4, {}, g4)}), 14 + 3, 0xdd),
         DropReason::unsupported_arp},
        {"IPv4 header cut off", truncated(udp4(), 14 + 19), DropReason::truncated_ipv4},
        {"IPv4 version 5", ipv4_with(udp4(), 14, 0x55), DropReason::bad_ipv4_version},
        {"IPv4 IHL of 4", ipv4_with(udp4(), 14, 0x44), DropReason::bad_ipv4_ihl},
        {"IPv4 IHL past the frame", with_byte(truncated(udp4(), 14 + 24), 14, 0x4f),
         DropReason::truncated_ipv4_options},
        {"IPv4 total length below the header", ipv4_with(ipv4_with(udp4(), 16, 0), 17, 19),
         DropReason::ipv4_total_length_below_header},
        {"IPv4 total length beyond the frame", ipv4_with(udp4(), 16, 0x05),
         DropReason::ipv4_total_length_beyond_frame},
        {"IPv4 bad header checksum", with_byte(udp4(), 14 + 10, 0x00), DropReason::bad_ipv4_checksum},
        {"IPv4 multicast source", ipv4_with(udp4(), 14 + 12, 224), DropReason::bad_ipv4_source},
        {"IPv6 header cut off", truncated(tcp6(), 14 + 39), DropReason::truncated_ipv6},
        {"IPv6 version 4", with_byte(tcp6(), 14, 0x40), DropReason::bad_ipv6_version},
        {"IPv6 payload length beyond the frame", with_byte(tcp6(), 14 + 5, 21),
         DropReason::ipv6_payload_beyond_frame},
        {"IPv6 multicast source", with_byte(tcp6(), 14 + 8, 0xff), DropReason::bad_ipv6_source},
        {"IPv6 extension header past the payload",
         concat({ethernet(gw, client, 0x86dd), ipv6(c6, g6, 60, 8), ipv6_extension(17, 1)}),
         DropReason::truncated_ipv6_extension},
        {"IPv6 hop-by-hop after another extension",
         concat({ethernet(gw, client, 0x86dd), ipv6(c6, g6, 60, 16), ipv6_extension(0),
                 ipv6_extension(59)}),
         DropReason::misplaced_ipv6_hop_by_hop},
        {"IPv6 chain of nine extension headers",
         [&] {
             Bytes chain;
             for (int i = 0; i < 9; ++i)
                 chain = concat({chain, ipv6_extension(60)});
             return concat({ethernet(gw, client, 0x86dd), ipv6(c6, g6, 60, chain.size()), chain});
         }(),
         DropReason::too_many_ipv6_extensions},
        {"TCP header cut off",
         concat({ethernet(gw, client, 0x0800), ipv4(c4, g4, 6, 19), Bytes(19)}),
         DropReason::truncated_tcp},
        {"TCP data offset 4", with_byte(tcp4(), 14 + 20 + 12, 0x40), DropReason::bad_tcp_data_offset},
        {"TCP data offset past the packet", with_byte(tcp4(), 14 + 20 + 12, 0xf0),
         DropReason::tcp_options_beyond_packet},
        {"UDP header cut off", concat({ethernet(gw, client, 0x0800), ipv4(c4, g4, 17, 7), Bytes(7)}),
         DropReason::truncated_udp},
        {"UDP length below 8", with_byte(udp4(), 14 + 20 + 5, 7), DropReason::bad_udp_length},
        {"UDP length beyond the packet", with_byte(udp4(), 14 + 20 + 5, 13),
         DropReason::bad_udp_length},
        {"ICMP header cut off", ipv4_frame(gw, client, c4, g4, 1, Bytes(7)),
         DropReason::truncated_icmp},
        {"ICMPv6 header cut off", ipv6_frame(gw, client, c6, g6, 58, Bytes(3)),
         DropReason::truncated_icmpv6},
    };
    return c;
}

TEST(PacketParse, Table) {
    for (const Case &c : cases()) {
        SCOPED_TRACE(c.description);
        ParsedPacket parsed;
        // A copy exactly as long as the frame, so ASan sees any read past it.
        std::unique_ptr<uint8_t[]> frame(new uint8_t[c.frame.size() ? c.frame.size() : 1]);
        std::copy(c.frame.begin(), c.frame.end(), frame.get());
        const DropReason verdict = parse_packet(frame.get(), uint32_t(c.frame.size()), parsed);
        EXPECT_STREQ(drop_reason_name(verdict), drop_reason_name(c.verdict));
        if (c.verdict != DropReason::none)
            continue;
        EXPECT_EQ(parsed.network, c.network);
        if (c.network == NetworkLayer::ipv4 || c.network == NetworkLayer::ipv6) {
            EXPECT_EQ(parsed.l4_protocol, c.l4_protocol);
            EXPECT_EQ(parsed.has_l4, c.has_l4);
            EXPECT_LE(parsed.l3_end, c.frame.size());
            EXPECT_LE(parsed.l4_offset, parsed.l3_end);
        }
    }
}

TEST(PacketParse, AtLeastFifteenMalformedCases) {
    size_t malformed = 0;
    for (const Case &c : cases())
        malformed += c.verdict != DropReason::none;
    EXPECT_GE(malformed, 15u);
}

TEST(PacketParse, OffsetsOfTcpOverVlanAndOptions) {
    const Bytes frame = concat({ethernet(gw, client, 0x8100), vlan_tag(7, 0x0800),
                                ipv4(c4, g4, 6, 20, Bytes(4, 1)), tcp(1, 2, 2)});
    ParsedPacket p;
    ASSERT_EQ(parse_packet(frame.data(), uint32_t(frame.size()), p), DropReason::none);
    EXPECT_EQ(p.vlan_count, 1);
    EXPECT_EQ(p.l3_offset, 18);
    EXPECT_EQ(p.l3_header_length, 24);
    EXPECT_EQ(p.l4_offset, 42);
    EXPECT_EQ(p.l4_length, 20);
    EXPECT_EQ(p.l3_end, frame.size());
}

TEST(PacketParse, FragmentIdentification) {
    // IPv4: the 16-bit identification of the header (the builder writes 0x1234).
    const Bytes later4 = concat({ethernet(gw, client, 0x0800), ipv4(c4, g4, 17, 8, {}, 100), Bytes(8)});
    ParsedPacket p;
    ASSERT_EQ(parse_packet(later4.data(), uint32_t(later4.size()), p), DropReason::none);
    EXPECT_TRUE(p.fragment);
    EXPECT_EQ(p.fragment_id, 0x1234u);
    // IPv6: the 32-bit identification of the fragment header.
    Bytes header = ipv6_fragment(17, 100, false);
    header[4] = 0x89;
    header[5] = 0xab;
    header[6] = 0xcd;
    header[7] = 0xef;
    const Bytes later6 = concat({ethernet(gw, client, 0x86dd), ipv6(c6, g6, 44, 8 + 8), header, Bytes(8)});
    ASSERT_EQ(parse_packet(later6.data(), uint32_t(later6.size()), p), DropReason::none);
    EXPECT_TRUE(p.fragment);
    EXPECT_EQ(p.fragment_id, 0x89abcdefu);
}

TEST(PacketParse, TrustsNicVerifiedChecksum) {
    const Bytes frame = with_byte(udp4(), 14 + 10, 0x00);
    ParsedPacket p;
    EXPECT_EQ(parse_packet(frame.data(), uint32_t(frame.size()), p, true), DropReason::none);
}

TEST(PacketParse, EveryPrefixOfGoodFramesIsSafe) {
    // Each prefix must be either accepted or dropped with a reason, and never
    // read past its end (ASan checks the latter in the sanitizer build).
    for (const Case &c : cases()) {
        for (size_t length = 0; length <= c.frame.size(); ++length) {
            std::unique_ptr<uint8_t[]> frame(new uint8_t[length ? length : 1]);
            std::copy(c.frame.begin(), c.frame.begin() + long(length), frame.get());
            ParsedPacket p;
            parse_packet(frame.get(), uint32_t(length), p);
            if (p.network == NetworkLayer::ipv4 || p.network == NetworkLayer::ipv6) {
                EXPECT_LE(p.l3_end, length);
            }
        }
    }
}

TEST(DropReason, NamesAndDescriptions) {
    EXPECT_STREQ(drop_reason_name(DropReason::truncated_ipv4), "truncated_ipv4");
    EXPECT_STREQ(drop_reason_name(DropReason::tx_full), "tx_full");
    for (size_t r = 1; r < drop_reason_count; ++r)
        EXPECT_GT(std::strlen(drop_reason_description(DropReason(r))), 10u);
}

// checksum_finish's fixed folds against folding until nothing is left
// above 16 bits (RFC 1071's definition), at the edges and at random.
TEST(Checksum, FinishFoldsAsTheLoopDoes) {
    auto by_loop = [](uint64_t sum) {
        while (sum >> 16)
            sum = (sum & 0xffff) + (sum >> 16);
        return uint16_t(~sum);
    };
    std::vector<uint64_t> sums = {0, 1, 0xffff, 0x10000, 0x1fffe, 0xffffffff, 0x100000000,
                                  0xfffffffe00000001, ~uint64_t(0), 0xffff0000ffff0000};
    uint64_t x = 0x9e3779b97f4a7c15;
    for (int i = 0; i < 100000; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        sums.push_back(x >> (i % 48));  // sums of every width
    }
    for (uint64_t sum : sums)
        ASSERT_EQ(checksum_finish(sum), by_loop(sum)) << std::hex << sum;
}

} // namespace
} // namespace sluice
