// The balancer on frames built byte by byte: each mode's rewrite toward the
// backend and back to the client, checked field by field with checksums
// verified from scratch, and each reason it refuses a packet.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <map>

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
const IpAddress vip_fullnat = ip("198.18.10.1"), vip_nat6 = ip("2001:db8:10::1"),
                vip_dsr = ip("198.18.10.3"), vip_empty = ip("198.18.10.4"),
                vip_proxy = ip("198.18.10.8");
const IpAddress local = ip("198.18.1.100");
const char *backends4[] = {"198.18.1.11", "198.18.1.12", "198.18.1.13"};
const char *backends6[] = {"2001:db8:0:2::11", "2001:db8:0:2::12", "2001:db8:0:2::13"};
constexpr uint16_t client_port_index = 0, backend_port_index = 1;

// A TCP service on port 80.
Service service(const char *name, const IpAddress &vip, ForwardingMode mode,
                const std::vector<const char *> &backends, uint32_t weight = 1) {
    return balanced_service(name, vip, 6, 80, mode, addresses(backends), weight);
}

std::unique_ptr<Snapshot> lab_snapshot(bool resolved = true) {
    std::vector<Service> services;
    services.push_back(service("fullnat", vip_fullnat, ForwardingMode::fullnat,
                               {backends4[0], backends4[1], backends4[2]}));
    services.back().local_addresses = {local};
    services.push_back(service("nat6", vip_nat6, ForwardingMode::nat,
                               {backends6[0], backends6[1], backends6[2]}));
    services.push_back(service("dsr", vip_dsr, ForwardingMode::dsr, {backends4[0], backends4[1]}));
    services.push_back(service("drained", vip_empty, ForwardingMode::nat, {backends4[2]}, 0));
    services.push_back(service("proxy", vip_proxy, ForwardingMode::proxy,
                               {backends4[0], backends4[1]}));
    services.back().local_addresses = {ip("198.18.1.104")};
    std::vector<EgressPort> ports(2);
    ports[client_port_index].mac = gw_client_mac;
    ports[backend_port_index].mac = gw_backend_mac;
    ports[client_port_index].ipv4 = ip("198.18.0.1");
    ports[client_port_index].has_ipv4 = true;
    ports[backend_port_index].ipv4 = ip("198.18.1.1");
    ports[backend_port_index].ipv6 = ip("2001:db8:0:2::1");
    ports[backend_port_index].has_ipv4 = ports[backend_port_index].has_ipv6 = true;
    std::vector<std::pair<IpAddress, NextHop>> next_hops;
    for (const char *address : {backends4[0], backends4[1], backends4[2], backends6[0],
                                backends6[1], backends6[2]}) {
        NextHop hop;
        hop.egress_port = backend_port_index;
        hop.resolved = resolved;
        hop.mac = backend_mac(ip(address));
        next_hops.emplace_back(ip(address), hop);
    }
    return std::make_unique<Snapshot>(std::move(services), std::move(ports), std::move(next_hops),
                                      7, 1);
}

Bytes tcp_frame(const MacAddress &dst_mac, const IpAddress &src, const IpAddress &dst,
                uint16_t sport, uint16_t dport, uint8_t flags) {
    const Bytes segment = with_transport_checksum(src, dst, 6, tcp(sport, dport, flags));
    return src.is_v4() ? ipv4_frame(dst_mac, client_mac, src, dst, 6, segment)
                       : ipv6_frame(dst_mac, client_mac, src, dst, 6, segment);
}

// True when the TCP checksum of the frame verifies from scratch.
bool tcp_checksum_ok(const Bytes &frame) {
    ParsedPacket p;
    if (parse_packet(frame.data(), uint32_t(frame.size()), p) != DropReason::none)
        return false;
    const FlowKey k = flow_key_of(frame.data(), p);
    const IpAddress src = k.family == 4 ? IpAddress::from_v4_be([&] { uint32_t v; std::memcpy(&v, k.source.data(), 4); return v; }())
                                        : IpAddress::from_v6(k.source.data());
    const IpAddress dst = k.family == 4 ? IpAddress::from_v4_be([&] { uint32_t v; std::memcpy(&v, k.destination.data(), 4); return v; }())
                                        : IpAddress::from_v6(k.destination.data());
    return checksum_finish(checksum_add(pseudo_header_sum(src, dst, p.l4_length, 6),
                                        frame.data() + p.l4_offset, p.l4_length)) == 0;
}

class Balancer : public ::testing::Test {
protected:
    Balancer()
        : snapshot(lab_snapshot()), flows(1024, HashKey::from_seed(99)),
          balancer(flows, SnatPortRange{20000, 20999}) {}

    BalanceResult run(Packet &packet, uint16_t ingress) {
        return balancer.balance(packet.frame, packet.parsed, ingress, *snapshot, now, counters);
    }

    std::unique_ptr<Snapshot> snapshot;
    FlowTable flows;
    L4Balancer balancer;
    BalancerCounters counters;
    uint32_t now = 1000;
};

