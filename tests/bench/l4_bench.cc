// The L4 pipeline benchmark: the worker's real loop (dataplane/worker.cc,
// poll_worker: rx_burst, parse, probe, balance, buffered tx_burst) over two
// net_ring ports, on synthetic frames in mbufs, one core; next to a baseline
// that receives from the same ports, parses, swaps MACs and forwards
// (testpmd's macswap). Each case prints one line:
//   case=<name> mpps=<float> cycles_per_packet=<float>
// A pass puts `pass_packets` frames on the client port's RX ring and times
// the polls that take them all through; between passes (untimed) the frames
// come off the TX rings and are restored, since the rewrites change them.
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <sched.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/packet_parse.h"
#include "dataplane/port.h"
#include "tests/fixtures/bench_ports.h"
#include "dataplane/published_snapshot.h"
#include "dataplane/worker.h"
#include "lb/l4_balancer.h"
#include "tests/fixtures/packet_builder.h"

namespace sluice::bench {
namespace {

using namespace sluice::testing;
using lb::BalanceVerdict;

size_t established_flows = 1'000'000;  // argv[2] may lower it (profiling)
std::string only_case;  // argv[3]: run just this case (profiling)

bool wanted(const char *name) { return only_case.empty() || only_case == name; }
constexpr size_t working_set = 65'536;  // distinct frames cycled through per case
constexpr size_t new_flow_batch = 262'144;
// Frames per timed pass: a few RX rings' worth, as a busy NIC delivers them.
constexpr unsigned pass_packets = 8192;

const MacAddress client_mac = mac("02:00:00:00:00:02");
const MacAddress gw_mac = mac("02:00:00:00:01:00");
const IpAddress vip_fullnat = ip("198.18.10.1"), vip_dsr = ip("198.18.10.3");

double tsc_hz() {
    const auto start = std::chrono::steady_clock::now();
    const uint64_t tsc0 = __rdtsc();
    while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(200)) {
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return double(__rdtsc() - tsc0) / seconds;
}

// A client tuple from an index: up to 65536 addresses x 50000 ports.
IpAddress client_address(size_t i) {
    IpAddress a = ip("198.19.0.0");
    a.bytes[2] = uint8_t(i >> 8);
    a.bytes[3] = uint8_t(i);
    return a;
}

Bytes tcp_to(const IpAddress &vip, size_t client, uint8_t flags) {
    const IpAddress source = client_address(client / 50000);
    const uint16_t port = uint16_t(10000 + client % 50000);
    return ipv4_frame(gw_mac, client_mac, source, vip, 6,
                      with_transport_checksum(source, vip, 6, sluice::testing::tcp(port, 80, flags)));
}

// Backends get counter slots from `first_slot` on, as the control plane
// gives every backend one (ctrl/snapshot_builder.cc): the flows' next hops
// and per-backend counters then take the same path as in sluiced.
lb::Service make_service(const char *name, const IpAddress &vip, lb::ForwardingMode mode,
                         size_t local_addresses, lb::BackendSlot first_slot) {
    lb::Service s;
    s.name = name;
    s.vip = vip;
    s.protocol = 6;
    s.port_be = 0x5000;
    s.mode = mode;
    std::vector<lb::MaglevBackend> identities;
    for (const char *address : {"198.18.1.11", "198.18.1.12", "198.18.1.13"}) {
        s.backends.push_back({ip(address), 0, 1, lb::BackendSlot(first_slot + s.backends.size())});
        identities.push_back({address, 1});
    }
    s.maglev = lb::MaglevTable(identities, 65537, 1);
    for (size_t i = 0; i < local_addresses; ++i) {
        IpAddress local = ip("198.18.1.100");
        local.bytes[3] = uint8_t(100 + i);
        s.local_addresses.push_back(local);
    }
    return s;
}

std::unique_ptr<lb::Snapshot> bench_snapshot() {
    std::vector<lb::Service> services;
    // Enough SNAT addresses for the new-flow batches: 3 backends x 64 x 64K.
    services.push_back(make_service("fullnat", vip_fullnat, lb::ForwardingMode::fullnat, 64, 0));
    services.push_back(make_service("dsr", vip_dsr, lb::ForwardingMode::dsr, 0, 3));
    std::vector<lb::EgressPort> ports(2);
    ports[0].mac = gw_mac;
    ports[1].mac = mac("02:00:00:00:01:01");
    ports[1].ipv4 = ip("198.18.1.1");
    ports[1].ipv6 = ip("2001:db8:0:2::1");
    ports[1].has_ipv4 = ports[1].has_ipv6 = true;
    std::vector<std::pair<IpAddress, lb::NextHop>> hops;
    for (const char *address : {"198.18.1.11", "198.18.1.12", "198.18.1.13"}) {
        lb::NextHop hop;
        hop.egress_port = 1;
        hop.resolved = true;
        hop.mac = mac("02:00:00:00:02:0b");
        hops.emplace_back(ip(address), hop);
    }
    return std::make_unique<lb::Snapshot>(std::move(services), std::move(ports), std::move(hops),
                                          1, 1);
}

// The frames of a case, cycled through pass after pass.
struct FrameSet {
    std::vector<Bytes> frames;
    size_t next = 0;

