// A per-worker counter: written by its worker only, read by the control plane
// at any time. Relaxed load and store compile to plain moves; there is no
// atomic read-modify-write on the fast path (one writer needs none).
#pragma once

#include <atomic>
#include <cstdint>

namespace sluice {

class Counter {
public:
    void add(uint64_t n) { value_.store(value_.load(std::memory_order_relaxed) + n,
                                        std::memory_order_relaxed); }
    void increment() { add(1); }
    // For gauges, and for counters kept elsewhere that the worker publishes.
    void set(uint64_t value) { value_.store(value, std::memory_order_relaxed); }
    uint64_t read() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> value_{0};
};

} // namespace sluice
