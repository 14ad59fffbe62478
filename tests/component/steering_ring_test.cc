// Two workers on real DPDK ports with two queues each, backed by rings
// (net_ring, which takes no rte_flow rules: the software steering path). A
// packet is put on the queue of the worker that does NOT own its flow, as RSS
// may do; the tests check that it comes out of the owner's TX queue, rewritten.
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
#include "dataplane/published_snapshot.h"
#include "dataplane/steering_rules.h"
#include "dataplane/worker.h"
#include "lb/nat.h"
#include "tests/fixtures/balancer_fixture.h"
#include "tests/fixtures/packet_builder.h"
#include "tests/fixtures/ring_port.h"

namespace sluice::dataplane {
namespace {

using namespace sluice::testing;

constexpr unsigned workers = 2;
const MacAddress client_mac = mac("02:00:00:00:00:02");
const IpAddress client = ip("198.18.0.2");
const IpAddress vip_fullnat = ip("198.18.10.1"), vip_nat = ip("198.18.10.2"),
                vip_udp = ip("198.18.10.5");
const IpAddress snat = ip("198.18.1.100");
const char *backends[] = {"198.18.1.11", "198.18.1.12", "198.18.1.13"};
constexpr uint16_t client_port = 0, backend_port = 1;

lb::Service service(const char *name, const IpAddress &vip, lb::ForwardingMode mode,
                    uint8_t protocol = 6, uint16_t port = 80) {
    lb::Service s = balanced_service(name, vip, protocol, port, mode, addresses(
        {backends[0], backends[1], backends[2]}));
    if (mode == lb::ForwardingMode::fullnat)
        s.local_addresses = {snat};
    return s;
}

Bytes tcp_frame(const MacAddress &to, const MacAddress &from, const IpAddress &source,
                uint16_t source_port, const IpAddress &destination, uint16_t destination_port,
                uint8_t flags) {
    return ipv4_frame(to, from, source, destination, 6,
                      with_transport_checksum(source, destination, 6,
                                              sluice::testing::tcp(source_port, destination_port, flags)));
}

lb::FlowKey key_of(const Bytes &frame) {
    ParsedPacket parsed;
    EXPECT_EQ(parse_packet(frame.data(), uint32_t(frame.size()), parsed), DropReason::none);
    return lb::flow_key_of(frame.data(), parsed);
}

IpAddress source_of(const lb::FlowKey &key) {
    uint32_t v4;
    std::memcpy(&v4, key.source.data(), 4);
    return IpAddress::from_v4_be(v4);
}

class TwoWorkers : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        pool = start_test_eal("sluice-component-steering");
        ASSERT_NE(pool, nullptr);
        ports[client_port] = new RingPort("steer_client", pool, workers);
        ports[backend_port] = new RingPort("steer_backend", pool, workers);
        steering = new WorkerSteering(workers);
        for (unsigned w = 0; w < workers; ++w)
            steering->inboxes.push_back(rte_ring_create_elem(
                ("steer_inbox" + std::to_string(w)).c_str(), sizeof(SteeredPacket), 1024, 0,
                RING_F_SC_DEQ));
    }

    // Publishes the test's services, with the backends' MACs known or not.
    void publish(bool resolved, uint64_t generation) {
        std::vector<lb::Service> services;
        services.push_back(service("fullnat", vip_fullnat, lb::ForwardingMode::fullnat));
        services.push_back(service("nat", vip_nat, lb::ForwardingMode::nat));
        services.push_back(service("udp", vip_udp, lb::ForwardingMode::fullnat, 17, 53));
        std::vector<lb::EgressPort> egress(2);
        for (uint16_t p : {client_port, backend_port})
            egress[p].mac = port_mac(ports[p]->port_id);
        std::vector<std::pair<IpAddress, lb::NextHop>> next_hops;
        for (const char *address : backends)
            next_hops.emplace_back(ip(address),
                                   lb::NextHop{backend_port, resolved, backend_mac(ip(address))});
        snapshot->publish(std::make_unique<const lb::Snapshot>(
            std::move(services), std::move(egress), std::move(next_hops), 7, generation));
    }

