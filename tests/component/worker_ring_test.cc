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

namespace sluice::dataplane {
namespace {

using namespace sluice::testing;

const MacAddress client = mac("02:00:00:00:00:02");
const IpAddress c4 = ip("198.18.0.2"), g4 = ip("198.18.0.1");
const IpAddress c6 = ip("2001:db8:0:1::2"), g6 = ip("2001:db8:0:1::1");

// An ethdev over two rings: the test writes `rx`, the worker reads it; the
// worker writes `tx`, the test reads it.
struct RingPort {
    rte_ring *rx = nullptr, *tx = nullptr;
    uint16_t port_id = 0;

    RingPort(const std::string &name, rte_mempool *pool) {
        rx = rte_ring_create((name + "_rx").c_str(), 256, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        tx = rte_ring_create((name + "_tx").c_str(), 256, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        const int id = rte_eth_from_rings(name.c_str(), &rx, 1, &tx, 1, 0);
        EXPECT_GE(id, 0);
        port_id = uint16_t(id);
        std::string error;
        EXPECT_TRUE(start_port(port_id, QueueSetup{1, 256, 256, 1500, false}, pool, error))
            << error;
    }
};

class WorkerOnRings : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        static std::string prefix = "sluice-ctest-" + std::to_string(getpid());
        const char *argv[] = {"component_tests", "--no-huge", "-m", "128", "--no-pci",
                              "--no-shconf", "-l", "0", "--log-level", "*:error",
                              "--file-prefix", prefix.c_str()};
        ASSERT_GE(rte_eal_init(int(std::size(argv)), const_cast<char **>(argv)), 0);
        std::string error;
        pool = create_mempool(0, 2047, mbuf_data_room(1500), error);
        ASSERT_NE(pool, nullptr) << error;
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

    void inject(rte_ring *ring, const Bytes &frame) {
        rte_mbuf *m = rte_pktmbuf_alloc(pool);
        ASSERT_NE(m, nullptr);
        std::memcpy(rte_pktmbuf_append(m, uint16_t(frame.size())), frame.data(), frame.size());
        ASSERT_EQ(rte_ring_enqueue(ring, m), 0);
    }

    std::vector<Bytes> drain(rte_ring *ring) {
        std::vector<Bytes> frames;
        void *object;
        while (rte_ring_dequeue(ring, &object) == 0) {
            auto *m = static_cast<rte_mbuf *>(object);
            const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
            frames.emplace_back(data, data + rte_pktmbuf_data_len(m));
            rte_pktmbuf_free(m);
        }
        return frames;
    }

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
    inject(wire->rx, concat({ethernet(mac("ff:ff:ff:ff:ff:ff"), client, 0x0806),
                             arp(1, client, c4, {}, g4)}));
    inject(wire->rx, echo_request_v4(local.mac, client, c4, g4));
    inject(wire->rx, echo_request_v6(local.mac, client, c6, g6));
    inject(wire->rx, neighbor_solicitation(client, c6, g6));
    poll();
    const auto sent = drain(wire->tx);
    ASSERT_EQ(sent.size(), 4u);
    EXPECT_EQ(sent[0][14 + 7], 2);   // ARP reply
    EXPECT_EQ(sent[1][34], 0);       // ICMP echo reply
    EXPECT_EQ(sent[2][54], 129);     // ICMPv6 echo reply
    EXPECT_EQ(sent[3][54], 136);     // neighbor advertisement
    EXPECT_TRUE(drain(kernel->tx).empty());
    EXPECT_EQ(worker->counters.rx_packets.read(), 4u);
    EXPECT_EQ(worker->counters.tx_packets.read(), 4u);
    EXPECT_EQ(worker->counters.arp_replies.read(), 1u);
    EXPECT_EQ(worker->counters.icmp_echo_replies.read(), 1u);
    EXPECT_EQ(worker->counters.icmpv6_echo_replies.read(), 1u);
    EXPECT_EQ(worker->counters.neighbor_advertisements.read(), 1u);
}

TEST_F(WorkerOnRings, OtherTrafficGoesToTheKernelAndBack) {
    const Bytes tcp_syn = ipv4_frame(local.mac, client, c4, g4, 6, tcp(40000, 22, 0x02));
    inject(wire->rx, tcp_syn);
    poll();
    auto up = drain(kernel->tx);
    ASSERT_EQ(up.size(), 1u);
    EXPECT_EQ(up[0], tcp_syn);
    EXPECT_EQ(worker->counters.to_kernel.read(), 1u);

    // What the kernel sends leaves through the port untouched.
    const Bytes syn_ack = ipv4_frame(client, local.mac, g4, c4, 6, tcp(22, 40000, 0x12));
    inject(kernel->rx, syn_ack);
    poll();
    auto out = drain(wire->tx);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], syn_ack);
    EXPECT_EQ(worker->counters.from_kernel.read(), 1u);
}

TEST_F(WorkerOnRings, MalformedFramesAreDroppedByReason) {
    Bytes bad_checksum = echo_request_v4(local.mac, client, c4, g4);
    bad_checksum[14 + 10] ^= 0xff;
    Bytes short_ipv4 = echo_request_v4(local.mac, client, c4, g4);
    short_ipv4.resize(14 + 12);
    inject(wire->rx, bad_checksum);
    inject(wire->rx, short_ipv4);
    inject(wire->rx, Bytes(10, 0));
    poll();
    EXPECT_TRUE(drain(wire->tx).empty());
    EXPECT_TRUE(drain(kernel->tx).empty());
    EXPECT_EQ(worker->counters.drop(DropReason::bad_ipv4_checksum).read(), 1u);
    EXPECT_EQ(worker->counters.drop(DropReason::truncated_ipv4).read(), 1u);
    EXPECT_EQ(worker->counters.drop(DropReason::truncated_ethernet).read(), 1u);
}

TEST_F(WorkerOnRings, WithoutExceptionPathOtherTrafficIsDropped) {
    worker->ports[0].has_exception_path = false;
    inject(wire->rx, ipv4_frame(local.mac, client, c4, g4, 17, udp(1, 2, 0)));
    poll();
    EXPECT_TRUE(drain(wire->tx).empty());
    EXPECT_TRUE(drain(kernel->tx).empty());
    EXPECT_EQ(worker->counters.drop(DropReason::no_exception_path).read(), 1u);
}

TEST_F(WorkerOnRings, WorkerLoopStopsWhenAsked) {
    stop.store(true);
    EXPECT_EQ(run_worker(worker.get()), 0);
}

} // namespace
} // namespace sluice::dataplane
