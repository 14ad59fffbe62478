// The L4 pipeline benchmark: the per-packet code a worker runs
// (parse_packet, answer_local, L4Balancer::balance), on synthetic frames in
// memory, one core, next to a baseline that runs the same burst without the
// balancer: parse, answer_local, swap MACs.
// Each case prints one line:
//   case=<name> mpps=<float> cycles_per_packet=<float>
// Frames are restored from a pristine copy before every pass, in every case
// (the baseline included), since the rewrites change them.
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/local_reply.h"
#include "dataplane/packet_parse.h"
#include "lb/l4_balancer.h"
#include "tests/fixtures/packet_builder.h"

namespace sluice::bench {
namespace {

using namespace sluice::testing;
using lb::BalanceVerdict;

constexpr uint32_t headroom = 128;
constexpr size_t frame_room = 256;  // headroom + the largest frame + slack
size_t established_flows = 1'000'000;  // argv[2] may lower it (profiling)
std::string only_case;  // argv[3]: run just this case (profiling)

bool wanted(const char *name) { return only_case.empty() || only_case == name; }
constexpr size_t working_set = 65'536;  // distinct frames cycled through per case
constexpr size_t new_flow_batch = 262'144;
constexpr size_t burst_size = 32;

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
                      with_transport_checksum(source, vip, 6, tcp(port, 80, flags)));
}