    void SetUp() override {
        snapshot = std::make_unique<PublishedSnapshot>(workers);
        publish(true, 1);

        const lb::SnatSlices slices(workers);
        for (unsigned w = 0; w < workers; ++w) {
            auto worker = std::make_unique<WorkerContext>();
            worker->id = w;
            worker->stop = &stop;
            worker->steering = steering;
            for (uint16_t p : {client_port, backend_port}) {
                WorkerPort view;
                view.port_id = ports[p]->port_id;
                view.queue_id = uint16_t(w);
                worker->ports.push_back(view);
            }
            auto balancing = std::make_unique<WorkerBalancing>();
            balancing->snapshot = snapshot.get();
            balancing->flows = std::make_unique<lb::FlowTable>(1024, lb::HashKey::from_seed(w));
            balancing->balancer =
                std::make_unique<lb::L4Balancer>(*balancing->flows, slices.slice(w));
            worker->balancing = std::move(balancing);
            prepare_worker(*worker);
            worker_[w] = std::move(worker);
        }
    }

    void TearDown() override {
        for (unsigned w = 0; w < workers; ++w) {
            poll(w);
            for (uint16_t p : {client_port, backend_port})
                drain(ports[p]->tx[w]);
        }
    }

    void inject(uint16_t port, unsigned queue, const Bytes &frame) {
        inject_frame(pool, ports[port]->rx[queue], frame);
    }
    static std::vector<Bytes> drain(rte_ring *ring) { return drain_frames(ring); }

    // What worker `w` sent out of `port`.
    std::vector<Bytes> sent(unsigned w, uint16_t port) { return drain(ports[port]->tx[w]); }

    void poll(unsigned w) {
        snapshot->online(w);
        poll_worker(*worker_[w]);
        flush_worker(*worker_[w]);
        snapshot->offline(w);
    }

    WorkerCounters &counters(unsigned w) { return worker_[w]->counters; }

    static inline rte_mempool *pool = nullptr;
    static inline RingPort *ports[2] = {};
    static inline WorkerSteering *steering = nullptr;
    std::atomic<bool> stop{false};
    std::unique_ptr<PublishedSnapshot> snapshot;
    std::unique_ptr<WorkerContext> worker_[workers];
};

TEST_F(TwoWorkers, FullnatAnswersReachTheWorkerOwningTheirSnatPort) {
    const MacAddress gw_client = port_mac(ports[client_port]->port_id);
    const MacAddress gw_backend = port_mac(ports[backend_port]->port_id);
    for (unsigned first = 0; first < workers; ++first) {
        const unsigned other = 1 - first;
        const uint16_t client_source_port = uint16_t(41000 + first);
        inject(client_port, first, tcp_frame(gw_client, client_mac, client, client_source_port,
                                             vip_fullnat, 80, 0x02));
        poll(first);
        auto out = sent(first, backend_port);
        ASSERT_EQ(out.size(), 1u);
        const lb::FlowKey request = key_of(out[0]);
        const uint16_t snat_port = network_order(request.source_port);
        const lb::SnatPortRange slice = lb::SnatSlices(workers).slice(first);
        EXPECT_GE(snat_port, slice.first);
        EXPECT_LE(snat_port, slice.last);

        // The SYN-ACK arrives on the other worker's queue.
        const IpAddress backend = IpAddress::from_v4_be([&] {
            uint32_t v;
            std::memcpy(&v, request.destination.data(), 4);
            return v;
        }());
        inject(backend_port, other, tcp_frame(gw_backend, backend_mac(backend), backend, 80,
                                               snat, snat_port, 0x12));
        poll(other);
        EXPECT_TRUE(sent(other, client_port).empty());
        EXPECT_EQ(counters(other).steered_out.read(), 1u);
        poll(first);
        out = sent(first, client_port);
        ASSERT_EQ(out.size(), 1u);
        const lb::FlowKey answer = key_of(out[0]);
        EXPECT_EQ(source_of(answer), vip_fullnat);
        EXPECT_EQ(network_order(answer.destination_port), client_source_port);
        EXPECT_EQ(std::memcmp(out[0].data(), client_mac.bytes.data(), 6), 0);
        EXPECT_EQ(counters(first).steered_in.read(), 1u);
    }
}