// probe() writes IPv4 keys in place rather than through flow_key_of: the
// same key, with options, fragments, UDP and IPv6 (which still takes
// flow_key_of) alike; tuples with all-ones bytes catch a stray zero word.
TEST_F(Balancer, ProbeKeysAreFlowKeyOfs) {
    const IpAddress ones4 = ip("255.255.255.254"), ones6 = ip("2001:db8:ffff::ffff");
    const Bytes datagram =
        with_transport_checksum(client4, ones4, 17, concat({udp(65535, 53, 12), Bytes(12, 0xff)}));
    const std::vector<Bytes> frames = {
        tcp_frame(gw_client_mac, client4, vip_fullnat, 40000, 80, tcp_flag::syn),
        tcp_frame(gw_client_mac, ones4, ones4, 65535, 65535, tcp_flag::ack),
        tcp_frame(gw_client_mac, client6, vip_nat6, 40000, 80, tcp_flag::syn),
        tcp_frame(gw_client_mac, ones6, ones6, 65535, 1, tcp_flag::ack),
        ipv4_frame(gw_client_mac, client_mac, client4, ones4, 17, datagram),
        concat({ethernet(gw_client_mac, client_mac, ether_type::ipv4),
                ipv4(client4, vip_fullnat, 6, 20, {1, 1, 1, 0}),  // options: NOP NOP NOP EOL
                with_transport_checksum(client4, vip_fullnat, 6, tcp(1234, 80, tcp_flag::syn))}),
        concat({ethernet(gw_client_mac, client_mac, ether_type::ipv4),
                ipv4(client4, ones4, 17, 16, {}, 0x2000),  // a first fragment
                first_bytes(datagram, 16)}),
    };
    for (size_t i = 0; i < frames.size(); ++i) {
        SCOPED_TRACE(i);
        ParsedPacket parsed;
        ASSERT_EQ(parse_packet(frames[i].data(), uint32_t(frames[i].size()), parsed),
                  DropReason::none);
        FlowProbe probe;
        // No byte left from before: every one set.
        probe.key.source.fill(0xa5);
        probe.key.destination.fill(0xa5);
        probe.key.reserved = 0xa5a5;
        balancer.probe(frames[i].data(), parsed, probe);
        ASSERT_TRUE(probe.candidate);
        EXPECT_EQ(probe.key, flow_key_of(frames[i].data(), parsed));
        EXPECT_EQ(probe.hash, flows.hash(flow_key_of(frames[i].data(), parsed)));
    }
}

TEST_F(Balancer, FullNatThereAndBack) {
    Packet syn(tcp_frame(gw_client_mac, client4, vip_fullnat, 40000, 80, 0x02));
    const BalanceResult out = run(syn, client_port_index);
    ASSERT_EQ(out.verdict, BalanceVerdict::forward);
    EXPECT_EQ(out.egress_port, backend_port_index);
    const Bytes sent = syn.bytes();
    ParsedPacket p;
    ASSERT_EQ(parse_packet(sent.data(), uint32_t(sent.size()), p), DropReason::none);
    const FlowKey to_backend = flow_key_of(sent.data(), p);
    EXPECT_EQ(IpAddress::from_v6(to_backend.source.data()).bytes[0], 198);  // v4 in the first bytes
    EXPECT_EQ(0, std::memcmp(to_backend.source.data(), local.bytes.data(), 4));
    const uint16_t snat_port = uint16_t(to_backend.source_port >> 8 | to_backend.source_port << 8);
    EXPECT_GE(snat_port, 20000);
    EXPECT_LE(snat_port, 20999);
    EXPECT_EQ(to_backend.destination_port, 0x5000);
    const IpAddress backend = IpAddress::from_v4_be([&] { uint32_t v; std::memcpy(&v, to_backend.destination.data(), 4); return v; }());
    const MacAddress expected_mac = backend_mac(backend);
    EXPECT_EQ(Bytes(sent.begin(), sent.begin() + 6), Bytes(expected_mac.bytes.begin(), expected_mac.bytes.end()));
    EXPECT_EQ(Bytes(sent.begin() + 6, sent.begin() + 12), Bytes(gw_backend_mac.bytes.begin(), gw_backend_mac.bytes.end()));
    EXPECT_EQ(sent[14 + 8], 63);  // TTL
    EXPECT_EQ(internet_checksum(sent.data() + 14, 20), 0);
    EXPECT_TRUE(tcp_checksum_ok(sent));
    EXPECT_EQ(counters.new_flows.read(), 1u);

    // The backend's SYN-ACK to (local, SNAT port) goes back to the client from the VIP.
    Packet syn_ack(tcp_frame(gw_backend_mac, backend, local, 80, snat_port, 0x12));
    const BalanceResult back = run(syn_ack, backend_port_index);
    ASSERT_EQ(back.verdict, BalanceVerdict::forward);
    EXPECT_EQ(back.egress_port, client_port_index);
    const Bytes answer = syn_ack.bytes();
    ASSERT_EQ(parse_packet(answer.data(), uint32_t(answer.size()), p), DropReason::none);
    const FlowKey to_client = flow_key_of(answer.data(), p);
    EXPECT_EQ(0, std::memcmp(to_client.source.data(), vip_fullnat.bytes.data(), 4));
    EXPECT_EQ(0, std::memcmp(to_client.destination.data(), client4.bytes.data(), 4));
    EXPECT_EQ(to_client.source_port, 0x5000);
    EXPECT_EQ(to_client.destination_port, uint16_t(40000 >> 8 | (40000 & 0xff) << 8));
    EXPECT_EQ(Bytes(answer.begin(), answer.begin() + 6), Bytes(client_mac.bytes.begin(), client_mac.bytes.end()));
    EXPECT_EQ(Bytes(answer.begin() + 6, answer.begin() + 12), Bytes(gw_client_mac.bytes.begin(), gw_client_mac.bytes.end()));
    EXPECT_TRUE(tcp_checksum_ok(answer));
    EXPECT_EQ(counters.to_client_packets.read(), 1u);

    // The client's next segment follows the flow to the same backend and
    // port, its checksums updated by the sums the flow keeps.
    Packet ack(tcp_frame(gw_client_mac, client4, vip_fullnat, 40000, 80, 0x10));
    ASSERT_EQ(run(ack, client_port_index).verdict, BalanceVerdict::forward);
    const Bytes again = ack.bytes();
    ASSERT_EQ(parse_packet(again.data(), uint32_t(again.size()), p), DropReason::none);
    EXPECT_EQ(flow_key_of(again.data(), p), to_backend);
    EXPECT_EQ(internet_checksum(again.data() + 14, 20), 0);
    EXPECT_TRUE(tcp_checksum_ok(again));
    EXPECT_EQ(counters.new_flows.read(), 1u);
}

