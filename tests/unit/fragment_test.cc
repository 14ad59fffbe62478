// Fragments through the balancer: the first fragment picks the flow, the
// ones after it (no ports) follow it as their datagram, both ways, in every
// mode. Datagrams are cut by hand; what comes out is put back together and
// its transport checksum verified against the rewritten addresses.
#include <gtest/gtest.h>

#include "dataplane/byte_order.h"
#include "lb/fragment_table.h"
#include "lb/l4_balancer.h"
#include "lb/nat.h"
#include "tests/fixtures/balancer_fixture.h"
#include "tests/fixtures/packet_builder.h"

namespace sluice::lb {
namespace {

using namespace sluice::testing;
using Packet = BufferedFrame;

const MacAddress client_mac = mac("02:00:00:00:00:02");
const MacAddress gw_client_mac = mac("02:00:00:00:01:00");
const MacAddress gw_backend_mac = mac("02:00:00:00:01:01");
const IpAddress client4 = ip("198.18.0.2"), client6 = ip("2001:db8:0:1::2");
const IpAddress vip_udp = ip("198.18.10.5"), vip_nat6 = ip("2001:db8:10::1"),
                vip_dsr = ip("198.18.10.4");
const IpAddress snat = ip("198.18.1.102");
const char *backends4[] = {"198.18.1.11", "198.18.1.12", "198.18.1.13"};
const char *backends6[] = {"2001:db8:0:2::11", "2001:db8:0:2::12", "2001:db8:0:2::13"};
constexpr uint16_t client_side = 0, backend_side = 1;

Service service(const char *name, const IpAddress &vip, uint8_t protocol, uint16_t port,
                ForwardingMode mode, const std::vector<const char *> &backends) {
    return balanced_service(name, vip, protocol, port, mode, addresses(backends));
}

std::unique_ptr<Snapshot> make_snapshot() {
    std::vector<Service> services;
    services.push_back(service("udp", vip_udp, 17, 53, ForwardingMode::fullnat,
                               {backends4[0], backends4[1], backends4[2]}));
    services.back().local_addresses = {snat};
    services.push_back(service("nat6", vip_nat6, 17, 53, ForwardingMode::nat,
                               {backends6[0], backends6[1], backends6[2]}));
    services.push_back(service("dsr", vip_dsr, 17, 53, ForwardingMode::dsr,
                               {backends4[0], backends4[1], backends4[2]}));
    std::vector<EgressPort> ports(2);
    ports[client_side].mac = gw_client_mac;
    ports[backend_side].mac = gw_backend_mac;
    ports[backend_side].ipv4 = ip("198.18.1.1");
    ports[backend_side].has_ipv4 = true;
    std::vector<std::pair<IpAddress, NextHop>> next_hops;
    for (const char *address : {backends4[0], backends4[1], backends4[2], backends6[0],
                                backends6[1], backends6[2]})
        next_hops.emplace_back(ip(address), NextHop{backend_side, true, backend_mac(ip(address))});
    return std::make_unique<Snapshot>(std::move(services), std::move(ports), std::move(next_hops),
                                      7, 1);
}

IpAddress address_at(const Bytes &frame, size_t at, bool v6) {
    if (v6)
        return IpAddress::from_v6(frame.data() + at);
    uint32_t v;
    std::memcpy(&v, frame.data() + at, 4);
    return IpAddress::from_v4_be(v);
}

// The fragments put back together: true when every one has the same
// addresses and the datagram's UDP checksum verifies with them.
bool reassembles(const std::vector<Bytes> &frames, IpAddress &source, IpAddress &destination) {
    Bytes datagram;
    for (const Bytes &frame : frames) {
        ParsedPacket p;
        if (parse_packet(frame.data(), uint32_t(frame.size()), p) != DropReason::none)
            return false;
        const bool v6 = p.network == NetworkLayer::ipv6;
        const IpAddress s = address_at(frame, 14 + (v6 ? 8 : 12), v6);
        const IpAddress d = address_at(frame, 14 + (v6 ? 24 : 16), v6);
        if (datagram.empty()) {
            source = s;
            destination = d;
        } else if (!(s == source) || !(d == destination)) {
            return false;
        }
        if (!v6 && internet_checksum(frame.data() + 14, 20) != 0)
            return false;
        append(datagram, Bytes(frame.begin() + p.l4_offset, frame.begin() + p.l3_end));
    }
    return checksum_finish(checksum_add(pseudo_header_sum(source, destination,
                                                          uint32_t(datagram.size()), 17),
                                        datagram.data(), datagram.size())) == 0;
}

class Fragments : public ::testing::Test {
protected:
    Fragments()
        : snapshot(make_snapshot()), flows(1024, HashKey::from_seed(5)),
          balancer(flows, SnatPortRange{20000, 20999}) {}