TEST_F(TwoWorkers, NatRequestsAndAnswersAreHandledByOneWorker) {
    const MacAddress gw_client = port_mac(ports[client_port]->port_id);
    const MacAddress gw_backend = port_mac(ports[backend_port]->port_id);
    const lb::Steering &owner_of = steering->steering;
    unsigned tested[workers] = {};
    for (uint16_t source_port = 42000; source_port < 42016; ++source_port) {
        const Bytes syn = tcp_frame(gw_client, client_mac, client, source_port, vip_nat, 80, 0x02);
        lb::FlowProbe probe;
        probe.key = key_of(syn);
        probe.candidate = true;
        const uint16_t owner = owner_of.owner(probe, *snapshot->current());
        ASSERT_LT(owner, workers);
        const unsigned other = 1 - owner;
        ++tested[owner];
        inject(client_port, other, syn);
        poll(other);
        EXPECT_TRUE(sent(other, backend_port).empty());
        poll(owner);
        auto out = sent(owner, backend_port);
        ASSERT_EQ(out.size(), 1u);
        const lb::FlowKey request = key_of(out[0]);
        const IpAddress backend = IpAddress::from_v4_be([&] {
            uint32_t v;
            std::memcpy(&v, request.destination.data(), 4);
            return v;
        }());
        // nat: the client's address and port are kept.
        EXPECT_EQ(source_of(request), client);

        inject(backend_port, other, tcp_frame(gw_backend, backend_mac(backend), backend, 80,
                                               client, source_port, 0x12));
        poll(other);
        EXPECT_TRUE(sent(other, client_port).empty());
        poll(owner);
        out = sent(owner, client_port);
        ASSERT_EQ(out.size(), 1u);
        EXPECT_EQ(source_of(key_of(out[0])), vip_nat);
    }
    EXPECT_GT(tested[0], 0u);
    EXPECT_GT(tested[1], 0u);
}

TEST_F(TwoWorkers, AnIcmpErrorIsTranslatedByTheWorkerThatHasItsFlow) {
    const MacAddress gw_client = port_mac(ports[client_port]->port_id);
    inject(client_port, 0, tcp_frame(gw_client, client_mac, client, 43000, vip_fullnat, 80, 0x02));
    poll(0);
    auto out = sent(0, backend_port);
    ASSERT_EQ(out.size(), 1u);
    const lb::FlowKey toward_backend = key_of(out[0]);

    // The client says the VIP's packets are too big, on worker 1's queue.
    const Bytes quoted = ip_packet(vip_fullnat, client, 6,
                                   with_transport_checksum(vip_fullnat, client, 6,
                                                           sluice::testing::tcp(80, 43000, 0x12)));
    inject(client_port, 1, ipv4_frame(gw_client, client_mac, client, vip_fullnat, 1,
                                      icmp_error(3, 4, 1400, quote_of(quoted))));
    poll(1);
    EXPECT_EQ(counters(1).steered_out.read(), 1u);
    poll(0);
    out = sent(0, backend_port);
    ASSERT_EQ(out.size(), 1u);
    // Now from the SNAT address to the backend, about what the backend sent.
    ParsedPacket parsed;
    ASSERT_EQ(parse_packet(out[0].data(), uint32_t(out[0].size()), parsed), DropReason::none);
    lb::FlowKey quoted_key;
    ASSERT_TRUE(lb::quoted_flow_key(out[0].data(), parsed, quoted_key));
    EXPECT_EQ(quoted_key, toward_backend.reversed());
    EXPECT_EQ(worker_[0]->balancing->counters.icmp_errors.read(), 1u);

    // An error about no flow at all is asked of each worker once, then left
    // to the kernel (here: no exception path, so dropped).
    const Bytes stray = ip_packet(vip_fullnat, client, 6,
                                  with_transport_checksum(vip_fullnat, client, 6,
                                                          sluice::testing::tcp(80, 49999, 0x12)));
    inject(client_port, 1, ipv4_frame(gw_client, client_mac, client, vip_fullnat, 1,
                                      icmp_error(3, 4, 1400, quote_of(stray))));
    poll(1);
    poll(0);
    poll(1);
    EXPECT_EQ(counters(0).drop(DropReason::no_exception_path).read(), 1u);
    EXPECT_EQ(counters(1).steered_out.read(), 2u);
    EXPECT_EQ(counters(0).steered_out.read(), 0u);
}