TEST_F(Balancer, ASynOnAClosingFlowStartsANewOne) {
    auto snat_port_of = [](const Packet &p) {
        const Bytes sent = p.bytes();
        ParsedPacket parsed;
        EXPECT_EQ(parse_packet(sent.data(), uint32_t(sent.size()), parsed), DropReason::none);
        return flow_key_of(sent.data(), parsed).source_port;
    };
    Packet syn(tcp_frame(gw_client_mac, client4, vip_fullnat, 40100, 80, 0x02));
    ASSERT_EQ(run(syn, client_port_index).verdict, BalanceVerdict::forward);
    const uint16_t first_port = snat_port_of(syn);
    // The next connection takes the next port (ports come round in turn).
    Packet other(tcp_frame(gw_client_mac, client4, vip_fullnat, 40101, 80, 0x02));
    ASSERT_EQ(run(other, client_port_index).verdict, BalanceVerdict::forward);
    EXPECT_EQ(ntohs(snat_port_of(other)), ntohs(first_port) + 1);
    // A retransmitted SYN is the same connection.
    Packet again(tcp_frame(gw_client_mac, client4, vip_fullnat, 40100, 80, 0x02));
    ASSERT_EQ(run(again, client_port_index).verdict, BalanceVerdict::forward);
    EXPECT_EQ(snat_port_of(again), first_port);
    EXPECT_EQ(counters.new_flows.read(), 2u);
    // The client closes; then reuses its port for a new connection.
    Packet fin(tcp_frame(gw_client_mac, client4, vip_fullnat, 40100, 80, 0x11));
    ASSERT_EQ(run(fin, client_port_index).verdict, BalanceVerdict::forward);
    Packet reuse(tcp_frame(gw_client_mac, client4, vip_fullnat, 40100, 80, 0x02));
    ASSERT_EQ(run(reuse, client_port_index).verdict, BalanceVerdict::forward);
    EXPECT_EQ(counters.new_flows.read(), 3u);
    EXPECT_NE(snat_port_of(reuse), first_port);
    EXPECT_EQ(flows.size(), 2u);
}

TEST_F(Balancer, DsrTellsTheClientWhatFitsOnceEncapsulated) {
    // A full 1500-byte segment with DF: 20 more bytes of IP-in-IP exceed the
    // backend link's MTU of 1500.
    Bytes segment = tcp(40300, 80, 0x10);
    append(segment, Bytes(1500 - 20 - 20, 'x'));
    segment = with_transport_checksum(client4, vip_dsr, 6, segment);
    Bytes frame = ipv4_frame(gw_client_mac, client_mac, client4, vip_dsr, 6, segment);
    frame[14 + 6] = 0x40;  // DF
    frame[14 + 10] = frame[14 + 11] = 0;
    const uint16_t sum = internet_checksum(frame.data() + 14, 20);
    std::memcpy(frame.data() + 14 + 10, &sum, 2);
    const Bytes original = frame;

    Packet big(frame);
    const BalanceResult out = run(big, client_port_index);
    ASSERT_EQ(out.verdict, BalanceVerdict::forward);
    EXPECT_EQ(out.egress_port, client_port_index);
    const Bytes icmp = big.bytes();
    ASSERT_EQ(icmp.size(), 14u + 20 + 8 + 548);
    EXPECT_EQ(Bytes(icmp.begin(), icmp.begin() + 6), Bytes(client_mac.bytes.begin(), client_mac.bytes.end()));
    EXPECT_EQ(internet_checksum(icmp.data() + 14, 20), 0);
    EXPECT_EQ(Bytes(icmp.begin() + 14 + 12, icmp.begin() + 14 + 16), (Bytes{198, 18, 0, 1}));
    EXPECT_EQ(Bytes(icmp.begin() + 14 + 16, icmp.begin() + 14 + 20), (Bytes{198, 18, 0, 2}));
    EXPECT_EQ(icmp[34], 3);
    EXPECT_EQ(icmp[35], 4);
    EXPECT_EQ(icmp[34 + 6] << 8 | icmp[34 + 7], 1480);
    EXPECT_EQ(internet_checksum(icmp.data() + 34, icmp.size() - 34), 0);
    // It quotes the client's packet as it came (the TTL untouched).
    EXPECT_EQ(Bytes(icmp.begin() + 42, icmp.end()),
              Bytes(original.begin() + 14, original.begin() + 14 + 548));
    EXPECT_EQ(counters.icmp_too_big_sent.read(), 1u);

    // Without DF it could only be fragmented, which the balancer does not do.
    Bytes no_df = original;
    no_df[14 + 6] = 0;
    no_df[14 + 10] = no_df[14 + 11] = 0;
    const uint16_t no_df_sum = internet_checksum(no_df.data() + 14, 20);
    std::memcpy(no_df.data() + 14 + 10, &no_df_sum, 2);
    Packet fragmentable(no_df);
    EXPECT_EQ(run(fragmentable, client_port_index).reason, DropReason::too_big_to_encapsulate);

    // At most 100 at once, then 1 per millisecond.
    for (int i = 0; i < 120; ++i) {
        Packet more(original);
        run(more, client_port_index);
    }
    EXPECT_EQ(counters.icmp_too_big_sent.read(), 100u);
    now += 5;
    Packet later(original);
    EXPECT_EQ(run(later, client_port_index).verdict, BalanceVerdict::forward);
}