    const Bytes &take() {
        const Bytes &frame = frames[next];
        next = (next + 1) % frames.size();
        return frame;
    }
};

struct Result {
    double mpps, cycles_per_packet;
};

// A case whose packets did not all go through is no figure: it says so
// and the run fails.
int failed(const char *name, const char *what) {
    std::fprintf(stderr, "bench: %s: %s\n", name, what);
    return 1;
}

void print(const char *name, const Result &r) {
    std::printf("case=%s mpps=%.2f cycles_per_packet=%.1f\n", name, r.mpps, r.cycles_per_packet);
    std::fflush(stdout);
}

class Bench {
public:
    Bench(rte_mempool *pool) : pool_(pool), client_("bench_client", pool),
                               backend_("bench_backend", pool) {
        mbufs_.resize(pass_packets);
        if (rte_pktmbuf_alloc_bulk(pool_, mbufs_.data(), pass_packets) != 0)
            throw std::runtime_error("bench: mempool too small");
    }

    // A worker like sluiced's, on the two ports, balancing by `snapshot`.
    std::unique_ptr<dataplane::WorkerContext> worker(dataplane::PublishedSnapshot &snapshot,
                                                     size_t flow_capacity,
                                                     lb::FlowTimeouts timeouts = {}) {
        auto w = std::make_unique<dataplane::WorkerContext>();
        w->settings = {32, 100, 0};
        for (const BenchPort *port : {&client_, &backend_}) {
            dataplane::WorkerPort view;
            view.port_id = port->port_id;
            view.local = &no_local_;
            w->ports.push_back(view);
        }
        w->balancing = std::make_unique<dataplane::WorkerBalancing>();
        w->balancing->snapshot = &snapshot;
        w->balancing->flows = std::make_unique<lb::FlowTable>(uint32_t(flow_capacity),
                                                              lb::HashKey::random(), timeouts);
        w->balancing->balancer =
            std::make_unique<lb::L4Balancer>(*w->balancing->flows, lb::SnatPortRange{1024, 65535});
        dataplane::prepare_worker(*w);
        return w;
    }

    // One pass: `pass_packets` frames from `set` on the client RX ring, then
    // `poll` until the ring is empty; returns the TSC cycles it took.
    template <typename Poll>
    uint64_t pass(FrameSet &set, Poll &&poll) {
        for (rte_mbuf *m : mbufs_) {
            const Bytes &frame = set.take();
            rte_pktmbuf_reset(m);
            std::memcpy(rte_pktmbuf_append(m, uint16_t(frame.size())), frame.data(), frame.size());
        }
        if (rte_ring_sp_enqueue_bulk(client_.rx, reinterpret_cast<void **>(mbufs_.data()),
                                     pass_packets, nullptr) != pass_packets)
            throw std::runtime_error("bench: RX ring full");
        const uint64_t start = __rdtsc();
        while (rte_ring_count(client_.rx) != 0)
            poll();
        const uint64_t cycles = __rdtsc() - start;
        // Every frame comes back, from a TX ring or from the pool (dropped).
        unsigned back = 0;
        for (rte_ring *tx : {client_.tx, backend_.tx})
            back += rte_ring_sc_dequeue_burst(tx, reinterpret_cast<void **>(mbufs_.data() + back),
                                              pass_packets - back, nullptr);
        if (back != pass_packets) {
            dropped_ += pass_packets - back;
            if (rte_pktmbuf_alloc_bulk(pool_, mbufs_.data() + back, pass_packets - back) != 0)
                throw std::runtime_error("bench: mempool too small");
        }
        return cycles;
    }