TEST_F(TwoWorkers, LaterFragmentsFindTheWorkerThatSawTheirFirst) {
    const MacAddress gw_client = port_mac(ports[client_port]->port_id);
    const MacAddress gw_backend = port_mac(ports[backend_port]->port_id);
    // The first fragment reaches worker 0, the others worker 1.
    const auto request = udp_fragments(gw_client, client_mac, client, vip_udp, 44000, 53, 2992,
                                       {1480, 1480, 40}, 0x2222);
    inject(client_port, 0, request[0]);
    poll(0);
    inject(client_port, 1, request[1]);
    inject(client_port, 1, request[2]);
    poll(1);
    EXPECT_EQ(counters(1).steered_out.read(), 2u);
    poll(0);
    const auto forwarded = sent(0, backend_port);
    ASSERT_EQ(forwarded.size(), 3u);
    for (const Bytes &frame : forwarded)  // one backend, from the SNAT address
        EXPECT_EQ(Bytes(frame.begin(), frame.begin() + 6), Bytes(forwarded[0].begin(), forwarded[0].begin() + 6));
    EXPECT_EQ(worker_[0]->balancing->counters.later_fragments.read(), 2u);

    // The backend's fragmented answer lands on worker 1: the first fragment
    // is steered by its SNAT port, the others look for it.
    ParsedPacket parsed;
    ASSERT_EQ(parse_packet(forwarded[0].data(), uint32_t(forwarded[0].size()), parsed), DropReason::none);
    const lb::FlowKey request_key = lb::flow_key_of(forwarded[0].data(), parsed);
    const IpAddress backend = IpAddress::from_v4_be([&] {
        uint32_t v;
        std::memcpy(&v, request_key.destination.data(), 4);
        return v;
    }());
    const auto answer = udp_fragments(gw_backend, backend_mac(backend), backend, snat, 53,
                                      network_order(request_key.source_port), 3000, {1480, 1480, 48}, 9);
    for (const Bytes &frame : answer)
        inject(backend_port, 1, frame);
    poll(1);
    poll(0);
    const auto back = sent(0, client_port);
    ASSERT_EQ(back.size(), 3u);
    for (const Bytes &frame : back) {
        ParsedPacket p;
        ASSERT_EQ(parse_packet(frame.data(), uint32_t(frame.size()), p), DropReason::none);
        EXPECT_EQ(source_of(lb::flow_key_of(frame.data(), p)), vip_udp);
    }

    // A later fragment whose first nobody saw tours both workers and is
    // dropped by the last, by reason.
    const auto orphan = udp_fragments(gw_client, client_mac, client, vip_udp, 44001, 53, 2992,
                                      {1480, 1480, 40}, 0x3333);
    inject(client_port, 0, orphan[2]);
    poll(0);
    poll(1);
    EXPECT_EQ(counters(1).drop(DropReason::fragment_without_first).read(), 1u);
}

TEST_F(TwoWorkers, PacketsWaitForTheirBackendsMac) {
    const MacAddress gw_client = port_mac(ports[client_port]->port_id);
    publish(false, 2);
    inject(client_port, 0, tcp_frame(gw_client, client_mac, client, 45000, vip_fullnat, 80, 0x02));
    inject(client_port, 0, tcp_frame(gw_client, client_mac, client, 45001, vip_fullnat, 80, 0x02));
    poll(0);
    poll(0);
    EXPECT_TRUE(sent(0, backend_port).empty());
    EXPECT_EQ(counters(0).neighbour_waits.read(), 2u);
    // The control plane learns the MACs: the held SYNs leave, in order.
    publish(true, 3);
    poll(0);
    const auto out = sent(0, backend_port);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(network_order(key_of(out[0]).destination_port), 80);
    EXPECT_EQ(counters(0).drop(DropReason::next_hop_unresolved).read(), 0u);

    // A neighbour that never answers: the packet is dropped once its time is up.
    publish(false, 4);
    worker_[0]->waiting.timeout_ms = 1;
    inject(client_port, 0, tcp_frame(gw_client, client_mac, client, 45002, vip_fullnat, 80, 0x02));
    poll(0);
    EXPECT_EQ(worker_[0]->waiting.count, 1u);
    usleep(5000);
    poll(0);
    EXPECT_EQ(worker_[0]->waiting.count, 0u);
    EXPECT_EQ(counters(0).drop(DropReason::next_hop_unresolved).read(), 1u);
    EXPECT_TRUE(sent(0, backend_port).empty());
}

TEST_F(TwoWorkers, RingPortsRefuseSteeringRules) {
    std::string error;
    EXPECT_EQ(install_steering_rules(ports[backend_port]->port_id, {snat}, lb::SnatSlices(workers),
                                     error),
              -1);
    EXPECT_FALSE(error.empty());
}

} // namespace
} // namespace sluice::dataplane