TEST_F(Balancer, FullNatRefusesMidStreamSegmentsWithoutFlow) {
    Packet ack(tcp_frame(gw_client_mac, client4, vip_fullnat, 40001, 80, 0x10));
    const BalanceResult out = run(ack, client_port_index);
    EXPECT_EQ(out.verdict, BalanceVerdict::drop);
    EXPECT_EQ(out.reason, DropReason::no_flow_for_segment);
}

TEST_F(Balancer, NatOverIpv6KeepsTheClientAddress) {
    Packet syn(tcp_frame(gw_client_mac, client6, vip_nat6, 40000, 80, 0x02));
    ASSERT_EQ(run(syn, client_port_index).verdict, BalanceVerdict::forward);
    const Bytes sent = syn.bytes();
    ParsedPacket p;
    ASSERT_EQ(parse_packet(sent.data(), uint32_t(sent.size()), p), DropReason::none);
    const FlowKey k = flow_key_of(sent.data(), p);
    EXPECT_EQ(0, std::memcmp(k.source.data(), client6.bytes.data(), 16));
    EXPECT_EQ(k.source_port, uint16_t(40000 >> 8 | (40000 & 0xff) << 8));
    EXPECT_EQ(sent[14 + 7], 63);  // hop limit
    EXPECT_TRUE(tcp_checksum_ok(sent));
    const IpAddress backend = IpAddress::from_v6(k.destination.data());

    Packet reply(tcp_frame(gw_backend_mac, backend, client6, 80, 40000, 0x12));
    ASSERT_EQ(run(reply, backend_port_index).verdict, BalanceVerdict::forward);
    const Bytes answer = reply.bytes();
    ASSERT_EQ(parse_packet(answer.data(), uint32_t(answer.size()), p), DropReason::none);
    EXPECT_EQ(0, std::memcmp(flow_key_of(answer.data(), p).source.data(), vip_nat6.bytes.data(), 16));
    EXPECT_TRUE(tcp_checksum_ok(answer));
}

TEST_F(Balancer, DsrEncapsulatesInIpip) {
    const Bytes original = tcp_frame(gw_client_mac, client4, vip_dsr, 40000, 80, 0x02);
    Packet syn(original);
    ASSERT_EQ(run(syn, client_port_index).verdict, BalanceVerdict::forward);
    const Bytes sent = syn.bytes();
    ASSERT_EQ(sent.size(), original.size() + 20);
    EXPECT_EQ(sent[12], 0x08);
    EXPECT_EQ(sent[13], 0x00);
    EXPECT_EQ(sent[14 + 9], 4);  // IP-in-IP
    EXPECT_EQ(Bytes(sent.begin() + 14 + 12, sent.begin() + 14 + 16), Bytes({198, 18, 1, 1}));
    EXPECT_EQ(internet_checksum(sent.data() + 14, 20), 0);
    // The inner packet is the client's, but for the TTL (and so its checksum).
    Bytes inner(sent.begin() + 34, sent.end());
    Bytes expected(original.begin() + 14, original.end());
    expected[8] -= 1;
    refresh_ipv4_checksum(expected, 0);
    EXPECT_EQ(inner, expected);
}

TEST_F(Balancer, RefusesWhatItCannotForward) {
    Packet drained(tcp_frame(gw_client_mac, client4, vip_empty, 40000, 80, 0x02));
    EXPECT_EQ(run(drained, client_port_index).reason, DropReason::no_backend);

    snapshot = lab_snapshot(false);
    Packet unresolved(tcp_frame(gw_client_mac, client4, vip_fullnat, 40002, 80, 0x02));
    const BalanceResult waits = run(unresolved, client_port_index);
    EXPECT_EQ(waits.verdict, BalanceVerdict::await_next_hop);  // the worker holds it
    EXPECT_EQ(waits.reason, DropReason::next_hop_unresolved);

    Packet fragment(concat({ethernet(gw_client_mac, client_mac, 0x0800),
                            ipv4(client4, vip_fullnat, 6, 8, {}, 100), Bytes(8)}));
    const BalanceResult orphan = run(fragment, client_port_index);
    EXPECT_EQ(orphan.verdict, BalanceVerdict::unknown_flow);
    EXPECT_EQ(orphan.reason, DropReason::fragment_without_first);

    snapshot = lab_snapshot(true);
    Packet ttl(tcp_frame(gw_client_mac, client6, vip_nat6, 40003, 80, 0x02));
    ttl.frame.data[14 + 7] = 1;
    EXPECT_EQ(run(ttl, client_port_index).reason, DropReason::ttl_exceeded);
}