    // Balances each frame; returns what was forwarded, and expects every
    // frame to be.
    std::vector<Bytes> pass(const std::vector<Bytes> &frames, uint16_t ingress,
                            uint16_t expected_egress) {
        std::vector<Bytes> out;
        for (const Bytes &frame : frames) {
            Packet packet(frame);
            const BalanceResult result = balancer.balance(packet.frame, packet.parsed, ingress,
                                                          *snapshot, now, counters);
            EXPECT_EQ(result.verdict, BalanceVerdict::forward) << drop_reason_name(result.reason);
            EXPECT_EQ(result.egress_port, expected_egress);
            out.push_back(packet.bytes());
        }
        return out;
    }

    BalanceResult run(const Bytes &frame, uint16_t ingress) {
        Packet packet(frame);
        return balancer.balance(packet.frame, packet.parsed, ingress, *snapshot, now, counters);
    }

    std::unique_ptr<Snapshot> snapshot;
    FlowTable flows;
    L4Balancer balancer;
    BalancerCounters counters;
    uint32_t now = 1000;
};

TEST_F(Fragments, FullnatUdpDatagramsGoAndComeBackWhole) {
    const auto request = udp_fragments(gw_client_mac, client_mac, client4, vip_udp, 40000, 53, 2992,
                                   {1480, 1480, 40}, 0x4242);
    const auto sent = pass(request, client_side, backend_side);
    IpAddress source, backend;
    ASSERT_TRUE(reassembles(sent, source, backend));
    EXPECT_EQ(source, snat);
    const MacAddress backend_at = backend_mac(backend);
    for (const Bytes &frame : sent)  // one backend for every fragment
        EXPECT_EQ(Bytes(frame.begin(), frame.begin() + 6),
                  Bytes(backend_at.bytes.begin(), backend_at.bytes.end()));
    EXPECT_EQ(counters.later_fragments.read(), 2u);
    EXPECT_EQ(counters.new_flows.read(), 1u);

    ParsedPacket p;
    ASSERT_EQ(parse_packet(sent[0].data(), uint32_t(sent[0].size()), p), DropReason::none);
    const uint16_t snat_port = read_be16(sent[0].data() + p.l4_offset);

    // The answer, larger, fragmented by the backend, back to the client.
    const auto answer = udp_fragments(gw_backend_mac, backend_mac(backend), backend, snat, 53,
                                  snat_port, 3000, {1480, 1480, 48}, 0x0777);
    const auto back = pass(answer, backend_side, client_side);
    IpAddress from, to;
    ASSERT_TRUE(reassembles(back, from, to));
    EXPECT_EQ(from, vip_udp);
    EXPECT_EQ(to, client4);
    EXPECT_EQ(counters.later_fragments.read(), 4u);
}

TEST_F(Fragments, NatIpv6FragmentsFollowTheirFirst) {
    const auto request = udp_fragments(gw_client_mac, client_mac, client6, vip_nat6, 40001, 53, 2000,
                                   {1232, 776}, 0xdeadbeef);
    const auto sent = pass(request, client_side, backend_side);
    IpAddress source, backend;
    ASSERT_TRUE(reassembles(sent, source, backend));
    EXPECT_EQ(source, client6);
    const auto answer = udp_fragments(gw_backend_mac, backend_mac(backend), backend, client6, 53,
                                  40001, 1500, {1232, 276}, 7);
    IpAddress from, to;
    ASSERT_TRUE(reassembles(pass(answer, backend_side, client_side), from, to));
    EXPECT_EQ(from, vip_nat6);
}

TEST_F(Fragments, DsrFragmentsAreTunnelledToTheFirstOnesBackend) {
    // Small enough to fit the link once encapsulated (see the too-big tests).
    const auto request = udp_fragments(gw_client_mac, client_mac, client4, vip_dsr, 40002, 53, 2992,
                                       {1000, 1000, 1000}, 0x99);
    const auto sent = pass(request, client_side, backend_side);
    for (const Bytes &frame : sent) {
        EXPECT_EQ(Bytes(frame.begin(), frame.begin() + 6), Bytes(sent[0].begin(), sent[0].begin() + 6));
        EXPECT_EQ(frame[14 + 9], 4);  // IP-in-IP
        // The inner fragment is untouched but for its TTL.
        EXPECT_EQ(Bytes(frame.begin() + 34 + 12, frame.begin() + 34 + 20),
                  Bytes(request[&frame - &sent[0]].begin() + 14 + 12,
                        request[&frame - &sent[0]].begin() + 14 + 20));
    }
}

TEST_F(Fragments, LaterFragmentsWithoutTheirFirstAreNeverGuessed) {
    const auto request = udp_fragments(gw_client_mac, client_mac, client4, vip_udp, 40003, 53, 2992,
                                   {1480, 1480, 40}, 0x5151);
    // Out of order: the second before the first. Another worker may have
    // seen the first; the last one to look drops it.
    BalanceResult early = run(request[1], client_side);
    EXPECT_EQ(early.verdict, BalanceVerdict::unknown_flow);
    EXPECT_EQ(early.reason, DropReason::fragment_without_first);
    // A different identification does not match a remembered datagram.
    ASSERT_EQ(run(request[0], client_side).verdict, BalanceVerdict::forward);
    auto other = udp_fragments(gw_client_mac, client_mac, client4, vip_udp, 40003, 53, 2992,
                           {1480, 1480, 40}, 0x5152);
    EXPECT_EQ(run(other[2], client_side).verdict, BalanceVerdict::unknown_flow);
    // Remembered for a while only.
    now += L4Balancer::fragment_lifetime_ms + 1;
    EXPECT_EQ(run(request[2], client_side).reason, DropReason::fragment_without_first);
    // Fragments of a datagram nobody balances are the kernel's.
    const auto elsewhere = udp_fragments(gw_client_mac, client_mac, client4, ip("198.18.0.1"), 40004,
                                     53, 2992, {1480, 1480, 40}, 1);
    early = run(elsewhere[1], client_side);
    EXPECT_EQ(early.verdict, BalanceVerdict::unknown_flow);
    EXPECT_EQ(early.reason, DropReason::none);
}

TEST(FragmentTable, RemembersByIdentityAndEvictsTheOldest) {
    FragmentTable table(4, HashKey::from_seed(1), 100);  // one set of four
    FlowKey datagram;
    datagram.protocol = 17;
    datagram.source_port = network_order(1000);
    for (uint32_t id = 0; id < 4; ++id)
        table.remember(datagram, id, 10 + id);
    for (uint32_t id = 0; id < 4; ++id) {
        const FlowKey *found = table.find(FragmentTable::identity(datagram, id), 20);
        ASSERT_NE(found, nullptr);
        EXPECT_EQ(*found, datagram);
    }
    table.remember(datagram, 4, 20);
    EXPECT_EQ(table.evictions(), 1u);
    EXPECT_EQ(table.find(FragmentTable::identity(datagram, 0), 20), nullptr);
    EXPECT_NE(table.find(FragmentTable::identity(datagram, 4), 20), nullptr);
    EXPECT_EQ(table.find(FragmentTable::identity(datagram, 4), 121), nullptr);
}

} // namespace
} // namespace sluice::lb
