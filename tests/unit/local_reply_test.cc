// Answers for the gateway's own addresses, checked field by field.
#include <gtest/gtest.h>

#include "dataplane/local_reply.h"
#include "tests/fixtures/packet_builder.h"

namespace sluice {
namespace {

using namespace testing;

const MacAddress gw = mac("02:00:00:00:00:01");
const MacAddress client = mac("02:00:00:00:00:02");
const IpAddress c4 = ip("198.18.0.2"), g4 = ip("198.18.0.1"), other4 = ip("198.18.0.9");
const IpAddress c6 = ip("2001:db8:0:1::2"), g6 = ip("2001:db8:0:1::1"),
                other6 = ip("2001:db8:0:1::9");

LocalAddresses local() {
    LocalAddresses l;
    l.mac = gw;
    l.add(g4);
    l.add(g6);
    return l;
}

struct Answer {
    LocalReply reply;
    DropReason reason = DropReason::none;
    Bytes frame;
};

Answer answer(Bytes frame, uint32_t capacity = 2048) {
    ParsedPacket parsed;
    EXPECT_EQ(parse_packet(frame.data(), uint32_t(frame.size()), parsed), DropReason::none);
    uint32_t length = uint32_t(frame.size());
    frame.resize(std::max<size_t>(capacity, frame.size()));
    Answer a;
    a.reply = answer_local(frame.data(), length, capacity, parsed, local(), a.reason);
    frame.resize(length);
    a.frame = frame;
    return a;
}

Bytes slice(const Bytes &b, size_t at, size_t n) { return Bytes(b.begin() + at, b.begin() + at + n); }
Bytes bytes_of(const MacAddress &m) { return Bytes(m.bytes.begin(), m.bytes.end()); }
Bytes bytes_of(const IpAddress &a) { return Bytes(a.bytes.begin(), a.bytes.begin() + (a.is_v4() ? 4 : 16)); }

uint16_t icmpv6_sum(const Bytes &f, size_t l3 = 14) {
    const size_t length = size_t(f[l3 + 4]) << 8 | f[l3 + 5];
    uint64_t sum = ipv6_pseudo_header_sum(f.data() + l3 + 8, f.data() + l3 + 24, uint32_t(length), 58);
    return checksum_finish(checksum_add(sum, f.data() + l3 + 40, length));
}

TEST(LocalReply, ArpRequestForOwnAddress) {
    const Answer a = answer(concat({ethernet(mac("ff:ff:ff:ff:ff:ff"), client, 0x0806),
                                    arp(1, client, c4, {}, g4)}));
    ASSERT_EQ(a.reply, LocalReply::arp_reply);
    EXPECT_EQ(slice(a.frame, 0, 6), bytes_of(client));
    EXPECT_EQ(slice(a.frame, 6, 6), bytes_of(gw));
    EXPECT_EQ(a.frame[14 + 7], 2);  // op: reply
    EXPECT_EQ(slice(a.frame, 14 + 8, 6), bytes_of(gw));
    EXPECT_EQ(slice(a.frame, 14 + 14, 4), bytes_of(g4));
    EXPECT_EQ(slice(a.frame, 14 + 18, 6), bytes_of(client));
    EXPECT_EQ(slice(a.frame, 14 + 24, 4), bytes_of(c4));
}

TEST(LocalReply, ArpForOtherAddressOrReplyIsNotLocal) {
    EXPECT_EQ(answer(concat({ethernet(mac("ff:ff:ff:ff:ff:ff"), client, 0x0806),
                             arp(1, client, c4, {}, other4)})).reply,
              LocalReply::not_local);
    EXPECT_EQ(answer(concat({ethernet(gw, client, 0x0806), arp(2, client, c4, gw, g4)})).reply,
              LocalReply::not_local);
}

TEST(LocalReply, ArpOverVlanKeepsTheTag) {
    const Answer a = answer(concat({ethernet(mac("ff:ff:ff:ff:ff:ff"), client, 0x8100),
                                    vlan_tag(42, 0x0806), arp(1, client, c4, {}, g4)}));
    ASSERT_EQ(a.reply, LocalReply::arp_reply);
    EXPECT_EQ(a.frame[12], 0x81);
    EXPECT_EQ(a.frame[15], 42);
    EXPECT_EQ(a.frame[18 + 7], 2);
}

TEST(LocalReply, IcmpEchoRequest) {
    const Bytes request = concat({echo_request_v4(gw, client, c4, g4), Bytes(4)});  // + padding
    const Answer a = answer(request);
    ASSERT_EQ(a.reply, LocalReply::icmp_echo_reply);
    ASSERT_EQ(a.frame.size(), request.size() - 4);
    EXPECT_EQ(slice(a.frame, 0, 6), bytes_of(client));
    EXPECT_EQ(slice(a.frame, 6, 6), bytes_of(gw));
    EXPECT_EQ(slice(a.frame, 14 + 12, 4), bytes_of(g4));
    EXPECT_EQ(slice(a.frame, 14 + 16, 4), bytes_of(c4));
    EXPECT_EQ(a.frame[14 + 8], 64);
    EXPECT_EQ(internet_checksum(a.frame.data() + 14, 20), 0);
    EXPECT_EQ(a.frame[34], 0);  // echo reply
    EXPECT_EQ(internet_checksum(a.frame.data() + 34, a.frame.size() - 34), 0);
    EXPECT_EQ(slice(a.frame, 34 + 4, 60), slice(request, 34 + 4, 60));  // id, seq, payload
}

TEST(LocalReply, IcmpEchoWithBadChecksumIsDropped) {
    Bytes request = echo_request_v4(gw, client, c4, g4);
    request[34 + 2] ^= 0xff;
    const Answer a = answer(request);
    EXPECT_EQ(a.reply, LocalReply::drop);
    EXPECT_EQ(a.reason, DropReason::bad_icmp_checksum);
}

TEST(LocalReply, EchoToOtherAddressesIsNotLocal) {
    EXPECT_EQ(answer(echo_request_v4(gw, client, c4, other4)).reply, LocalReply::not_local);
    EXPECT_EQ(answer(echo_request_v6(gw, client, c6, other6)).reply, LocalReply::not_local);
}

TEST(LocalReply, Icmpv6EchoRequest) {
    const Bytes request = echo_request_v6(gw, client, c6, g6);
    const Answer a = answer(request);
    ASSERT_EQ(a.reply, LocalReply::icmpv6_echo_reply);
    ASSERT_EQ(a.frame.size(), request.size());
    EXPECT_EQ(slice(a.frame, 0, 6), bytes_of(client));
    EXPECT_EQ(slice(a.frame, 14 + 8, 16), bytes_of(g6));
    EXPECT_EQ(slice(a.frame, 14 + 24, 16), bytes_of(c6));
    EXPECT_EQ(a.frame[54], 129);
    EXPECT_EQ(icmpv6_sum(a.frame), 0);
}

TEST(LocalReply, Icmpv6EchoWithBadChecksumIsDropped) {
    Bytes request = echo_request_v6(gw, client, c6, g6);
    request[60] ^= 0x01;
    const Answer a = answer(request);
    EXPECT_EQ(a.reply, LocalReply::drop);
    EXPECT_EQ(a.reason, DropReason::bad_icmpv6_checksum);
}

TEST(LocalReply, NeighborSolicitationGetsAdvertisement) {
    const Answer a = answer(neighbor_solicitation(client, c6, g6));
    ASSERT_EQ(a.reply, LocalReply::neighbor_advertisement);
    ASSERT_EQ(a.frame.size(), 14u + 40 + 32);
    EXPECT_EQ(slice(a.frame, 0, 6), bytes_of(client));
    EXPECT_EQ(slice(a.frame, 6, 6), bytes_of(gw));
    EXPECT_EQ(a.frame[14 + 7], 255);
    EXPECT_EQ(slice(a.frame, 14 + 8, 16), bytes_of(g6));
    EXPECT_EQ(slice(a.frame, 14 + 24, 16), bytes_of(c6));
    EXPECT_EQ(a.frame[54], 136);
    EXPECT_EQ(a.frame[54 + 4], 0x60);  // solicited, override
    EXPECT_EQ(slice(a.frame, 54 + 8, 16), bytes_of(g6));
    EXPECT_EQ(a.frame[54 + 24], 2);  // target link-layer address option
    EXPECT_EQ(slice(a.frame, 54 + 26, 6), bytes_of(gw));
    EXPECT_EQ(icmpv6_sum(a.frame), 0);
}

TEST(LocalReply, DuplicateAddressDetectionIsAnsweredToAllNodes) {
    const IpAddress unspecified = ip("::");
    const Answer a = answer(neighbor_solicitation(client, unspecified, g6, false));
    ASSERT_EQ(a.reply, LocalReply::neighbor_advertisement);
    EXPECT_EQ(slice(a.frame, 0, 6), (Bytes{0x33, 0x33, 0, 0, 0, 1}));
    EXPECT_EQ(slice(a.frame, 14 + 24, 16), bytes_of(ip("ff02::1")));
    EXPECT_EQ(a.frame[54 + 4], 0x20);  // override only
    EXPECT_EQ(icmpv6_sum(a.frame), 0);
}

TEST(LocalReply, InvalidNeighborSolicitationsAreDropped) {
    Bytes hop_limit = neighbor_solicitation(client, c6, g6);
    hop_limit[14 + 7] = 254;
    Bytes zero_length_option = neighbor_solicitation(client, c6, g6);
    zero_length_option[54 + 24 + 1] = 0;
    Bytes bad_checksum = neighbor_solicitation(client, c6, g6);
    bad_checksum[54 + 2] ^= 0x10;
    for (const Bytes &frame : {hop_limit, zero_length_option, bad_checksum}) {
        const Answer a = answer(frame);
        EXPECT_EQ(a.reply, LocalReply::drop);
        EXPECT_EQ(a.reason, DropReason::bad_neighbor_discovery);
    }
}

TEST(LocalReply, SolicitationForAnotherTargetIsNotLocal) {
    EXPECT_EQ(answer(neighbor_solicitation(client, c6, other6)).reply, LocalReply::not_local);
}

TEST(LocalReply, AdvertisementThatDoesNotFitIsDropped) {
    const Bytes request = neighbor_solicitation(client, ip("::"), g6, false);
    const Answer a = answer(request, uint32_t(request.size()));
    EXPECT_EQ(a.reply, LocalReply::drop);
    EXPECT_EQ(a.reason, DropReason::no_room_for_reply);
}

TEST(LocalReply, TcpToOwnAddressIsNotLocal) {
    EXPECT_EQ(answer(ipv4_frame(gw, client, c4, g4, 6, tcp(1, 22, 2))).reply,
              LocalReply::not_local);
}

} // namespace
} // namespace sluice