// A proxy VIP's segments are the worker's TCP's, untouched and without a
// flow; fragments are not (the TCP does not reassemble); the backends'
// answers to the proxy's local address are left to the worker, which knows
// its TCP's ports.
TEST_F(Balancer, ProxyVipsGoToTheWorkersTcp) {
    for (const uint8_t flags : {0x02, 0x10, 0x18, 0x11, 0x04}) {
        Packet segment(tcp_frame(gw_client_mac, client4, vip_proxy, 40000, 80, flags));
        const Bytes before = segment.bytes();
        const BalanceResult result = run(segment, client_port_index);
        EXPECT_EQ(result.verdict, BalanceVerdict::to_stack);
        EXPECT_EQ(segment.bytes(), before);
    }
    EXPECT_EQ(flows.size(), 0u);
    EXPECT_EQ(counters.new_flows.read(), 0u);

    Packet first_fragment(concat({ethernet(gw_client_mac, client_mac, 0x0800),
                                  ipv4(client4, vip_proxy, 6, 20, {}, 0x2000),
                                  tcp(40000, 80, 0x18)}));
    ASSERT_TRUE(first_fragment.parsed.fragment);
    const BalanceResult fragment = run(first_fragment, client_port_index);
    EXPECT_EQ(fragment.verdict, BalanceVerdict::drop);
    EXPECT_EQ(fragment.reason, DropReason::fragment_to_stack);

    Packet answer(tcp_frame(gw_backend_mac, ip(backends4[0]), ip("198.18.1.104"), 80, 50000,
                            0x12));
    EXPECT_EQ(run(answer, backend_port_index).verdict, BalanceVerdict::not_balanced);
}

TEST_F(Balancer, LeavesOtherTrafficAlone) {
    Packet other(tcp_frame(gw_client_mac, client4, ip("198.18.0.1"), 40000, 22, 0x02));
    EXPECT_EQ(run(other, client_port_index).verdict, BalanceVerdict::not_balanced);
    Packet other_port(tcp_frame(gw_client_mac, client4, vip_fullnat, 40000, 443, 0x02));
    EXPECT_EQ(run(other_port, client_port_index).verdict, BalanceVerdict::not_balanced);
}

TEST_F(Balancer, WhenTheTableIsFullOnlyDsrGoesOnStateless) {
    FlowTable tiny(1, HashKey::from_seed(1));
    L4Balancer small(tiny, SnatPortRange{20000, 20999});
    auto balance = [&](Packet &p) {
        return small.balance(p.frame, p.parsed, client_port_index, *snapshot, now, counters);
    };
    Packet first(tcp_frame(gw_client_mac, client4, vip_fullnat, 41000, 80, 0x02));
    ASSERT_EQ(balance(first).verdict, BalanceVerdict::forward);
    Packet second(tcp_frame(gw_client_mac, client4, vip_fullnat, 41001, 80, 0x02));
    EXPECT_EQ(balance(second).reason, DropReason::flow_table_full);
    Packet dsr(tcp_frame(gw_client_mac, client4, vip_dsr, 41002, 80, 0x02));
    EXPECT_EQ(balance(dsr).verdict, BalanceVerdict::forward);
    EXPECT_EQ(counters.stateless_packets.read(), 1u);
}

// A service with timeouts of its own: its flows take its profile, whose
// timeouts the table learns from the service; the others keep the table's.
TEST_F(Balancer, FlowsTakeTheirServicesTimeouts) {
    const FlowTimeouts table_timeouts{.syn_seen = 50, .established = 1000, .closing = 200,
                                      .udp = 400};
    FlowTable table(64, HashKey::from_seed(3), table_timeouts);
    L4Balancer own(table, SnatPortRange{20000, 20999});
    std::vector<Service> services;
    services.push_back(service("short", vip_fullnat, ForwardingMode::nat, {backends4[0]}));
    services.push_back(service("long", vip_dsr, ForwardingMode::nat, {backends4[1]}));
    services.back().timeout_profile = 3;
    services.back().timeouts = {.syn_seen = 5000, .established = 9000, .closing = 900,
                                .udp = 4000};
    std::vector<EgressPort> ports(2);
    std::vector<std::pair<IpAddress, NextHop>> hops;
    for (const char *address : {backends4[0], backends4[1]})
        hops.emplace_back(ip(address), NextHop{backend_port_index, true, backend_mac(ip(address))});
    const Snapshot with_profiles(std::move(services), std::move(ports), std::move(hops), 7, 1);
    // A SYN through the balancer; then its flow, by the SYN's own key.
    auto open = [&](const IpAddress &vip, uint16_t port) {
        Packet syn(tcp_frame(gw_client_mac, client4, vip, port, 80, 0x02));
        const FlowKey key = flow_key_of(syn.frame.data, syn.parsed);
        EXPECT_EQ(own.balance(syn.frame, syn.parsed, client_port_index, with_profiles, 1000,
                              counters).verdict,
                  BalanceVerdict::forward);
        return table.lookup(key, table.hash(key), 1000);
    };
    const FlowLookup plain = open(vip_fullnat, 41000), longer = open(vip_dsr, 41001);
    ASSERT_NE(plain.id, no_flow);
    ASSERT_NE(longer.id, no_flow);
    EXPECT_EQ(table.flow(plain.id).timeout_profile, 0);
    EXPECT_EQ(table.flow(longer.id).timeout_profile, 3);
    // Both only SYN-seen: the table's 50 ms, the service's 5 s.
    EXPECT_EQ(table.expire(1000 + 51, 64), 1u);
    EXPECT_EQ(table.size(), 1u);
    EXPECT_EQ(table.expire(1000 + 5000, 64), 0u);
    EXPECT_EQ(table.expire(1000 + 5001, 64), 1u);
}

