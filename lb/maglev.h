// Maglev consistent hashing (Eisenbud et al., NSDI'16, section 3.4), with
// weights. A table of M slots (M prime) maps a flow hash to a backend; every
// instance that builds it from the same backends and seed gets the same table,
// and a change of backends moves few slots. Built in the control plane, read
// by workers; no EAL.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sluice::lb {

constexpr uint32_t maglev_default_size = 65537;

// What Maglev knows of a backend: a stable identity (for the lab and
// production: the backend's address and port, as bytes) and a weight.
// Weight 0 means the backend takes no slots (drained or down).
struct MaglevBackend {
    std::string identity;
    uint32_t weight = 1;
};

class MaglevTable {
public:
    static constexpr uint32_t no_backend = UINT32_MAX;

    // `size` must be prime (is_prime) and at least 1. The table is filled from
    // the backends' permutations; the slot values are indexes into `backends`.
    // With no backend of non-zero weight, every slot is no_backend.
    MaglevTable(std::span<const MaglevBackend> backends, uint32_t size, uint64_t seed);
    // A table with no backend: every lookup answers no_backend.
    MaglevTable() : slots_(1, no_backend) {}

    // The backend index for a flow hash (any 64-bit value), or no_backend.
    uint32_t lookup(uint64_t flow_hash) const { return slots_[flow_hash % slots_.size()]; }

    uint32_t size() const { return uint32_t(slots_.size()); }
    const std::vector<uint32_t> &slots() const { return slots_; }

private:
    std::vector<uint32_t> slots_;
};

bool is_prime(uint32_t n);
// The smallest prime >= n (n >= 2).
uint32_t next_prime(uint32_t n);

} // namespace sluice::lb