    uint64_t dropped() const { return dropped_; }
    uint16_t client_port() const { return client_.port_id; }
    uint16_t backend_port() const { return backend_.port_id; }

private:
    rte_mempool *pool_;
    BenchPort client_, backend_;
    LocalAddresses no_local_;
    std::vector<rte_mbuf *> mbufs_;
    uint64_t dropped_ = 0;
};

Result result_of(double hz, uint64_t cycles, size_t packets) {
    const double per_packet = double(cycles) / double(packets);
    return {hz / per_packet / 1e6, per_packet};
}

int run(unsigned passes) {
    const double hz = tsc_hz();
    std::mt19937_64 random(42);
    std::string error;
    rte_mempool *pool = dataplane::create_mempool(0, 2 * pass_packets + 4096,
                                                  dataplane::mbuf_data_room(1500), error);
    if (!pool) {
        std::fprintf(stderr, "bench: %s\n", error.c_str());
        return 1;
    }
    Bench bench(pool);
    const unsigned pass_count = std::max(passes, 1u) * unsigned(working_set / pass_packets);
    // Baseline: receive, parse, swap MACs, send on the other port.
    if (wanted("baseline")) {
        FrameSet set;
        for (size_t i = 0; i < working_set; ++i)
            set.frames.push_back(tcp_to(ip("198.18.20.1"), i, 0x10));
        const uint16_t in = bench.client_port(), out = bench.backend_port();
        volatile uint64_t sink = 0;
        auto macswap = [&] {
            rte_mbuf *burst[32];
            const uint16_t n = rte_eth_rx_burst(in, 0, burst, 32);
            for (uint16_t i = 0; i < n; ++i) {
                uint8_t *frame = rte_pktmbuf_mtod(burst[i], uint8_t *);
                ParsedPacket parsed;
                if (parse_packet(frame, rte_pktmbuf_data_len(burst[i]), parsed) != DropReason::none)
                    continue;
                uint8_t mac_bytes[6];
                std::memcpy(mac_bytes, frame, 6);
                std::memcpy(frame, frame + 6, 6);
                std::memcpy(frame + 6, mac_bytes, 6);
                sink = sink + parsed.l4_offset;
            }
            const uint16_t sent = rte_eth_tx_burst(out, 0, burst, n);
            if (sent < n)
                rte_pktmbuf_free_bulk(burst + sent, n - sent);
        };
        uint64_t cycles = 0;
        for (unsigned p = 0; p < pass_count; ++p)
            cycles += bench.pass(set, macswap);
        if (bench.dropped() != 0)
            return failed("baseline", "frames did not come back from the TX ring");
        print("baseline", result_of(hz, cycles, size_t(pass_count) * pass_packets));
    }

    auto snapshot_for = [](unsigned workers) {
        auto published = std::make_unique<dataplane::PublishedSnapshot>(workers);
        published->publish(bench_snapshot());
        published->online(0);
        return published;
    };
    const lb::FlowTimeouts long_timeouts{60'000'000, 60'000'000, 60'000'000, 60'000'000};

    // Established fullnat: 1,000,000 flows in the table, packets of random ones.
    if (wanted("fullnat_established")) {
        auto published = snapshot_for(1);
        auto worker =
            bench.worker(*published, established_flows + established_flows / 4, long_timeouts);
        const lb::FlowTable &flows = *worker->balancing->flows;
        auto poll = [&] { dataplane::poll_worker(*worker); dataplane::flush_worker(*worker); };
        FrameSet syns;
        for (size_t i = 0; i < established_flows; ++i)
            syns.frames.push_back(tcp_to(vip_fullnat, i, 0x02));
        for (size_t done = 0; done < established_flows; done += pass_packets)
            bench.pass(syns, poll);
        syns.frames.clear();
        syns.frames.shrink_to_fit();
        if (flows.size() != established_flows) {
            std::fprintf(stderr, "bench: only %u of %zu flows inserted\n", flows.size(),
                         established_flows);
            return 1;
        }
        FrameSet set;
        for (size_t i = 0; i < working_set; ++i)
            set.frames.push_back(tcp_to(vip_fullnat, random() % established_flows, 0x10));
        const uint64_t before = worker->balancing->counters.to_backend_packets.read();
        uint64_t cycles = 0;
        for (unsigned p = 0; p < pass_count; ++p)
            cycles += bench.pass(set, poll);
        if (worker->balancing->counters.to_backend_packets.read() - before !=
            uint64_t(pass_count) * pass_packets)
            return failed("fullnat_established", "not every packet was forwarded");
        print("fullnat_established", result_of(hz, cycles, size_t(pass_count) * pass_packets));
    }

    // New fullnat flows: SYNs of distinct tuples into a fresh table per batch.
    if (wanted("fullnat_new")) {
        auto published = snapshot_for(1);
        FrameSet set;
        for (size_t i = 0; i < new_flow_batch; ++i)
            set.frames.push_back(tcp_to(vip_fullnat, i, 0x02));
        uint64_t cycles = 0;
        size_t packets = 0;
        for (unsigned p = 0; p < std::max(passes, 1u); ++p) {
            auto worker = bench.worker(*published, new_flow_batch * 2);
            auto poll = [&] { dataplane::poll_worker(*worker); dataplane::flush_worker(*worker); };
            for (size_t done = 0; done < new_flow_batch; done += pass_packets)
                cycles += bench.pass(set, poll);
            packets += new_flow_batch;
            if (worker->balancing->counters.new_flows.read() != new_flow_batch ||
                worker->balancing->counters.to_backend_packets.read() != new_flow_batch)
                return failed("fullnat_new", "not every SYN made a flow and was forwarded");
        }
        print("fullnat_new", result_of(hz, cycles, packets));
    }

    // DSR with IP-in-IP: established flows, each packet encapsulated.
    if (wanted("dsr_ipip")) {
        auto published = snapshot_for(1);
        auto worker = bench.worker(*published, working_set * 2, long_timeouts);
        auto poll = [&] { dataplane::poll_worker(*worker); dataplane::flush_worker(*worker); };
        FrameSet set;
        for (size_t i = 0; i < working_set; ++i)
            set.frames.push_back(tcp_to(vip_dsr, i, 0x02));
        for (size_t done = 0; done < working_set; done += pass_packets)
            bench.pass(set, poll);  // creates the flows
        if (worker->balancing->flows->size() != working_set)
            return failed("dsr_ipip", "not every flow was created");
        const uint64_t before = worker->balancing->counters.to_backend_packets.read();
        uint64_t cycles = 0;
        for (unsigned p = 0; p < pass_count; ++p)
            cycles += bench.pass(set, poll);
        if (worker->balancing->counters.to_backend_packets.read() - before !=
            uint64_t(pass_count) * pass_packets)
            return failed("dsr_ipip", "not every packet was forwarded");
        print("dsr_ipip", result_of(hz, cycles, size_t(pass_count) * pass_packets));
    }
    if (bench.dropped() != 0) {
        std::fprintf(stderr, "bench: %lu packets dropped\n", (unsigned long)bench.dropped());
        return 1;
    }
    return 0;
}

} // namespace
} // namespace sluice::bench

int main(int argc, char **argv) {
    const unsigned passes = argc > 1 ? unsigned(std::stoul(argv[1])) : 20;
    if (argc > 2)
        sluice::bench::established_flows = std::stoul(argv[2]);
    if (argc > 3)
        sluice::bench::only_case = argv[3];
    if (!sluice::bench::start_bench_eal("sluice-bench")) {
        std::fprintf(stderr, "bench: the EAL did not start\n");
        return 1;
    }
    const int status = sluice::bench::run(passes);
    rte_eal_cleanup();
    return status;
}