TEST_F(Balancer, SpreadsNewConnectionsEvenly) {
    FlowTable big(8192, HashKey::from_seed(5));
    L4Balancer wide(big, SnatPortRange{1024, 65535});
    std::map<uint32_t, int> per_backend;
    for (uint16_t port = 10000; port < 13000; ++port) {
        Packet syn(tcp_frame(gw_client_mac, client4, vip_fullnat, port, 80, 0x02));
        ASSERT_EQ(wide.balance(syn.frame, syn.parsed, client_port_index, *snapshot, now, counters).verdict,
                  BalanceVerdict::forward);
        ++per_backend[syn.frame.data[14 + 19]];  // last byte of the destination address
    }
    ASSERT_EQ(per_backend.size(), 3u);
    for (const auto &[backend, count] : per_backend)
        EXPECT_NEAR(count, 1000, 100) << "backend ." << backend;
}

} // namespace
} // namespace sluice::lb

namespace sluice::lb {
namespace {

// The tuple an ICMP error in `frame` quotes, and its outer addresses.
struct ErrorView {
    FlowKey outer, quoted;
};

ErrorView view_error(const Bytes &frame) {
    ParsedPacket p;
    EXPECT_EQ(parse_packet(frame.data(), uint32_t(frame.size()), p), DropReason::none);
    ErrorView v;
    v.outer = flow_key_of(frame.data(), p);
    EXPECT_TRUE(quoted_flow_key(frame.data(), p, v.quoted));
    // The ICMP checksum covers the whole message.
    EXPECT_EQ(internet_checksum(frame.data() + p.l4_offset, p.l4_length), 0);
    return v;
}

TEST_F(Balancer, IcmpErrorsAboutAFlowReachTheOtherSide) {
    Packet syn(tcp_frame(gw_client_mac, client4, vip_fullnat, 40100, 80, 0x02));
    ASSERT_EQ(run(syn, client_port_index).verdict, BalanceVerdict::forward);
    const Bytes sent = syn.bytes();
    ParsedPacket p;
    ASSERT_EQ(parse_packet(sent.data(), uint32_t(sent.size()), p), DropReason::none);
    const FlowKey to_backend = flow_key_of(sent.data(), p);
    uint32_t backend_be;
    std::memcpy(&backend_be, to_backend.destination.data(), 4);
    const IpAddress backend = IpAddress::from_v4_be(backend_be);

    // "Fragmentation needed" from the backend about what the gateway sent it:
    // the client gets it from the VIP, quoting its own segment.
    Bytes quote(28);  // the IPv4 header and the first 8 bytes of TCP
    std::memcpy(quote.data(), sent.data() + 14, quote.size());
    Packet too_big(ipv4_frame(gw_backend_mac, backend_mac(backend), backend, local, 1,
                              icmp_error(3, 4, 1400, quote)));
    const BalanceResult up = run(too_big, backend_port_index);
    ASSERT_EQ(up.verdict, BalanceVerdict::forward);
    EXPECT_EQ(up.egress_port, client_port_index);
    const ErrorView to_client = view_error(too_big.bytes());
    EXPECT_EQ(0, std::memcmp(to_client.outer.source.data(), vip_fullnat.bytes.data(), 4));
    EXPECT_EQ(0, std::memcmp(to_client.outer.destination.data(), client4.bytes.data(), 4));
    EXPECT_EQ(0, std::memcmp(to_client.quoted.source.data(), client4.bytes.data(), 4));
    EXPECT_EQ(0, std::memcmp(to_client.quoted.destination.data(), vip_fullnat.bytes.data(), 4));
    EXPECT_EQ(to_client.quoted.source_port, uint16_t(40100 >> 8 | (40100 & 0xff) << 8));
    EXPECT_EQ(to_client.quoted.destination_port, 0x5000);
    EXPECT_EQ(counters.icmp_errors.read(), 1u);

    // "Port unreachable" from the client about what the VIP sent it: the
    // backend gets it at its SNAT peer, quoting its own segment.
    const Bytes from_vip = with_transport_checksum(vip_fullnat, client4, 6, tcp(80, 40100, 0x12));
    Packet unreachable(ipv4_frame(gw_client_mac, client_mac, client4, vip_fullnat, 1,
                                  icmp_error(3, 3, 0, quote_of(ip_packet(vip_fullnat, client4, 6, from_vip)))));
    const BalanceResult down = run(unreachable, client_port_index);
    ASSERT_EQ(down.verdict, BalanceVerdict::forward);
    EXPECT_EQ(down.egress_port, backend_port_index);
    const ErrorView to_server = view_error(unreachable.bytes());
    EXPECT_EQ(0, std::memcmp(to_server.outer.source.data(), local.bytes.data(), 4));
    EXPECT_EQ(to_server.outer.destination, to_backend.destination);
    EXPECT_EQ(to_server.quoted, to_backend.reversed());
}

TEST_F(Balancer, IcmpErrorsAboutNoFlowAreLeftAlone) {
    const Bytes segment = with_transport_checksum(client4, ip("198.18.1.11"), 6, tcp(1, 2, 0x02));
    Packet stray(ipv4_frame(gw_backend_mac, client_mac, ip("198.18.1.11"), local, 1,
                            icmp_error(3, 3, 0, quote_of(ip_packet(local, ip("198.18.1.11"), 6, segment)))));
    // Another worker's table may hold it (the worker asks them in turn).
    EXPECT_EQ(run(stray, backend_port_index).verdict, BalanceVerdict::unknown_flow);
}

} // namespace
} // namespace sluice::lb

