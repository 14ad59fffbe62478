// The memory floor under the L4 benchmark: what reading random lines of
// arrays the size of a flow table costs on this machine, with nothing else
// to do. The lines are read as the worker reads its table: a burst's keys
// hashed, their lines prefetched in a loop of their own, then read. Two
// cases, each for the worker's burst (32) and for a deep one (256, VPP's
// frame), so that the figure is not an artefact of too few misses in
// flight:
//   case=one_line burst=<n> cycles_per_packet=<float>    a flow line only
//   case=two_lines burst=<n> cycles_per_packet=<float>   a bucket line, then
//                                                        the flow line it names
// The arrays take the sizes of the FlowTable that bench_l4's
// fullnat_established case builds (1,000,000 flows, capacity 1,250,000),
// in reserved hugepages when free. No EAL; docs/performance.md reads the
// figures against bench_l4's baseline.
#include <sys/mman.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lb/flow_table.h"

namespace sluice::bench {
namespace {

constexpr size_t line = 64;
constexpr uint64_t packets_per_run = uint64_t(1) << 21;

// A stand-in for the flow hash: as cheap, as random.
uint64_t mixed(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

struct Lines {
    uint8_t *memory = nullptr;
    size_t count = 0;
    bool hugetlb = false;

    explicit Lines(size_t bytes) : count(bytes / line) {
        void *m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
        hugetlb = m != MAP_FAILED;
        if (!hugetlb) {
            m = std::aligned_alloc(2u << 20, bytes);
            if (!m)
                throw std::bad_alloc();
            madvise(m, bytes, MADV_HUGEPAGE);
        }
        memory = static_cast<uint8_t *>(m);
        std::memset(memory, 0, bytes);  // every page present before timing
    }
    ~Lines() {
        if (hugetlb)
            munmap(memory, count * line);
        else
            std::free(memory);
    }
    Lines(const Lines &) = delete;
    Lines &operator=(const Lines &) = delete;

    const uint8_t *at(uint64_t index) const { return memory + index * line; }
    uint8_t *at(uint64_t index) { return memory + index * line; }
};

// One run of `packets_per_run` lookups in bursts of `burst`; TSC cycles
// per lookup. With `buckets`, a lookup reads a bucket line first and the
// flow line whose index it holds.
double run(const Lines &flows, const Lines *buckets, unsigned burst, uint64_t seed) {
    std::vector<uint64_t> index(burst);
    uint64_t sink = 0;
    const uint64_t start = __rdtsc();
    for (uint64_t done = 0; done < packets_per_run; done += burst) {
        const Lines &first = buckets ? *buckets : flows;
        for (unsigned i = 0; i < burst; ++i)  // a multiply, not a division, into [0, count)
            index[i] = uint64_t((unsigned __int128)mixed(seed++) * first.count >> 64);
        for (unsigned i = 0; i < burst; ++i)
            __builtin_prefetch(first.at(index[i]));
        if (buckets) {
            for (unsigned i = 0; i < burst; ++i) {
                uint32_t flow;
                std::memcpy(&flow, buckets->at(index[i]), sizeof(flow));
                index[i] = flow;
                __builtin_prefetch(flows.at(flow));
            }
        }
        for (unsigned i = 0; i < burst; ++i) {
            uint64_t word;
            std::memcpy(&word, flows.at(index[i]), sizeof(word));
            sink += word;
        }
    }
    const uint64_t cycles = __rdtsc() - start;
    asm volatile("" : : "r"(sink));
    return double(cycles) / double(packets_per_run);
}

double median_of_runs(const Lines &flows, const Lines *buckets, unsigned burst) {
    std::vector<double> runs;
    for (uint64_t r = 0; r < 7; ++r)
        runs.push_back(run(flows, buckets, burst, r * 0x9e3779b97f4a7c15ull + burst));
    std::sort(runs.begin(), runs.end());
    return runs[runs.size() / 2];
}

int main_bench() {
    const uint32_t capacity = 1'250'000;
    lb::FlowTable table(capacity, lb::HashKey::random());
    Lines flows(size_t(capacity) * sizeof(lb::FlowEntry));
    Lines buckets(table.bucket_bytes());
    // Each bucket names a random flow, as a full table's slots do.
    for (uint64_t b = 0; b < buckets.count; ++b) {
        const uint32_t flow = uint32_t(mixed(b ^ 0x5bd1e995) % flows.count);
        std::memcpy(buckets.at(b), &flow, sizeof(flow));
    }
    std::printf("# flows %zu MiB, buckets %zu MiB, %s\n", flows.count * line >> 20,
                buckets.count * line >> 20,
                flows.hugetlb && buckets.hugetlb ? "reserved hugepages" : "4 KiB or transparent hugepages");
    for (unsigned burst : {32u, 256u}) {
        std::printf("case=one_line burst=%u cycles_per_packet=%.1f\n", burst,
                    median_of_runs(flows, nullptr, burst));
        std::printf("case=two_lines burst=%u cycles_per_packet=%.1f\n", burst,
                    median_of_runs(flows, &buckets, burst));
    }
    return 0;
}

} // namespace
} // namespace sluice::bench

int main() { return sluice::bench::main_bench(); }