lb::Service make_service(const char *name, const IpAddress &vip, lb::ForwardingMode mode,
                         size_t local_addresses) {
    lb::Service s;
    s.name = name;
    s.vip = vip;
    s.protocol = 6;
    s.port_be = 0x5000;
    s.mode = mode;
    std::vector<lb::MaglevBackend> identities;
    for (const char *address : {"198.18.1.11", "198.18.1.12", "198.18.1.13"}) {
        s.backends.push_back({ip(address), 0, 1});
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
    services.push_back(make_service("fullnat", vip_fullnat, lb::ForwardingMode::fullnat, 64));
    services.push_back(make_service("dsr", vip_dsr, lb::ForwardingMode::dsr, 0));
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

// Frames laid out one per `frame_room` bytes, with a pristine copy.
struct FrameSet {
    std::vector<uint8_t> pristine, working;
    std::vector<uint32_t> lengths;

    void add(const Bytes &frame) {
        const size_t at = pristine.size();
        pristine.resize(at + frame_room);
        std::memcpy(pristine.data() + at + headroom, frame.data(), frame.size());
        lengths.push_back(uint32_t(frame.size()));
    }
    size_t size() const { return lengths.size(); }
    void restore() { working = pristine; }
};

struct Result {
    double mpps, cycles_per_packet;
};

// Runs `per_burst` over every frame of the set, in bursts as rx_burst
// delivers them, `passes` times; only that work is timed, not the restoring
// copies between passes.
template <typename PerBurst>
Result measure(FrameSet &set, unsigned passes, double hz, PerBurst &&per_burst) {
    uint64_t cycles = 0;
    size_t packets = 0;
    uint8_t *frames[burst_size];
    for (unsigned pass = 0; pass < passes; ++pass) {
        set.restore();
        const uint64_t start = __rdtsc();
        for (size_t first = 0; first < set.size(); first += burst_size) {
            const size_t count = std::min(burst_size, set.size() - first);
            for (size_t i = 0; i < count; ++i)
                frames[i] = set.working.data() + (first + i) * frame_room + headroom;
            per_burst(frames, set.lengths.data() + first, count);
        }
        cycles += __rdtsc() - start;
        packets += set.size();
    }
    const double per_packet_cycles = double(cycles) / double(packets);
    return {hz / per_packet_cycles / 1e6, per_packet_cycles};
}

void print(const char *name, const Result &r) {
    std::printf("case=%s mpps=%.2f cycles_per_packet=%.1f\n", name, r.mpps, r.cycles_per_packet);
    std::fflush(stdout);
}

int run(unsigned passes) {
    const double hz = tsc_hz();
    const auto snapshot = bench_snapshot();
    LocalAddresses local;
    local.mac = gw_mac;
    local.add(ip("198.18.0.1"));
    uint32_t now = 1000;
    volatile uint64_t sink = 0;
    std::mt19937_64 random(42);

    // The worker's path for a burst (dataplane/worker.cc, handle_burst):
    // parse and probe every frame, then answer or balance each. Without a
    // balancer it is the baseline: the same parse and answer_local, then the
    // MACs swapped where the balancer would rewrite and address the frame.
    auto worker_burst = [&](lb::L4Balancer *balancer, lb::BalancerCounters &counters,
                            uint8_t **frames, const uint32_t *lengths, size_t count) {
        ParsedPacket parsed[burst_size];
        lb::FlowProbe probes[burst_size];
        for (size_t i = 0; i < count; ++i) {
            if (parse_packet(frames[i], lengths[i], parsed[i]) == DropReason::none && balancer)
                balancer->probe(frames[i], parsed[i], probes[i]);
        }
        if (balancer) {
            uint32_t new_flows = 0;
            for (size_t i = 0; i < count; ++i)
                balancer->prefetch_flows(probes[i], *snapshot, new_flows);
        }
        for (size_t i = 0; i < count; ++i) {
            DropReason reason = DropReason::none;
            uint32_t reply_length = lengths[i];
            if (answer_local(frames[i], reply_length, lengths[i] + 64, parsed[i], local, reason) !=
                LocalReply::not_local)
                continue;
            if (!balancer) {
                uint8_t *frame = frames[i];
                uint8_t mac_bytes[6];
                std::memcpy(mac_bytes, frame, 6);
                std::memcpy(frame, frame + 6, 6);
                std::memcpy(frame + 6, mac_bytes, 6);
                sink = sink + parsed[i].l4_offset;
                continue;
            }
            lb::FrameBuffer buffer{frames[i], lengths[i], headroom};
            const lb::BalanceResult result =
                balancer->balance(buffer, parsed[i], probes[i], 0, *snapshot, now, counters);
            sink = sink + result.egress_port + uint64_t(result.verdict);
        }
    };
    auto worker_path = [&](lb::L4Balancer &balancer, lb::BalancerCounters &counters,
                           uint8_t *frame, uint32_t length) {
        worker_burst(&balancer, counters, &frame, &length, 1);
    };

    // Baseline: the worker's burst without balancing: parse, answer_local,
    // swap MACs, forward.
    if (wanted("baseline")) {
        FrameSet set;
        for (size_t i = 0; i < working_set; ++i)
            set.add(tcp_to(ip("198.18.20.1"), i, 0x10));
        lb::BalancerCounters counters;
        print("baseline", measure(set, passes, hz, [&](uint8_t **frames, const uint32_t *lengths,
                                                        size_t n) {
                  worker_burst(nullptr, counters, frames, lengths, n);
              }));
    }

    // Established fullnat: 1,000,000 flows in the table, packets of random ones.
    if (wanted("fullnat_established")) {
        lb::FlowTable flows(established_flows + established_flows / 4, lb::HashKey::random(),
                            {60'000, 3'600'000, 60'000, 60'000});
        lb::L4Balancer balancer(flows, {1024, 65535});
        lb::BalancerCounters counters;
        std::vector<uint8_t> buffer(frame_room);
        for (size_t i = 0; i < established_flows; ++i) {
            const Bytes syn = tcp_to(vip_fullnat, i, 0x02);
            std::memcpy(buffer.data() + headroom, syn.data(), syn.size());
            worker_path(balancer, counters, buffer.data() + headroom, uint32_t(syn.size()));
        }
        if (flows.size() != established_flows) {
            std::fprintf(stderr, "bench: only %u of %zu flows inserted\n", flows.size(),
                         established_flows);
            return 1;
        }
        FrameSet set;
        for (size_t i = 0; i < working_set; ++i)
            set.add(tcp_to(vip_fullnat, random() % established_flows, 0x10));
        print("fullnat_established",
              measure(set, passes, hz, [&](uint8_t **frames, const uint32_t *lengths, size_t n) {
                  worker_burst(&balancer, counters, frames, lengths, n);
              }));
        if (counters.to_backend_packets.read() < established_flows + working_set * passes)
            std::fprintf(stderr, "bench: fullnat_established did not forward every packet\n");
    }

    // New fullnat flows: SYNs of distinct tuples into a fresh table per pass.
    if (wanted("fullnat_new")) {
        FrameSet set;
        for (size_t i = 0; i < new_flow_batch; ++i)
            set.add(tcp_to(vip_fullnat, i, 0x02));
        uint64_t cycles = 0;
        size_t packets = 0;
        for (unsigned pass = 0; pass < passes; ++pass) {
            lb::FlowTable flows(new_flow_batch * 2, lb::HashKey::random());
            lb::L4Balancer balancer(flows, {1024, 65535});
            lb::BalancerCounters counters;
            set.restore();
            uint8_t *frames[burst_size];
            const uint64_t start = __rdtsc();
            for (size_t first = 0; first < set.size(); first += burst_size) {
                const size_t count = std::min(burst_size, set.size() - first);
                for (size_t i = 0; i < count; ++i)
                    frames[i] = set.working.data() + (first + i) * frame_room + headroom;
                worker_burst(&balancer, counters, frames, set.lengths.data() + first, count);
            }
            cycles += __rdtsc() - start;
            packets += set.size();
            if (counters.new_flows.read() != new_flow_batch)
                std::fprintf(stderr, "bench: fullnat_new made %lu flows of %zu\n",
                             (unsigned long)counters.new_flows.read(), new_flow_batch);
        }
        const double per_packet = double(cycles) / double(packets);
        print("fullnat_new", {hz / per_packet / 1e6, per_packet});
    }

    // DSR with IP-in-IP: established flows, each packet encapsulated.
    if (wanted("dsr_ipip")) {
        lb::FlowTable flows(working_set * 2, lb::HashKey::random(),
                            {60'000, 3'600'000, 60'000, 60'000});
        lb::L4Balancer balancer(flows, {1024, 65535});
        lb::BalancerCounters counters;
        FrameSet set;
        for (size_t i = 0; i < working_set; ++i)
            set.add(tcp_to(vip_dsr, i, 0x02));
        auto run_bursts = [&](uint8_t **frames, const uint32_t *lengths, size_t n) {
            worker_burst(&balancer, counters, frames, lengths, n);
        };
        measure(set, 1, hz, run_bursts);  // creates the flows
        print("dsr_ipip", measure(set, passes, hz, run_bursts));
    }
    return sink == 42 ? 2 : 0;  // keeps the work observable
}

} // namespace
} // namespace sluice::bench

int main(int argc, char **argv) {
    const unsigned passes = argc > 1 ? unsigned(std::stoul(argv[1])) : 20;
    if (argc > 2)
        sluice::bench::established_flows = std::stoul(argv[2]);
    if (argc > 3)
        sluice::bench::only_case = argv[3];
    return sluice::bench::run(passes);
}