namespace sluice::lb {
namespace {

TEST_F(Balancer, FlowsOfARemovedBackendKeepGoingOrEndAsTheServiceSays) {
    Packet syn(tcp_frame(gw_client_mac, client4, vip_fullnat, 40200, 80, 0x02));
    ASSERT_EQ(run(syn, client_port_index).verdict, BalanceVerdict::forward);
    const uint8_t backend_octet = syn.frame.data[14 + 19];
    const IpAddress removed_backend = ip(("198.18.1." + std::to_string(backend_octet)).c_str());
    const uint16_t snat_port = uint16_t(syn.frame.data[14 + 20] << 8 | syn.frame.data[14 + 21]);
    // Another flow on the same backend, for the SYN that reuses its tuple below.
    uint16_t stale_port = 0;
    for (uint16_t port = 40300; port < 40400 && !stale_port; ++port) {
        Packet other(tcp_frame(gw_client_mac, client4, vip_fullnat, port, 80, 0x02));
        ASSERT_EQ(run(other, client_port_index).verdict, BalanceVerdict::forward);
        if (other.frame.data[14 + 19] == backend_octet)
            stale_port = port;
    }
    ASSERT_NE(stale_port, 0);

    // A new snapshot without that backend (as a reload would publish).
    auto without = [&](RemovedBackendFlows policy) {
        std::vector<Service> services;
        std::vector<const char *> kept;
        for (const char *address : backends4)
            if (ip(address).bytes[3] != backend_octet)
                kept.push_back(address);
        services.push_back(service("fullnat", vip_fullnat, ForwardingMode::fullnat, kept));
        services.back().local_addresses = {local};
        services.back().removed_backend_flows = policy;
        std::vector<EgressPort> ports = snapshot->ports();
        std::vector<std::pair<IpAddress, NextHop>> hops;
        for (const char *address : backends4) {  // retired backends keep their next hops
            NextHop hop;
            hop.egress_port = backend_port_index;
            hop.resolved = true;
            hop.mac = backend_mac(ip(address));
            hops.emplace_back(ip(address), hop);
        }
        return std::make_unique<Snapshot>(std::move(services), std::move(ports), std::move(hops), 7, 2);
    };

    snapshot = without(RemovedBackendFlows::keep);
    Packet kept(tcp_frame(gw_client_mac, client4, vip_fullnat, 40200, 80, 0x10));
    ASSERT_EQ(run(kept, client_port_index).verdict, BalanceVerdict::forward);
    EXPECT_EQ(kept.frame.data[14 + 19], backend_octet);  // same backend as before

    snapshot = without(RemovedBackendFlows::reset);
    // A new connection reusing the tuple of a flow whose backend left is
    // balanced afresh, not reset.
    Packet reuse(tcp_frame(gw_client_mac, client4, vip_fullnat, stale_port, 80, 0x02));
    const BalanceResult rebalanced = run(reuse, client_port_index);
    ASSERT_EQ(rebalanced.verdict, BalanceVerdict::forward);
    EXPECT_EQ(rebalanced.egress_port, backend_port_index);
    EXPECT_NE(reuse.frame.data[14 + 19], backend_octet);
    EXPECT_EQ(counters.resets_sent.read(), 0u);
    // The client's next segment (seq 1000, ack 5000) is answered with a RST
    // from the VIP, sequenced at what it acknowledged.
    Bytes segment = tcp(40200, 80, 0x10);
    append(segment, Bytes(100, 'x'));
    put16(segment, 4, 0);
    put16(segment, 6, 1000);
    put16(segment, 8, 0);
    put16(segment, 10, 5000);
    Packet reset(ipv4_frame(gw_client_mac, client_mac, client4, vip_fullnat, 6,
                            with_transport_checksum(client4, vip_fullnat, 6, segment)));
    const BalanceResult answered = run(reset, client_port_index);
    ASSERT_EQ(answered.verdict, BalanceVerdict::forward);
    EXPECT_EQ(answered.egress_port, client_port_index);
    const Bytes rst = reset.bytes();
    ASSERT_EQ(rst.size(), 14u + 20 + 20);
    EXPECT_EQ(Bytes(rst.begin(), rst.begin() + 6), Bytes(client_mac.bytes.begin(), client_mac.bytes.end()));
    EXPECT_EQ(Bytes(rst.begin() + 6, rst.begin() + 12), Bytes(gw_client_mac.bytes.begin(), gw_client_mac.bytes.end()));
    ParsedPacket p;
    ASSERT_EQ(parse_packet(rst.data(), uint32_t(rst.size()), p), DropReason::none);
    const FlowKey k = flow_key_of(rst.data(), p);
    EXPECT_EQ(0, std::memcmp(k.source.data(), vip_fullnat.bytes.data(), 4));
    EXPECT_EQ(0, std::memcmp(k.destination.data(), client4.bytes.data(), 4));
    EXPECT_EQ(k.source_port, 0x5000);
    EXPECT_EQ(rst[34 + 13], 0x04);  // RST alone: the segment had ACK
    EXPECT_EQ(rst[34 + 7], 5000 & 0xff);
    EXPECT_EQ(rst[34 + 6], 5000 >> 8);
    EXPECT_TRUE(tcp_checksum_ok(rst));
    EXPECT_EQ(internet_checksum(rst.data() + 14, 20), 0);
    EXPECT_EQ(counters.resets_sent.read(), 1u);
    // The backend's data would move the client's sequence past that RST:
    // dropped.
    Packet late(tcp_frame(gw_backend_mac, removed_backend, local, 80, snat_port, 0x10));
    const BalanceResult late_result = run(late, backend_port_index);
    EXPECT_EQ(late_result.verdict, BalanceVerdict::drop);
    EXPECT_EQ(late_result.reason, DropReason::backend_removed);
    // If the RST was not exactly in sequence, the client answers with a
    // challenge ACK carrying its exact sequence: that earns a RST too.
    Bytes challenge = tcp(40200, 80, 0x10);
    put16(challenge, 8, 0);
    put16(challenge, 10, 6000);
    Packet second(ipv4_frame(gw_client_mac, client_mac, client4, vip_fullnat, 6,
                             with_transport_checksum(client4, vip_fullnat, 6, challenge)));
    ASSERT_EQ(run(second, client_port_index).verdict, BalanceVerdict::forward);
    const Bytes second_rst = second.bytes();
    EXPECT_EQ(second_rst[34 + 13], 0x04);
    EXPECT_EQ(second_rst[34 + 7], 6000 & 0xff);
    EXPECT_EQ(second_rst[34 + 6], 6000 >> 8);
    EXPECT_EQ(counters.resets_sent.read(), 2u);
    // The client's new SYN goes to a backend still there.
    Packet again(tcp_frame(gw_client_mac, client4, vip_fullnat, 40200, 80, 0x02));
    ASSERT_EQ(run(again, client_port_index).verdict, BalanceVerdict::forward);
    EXPECT_NE(again.frame.data[14 + 19], backend_octet);
}

} // namespace
} // namespace sluice::lb

