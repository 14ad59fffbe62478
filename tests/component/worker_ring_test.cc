// The worker on real DPDK ports backed by rings (net_ring via
// rte_eth_from_rings): frames go in on a port's RX ring, the worker polls
// once, and what it sent is read back from the TX rings of the port and of its
// exception path.
#include <gtest/gtest.h>

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <atomic>
#include <string>
#include <unistd.h>

#include "dataplane/port.h"
#include "dataplane/worker.h"
#include "tests/fixtures/packet_builder.h"
#include "tests/fixtures/ring_port.h"

namespace sluice::dataplane {
namespace {

using namespace sluice::testing;

const MacAddress client = mac("02:00:00:00:00:02");
const IpAddress c4 = ip("198.18.0.2"), g4 = ip("198.18.0.1");
const IpAddress c6 = ip("2001:db8:0:1::2"), g6 = ip("2001:db8:0:1::1");

class WorkerOnRings : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        pool = start_test_eal("sluice-component");
        ASSERT_NE(pool, nullptr);
        wire = new RingPort("ring_wire", pool);
        kernel = new RingPort("ring_kernel", pool);
    }

    void SetUp() override {
        local.mac = port_mac(wire->port_id);
        local.add(g4);
        local.add(g6);
        worker = std::make_unique<WorkerContext>();
        worker->stop = &stop;
        WorkerPort view;
        view.port_id = wire->port_id;
        view.has_exception_path = true;
        view.exception_port_id = kernel->port_id;
        view.local = &local;
        worker->ports.push_back(view);
        prepare_worker(*worker);
    }

    void inject(rte_ring *ring, const Bytes &frame) { inject_frame(pool, ring, frame); }
    std::vector<Bytes> drain(rte_ring *ring) { return drain_frames(ring); }

    void poll() {
        poll_worker(*worker);
        flush_worker(*worker);
    }

    static inline rte_mempool *pool = nullptr;
    static inline RingPort *wire = nullptr, *kernel = nullptr;
    std::atomic<bool> stop{false};
    LocalAddresses local;
    std::unique_ptr<WorkerContext> worker;
};

TEST_F(WorkerOnRings, AnswersArpAndEchoOnTheWire) {
    inject(wire->rx[0], concat({ethernet(mac("ff:ff:ff:ff:ff:ff"), client, 0x0806),
                             arp(1, client, c4, {}, g4)}));
    inject(wire->rx[0], echo_request_v4(local.mac, client, c4, g4));
    inject(wire->rx[0], echo_request_v6(local.mac, client, c6, g6));
    inject(wire->rx[0], neighbor_solicitation(client, c6, g6));
    poll();
    const auto sent = drain(wire->tx[0]);
    ASSERT_EQ(sent.size(), 4u);
    EXPECT_EQ(sent[0][14 + 7], 2);   // ARP reply
    EXPECT_EQ(sent[1][34], 0);       // ICMP echo reply
    EXPECT_EQ(sent[2][54], 129);     // ICMPv6 echo reply
    EXPECT_EQ(sent[3][54], 136);     // neighbor advertisement
    EXPECT_TRUE(drain(kernel->tx[0]).empty());
    EXPECT_EQ(worker->counters.rx_packets.read(), 4u);
    EXPECT_EQ(worker->counters.tx_packets.read(), 4u);
    EXPECT_EQ(worker->counters.arp_replies.read(), 1u);
    EXPECT_EQ(worker->counters.icmp_echo_replies.read(), 1u);
    EXPECT_EQ(worker->counters.icmpv6_echo_replies.read(), 1u);
    EXPECT_EQ(worker->counters.neighbor_advertisements.read(), 1u);
}

TEST_F(WorkerOnRings, OtherTrafficGoesToTheKernelAndBack) {
    const Bytes tcp_syn = ipv4_frame(local.mac, client, c4, g4, 6, sluice::testing::tcp(40000, 22, 0x02));
    inject(wire->rx[0], tcp_syn);
    poll();
    auto up = drain(kernel->tx[0]);
    ASSERT_EQ(up.size(), 1u);
    EXPECT_EQ(up[0], tcp_syn);
    EXPECT_EQ(worker->counters.to_kernel.read(), 1u);

    // What the kernel sends leaves through the port untouched.
    const Bytes syn_ack = ipv4_frame(client, local.mac, g4, c4, 6, sluice::testing::tcp(22, 40000, 0x12));
    inject(kernel->rx[0], syn_ack);
    poll();
    auto out = drain(wire->tx[0]);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], syn_ack);
    EXPECT_EQ(worker->counters.from_kernel.read(), 1u);
}

TEST_F(WorkerOnRings, MalformedFramesAreDroppedByReason) {
    Bytes bad_checksum = echo_request_v4(local.mac, client, c4, g4);
    bad_checksum[14 + 10] ^= 0xff;
    Bytes short_ipv4 = echo_request_v4(local.mac, client, c4, g4);
    short_ipv4.resize(14 + 12);
    inject(wire->rx[0], bad_checksum);
    inject(wire->rx[0], short_ipv4);
    inject(wire->rx[0], Bytes(10, 0));
    poll();
    EXPECT_TRUE(drain(wire->tx[0]).empty());
    EXPECT_TRUE(drain(kernel->tx[0]).empty());
    EXPECT_EQ(worker->counters.drop(DropReason::bad_ipv4_checksum).read(), 1u);
    EXPECT_EQ(worker->counters.drop(DropReason::truncated_ipv4).read(), 1u);
    EXPECT_EQ(worker->counters.drop(DropReason::truncated_ethernet).read(), 1u);
}

TEST_F(WorkerOnRings, WithoutExceptionPathOtherTrafficIsDropped) {
    worker->ports[0].has_exception_path = false;
    inject(wire->rx[0], ipv4_frame(local.mac, client, c4, g4, 17, udp(1, 2, 0)));
    poll();
    EXPECT_TRUE(drain(wire->tx[0]).empty());
    EXPECT_TRUE(drain(kernel->tx[0]).empty());
    EXPECT_EQ(worker->counters.drop(DropReason::no_exception_path).read(), 1u);
}

TEST_F(WorkerOnRings, WorkerLoopStopsWhenAsked) {
    stop.store(true);
    EXPECT_EQ(run_worker(worker.get()), 0);
}

} // namespace
} // namespace sluice::dataplane