namespace sluice::lb {
namespace {

// Two services of one mode on one backend: what a client reusing its source
// port toward both of them looks like.
std::unique_ptr<Snapshot> two_vips_one_backend(ForwardingMode mode) {
    std::vector<Service> services;
    services.push_back(service("a", ip("198.18.10.20"), mode, {backends4[0]}));
    services.push_back(service("b", ip("198.18.10.21"), mode, {backends4[0]}));
    std::vector<EgressPort> ports(2);
    ports[client_port_index].mac = gw_client_mac;
    ports[backend_port_index].mac = gw_backend_mac;
    ports[backend_port_index].ipv4 = ip("198.18.1.1");
    ports[backend_port_index].has_ipv4 = true;
    NextHop hop;
    hop.egress_port = backend_port_index;
    hop.resolved = true;
    hop.mac = backend_mac(ip(backends4[0]));
    return std::make_unique<Snapshot>(std::move(services), std::move(ports),
                                      std::vector<std::pair<IpAddress, NextHop>>{{ip(backends4[0]), hop}},
                                      7, 1);
}

TEST_F(Balancer, DsrFlowsNeedNoUniqueAnswerTuple) {
    snapshot = two_vips_one_backend(ForwardingMode::dsr);
    Packet first(tcp_frame(gw_client_mac, client4, ip("198.18.10.20"), 40300, 80, 0x02));
    Packet second(tcp_frame(gw_client_mac, client4, ip("198.18.10.21"), 40300, 80, 0x02));
    EXPECT_EQ(run(first, client_port_index).verdict, BalanceVerdict::forward);
    EXPECT_EQ(run(second, client_port_index).verdict, BalanceVerdict::forward);
    EXPECT_EQ(counters.new_flows.read(), 2u);
    EXPECT_EQ(counters.stateless_packets.read(), 0u);
}

TEST_F(Balancer, NatFlowsWhoseAnswersWouldCollideAreRefused) {
    snapshot = two_vips_one_backend(ForwardingMode::nat);
    Packet first(tcp_frame(gw_client_mac, client4, ip("198.18.10.20"), 40301, 80, 0x02));
    Packet second(tcp_frame(gw_client_mac, client4, ip("198.18.10.21"), 40301, 80, 0x02));
    EXPECT_EQ(run(first, client_port_index).verdict, BalanceVerdict::forward);
    EXPECT_EQ(run(second, client_port_index).reason, DropReason::reverse_tuple_in_use);
}

} // namespace
} // namespace sluice::lb
