#include "lb/maglev.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace sluice::lb {

namespace {

// The splitmix64 finalizer: every input bit reaches every output bit.
uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// FNV-1a over the identity bytes, started from a seed-dependent basis and
// finished with mix64. Spelled out rather than std::hash, whose value is not
// specified: every Maglev instance, on any machine and in any run, must derive
// the same permutation from the same identity and seed.
uint64_t identity_hash(const std::string &identity, uint64_t seed, uint64_t salt) {
    uint64_t h = 0xcbf29ce484222325ull ^ mix64(seed ^ salt);
    for (const char c : identity) {
        h ^= uint8_t(c);
        h *= 0x100000001b3ull;
    }
    return mix64(h);
}

// Two unrelated salts, so offset and skip come from independent hashes (the
// paper's h1 and h2).
constexpr uint64_t offset_salt = 0x6d61676c65762d31ull;  // "maglev-1"
constexpr uint64_t skip_salt = 0x6d61676c65762d32ull;    // "maglev-2"

// One backend during the build. Its permutation (section 3.4) is
// (offset + j * skip) mod M; it is walked on the fly through `next` instead of
// being materialised, so the build needs O(N) memory besides the table.
struct Candidate {
    uint32_t index;   // into the caller's span
    uint64_t weight;
    uint64_t offset;  // in [0, M)
    uint64_t skip;    // in [1, M-1]: coprime with prime M, so the walk visits every slot
    uint64_t next = 0;
    // (n+1) * weight - placed * max_weight after round n: the turns the
    // backend is owed. Fits in int64: it stays within (-max_weight, weight].
    int64_t owed = 0;
};

} // namespace

MaglevTable::MaglevTable(std::span<const MaglevBackend> backends, uint32_t size, uint64_t seed) {
    if (!is_prime(size))
        throw std::invalid_argument("Maglev table size " + std::to_string(size) +
                                    " is not prime; use next_prime()");
    slots_.assign(size, no_backend);

    const uint64_t m = size;
    std::vector<Candidate> candidates;
    uint64_t max_weight = 0;
    for (uint32_t i = 0; i < backends.size(); ++i) {
        const MaglevBackend &b = backends[i];
        if (b.weight == 0)
            continue;  // drained or down: no turns, no slots
        candidates.push_back({.index = i,
                              .weight = b.weight,
                              .offset = identity_hash(b.identity, seed, offset_salt) % m,
                              .skip = identity_hash(b.identity, seed, skip_salt) % (m - 1) + 1});
        max_weight = std::max<uint64_t>(max_weight, b.weight);
    }
    if (candidates.empty())
        return;

    // The paper fills in the order backends are given, and two backends that
    // want the same empty slot in one round are decided by that order. Taking
    // turns in identity order instead makes the identity in each slot
    // independent of how the control plane happened to list the backends.
    std::sort(candidates.begin(), candidates.end(), [&](const Candidate &a, const Candidate &b) {
        const MaglevBackend &x = backends[a.index];
        const MaglevBackend &y = backends[b.index];
        if (x.identity != y.identity)
            return x.identity < y.identity;
        if (x.weight != y.weight)
            return x.weight < y.weight;
        return a.index < b.index;
    });

    // Pseudocode 1, with weights as in Envoy's weighted Maglev: in round n a
    // backend takes a turn while placed < (n+1) * weight / max_weight. The
    // heaviest backends take a turn every round, one of half their weight
    // every other round, so shares follow weights. The bound is rounded up, so
    // every backend takes a turn in round 0: with M >= the number of backends
    // of non-zero weight, each gets at least one slot however light it is.
    uint64_t filled = 0;
    while (true) {
        for (Candidate &c : candidates) {
            c.owed += int64_t(c.weight);
            if (c.owed <= 0)
                continue;
            c.owed -= int64_t(max_weight);
            uint64_t slot = (c.offset + c.next * c.skip) % m;  // < 2^32 * 2^32: no overflow
            while (slots_[slot] != no_backend) {
                ++c.next;
                slot = (c.offset + c.next * c.skip) % m;
            }
            slots_[slot] = c.index;
            ++c.next;
            if (++filled == m)
                return;
        }
    }
}

// Trial division by 2, 3 and the numbers 6k +- 1 up to the square root: at most
// ~22,000 divisions for a 32-bit value, and this runs only when a table is sized.
bool is_prime(uint32_t n) {
    if (n < 4)
        return n >= 2;
    if (n % 2 == 0 || n % 3 == 0)
        return false;
    for (uint64_t k = 5; k * k <= n; k += 6) {
        if (n % k == 0 || n % (k + 2) == 0)
            return false;
    }
    return true;
}

uint32_t next_prime(uint32_t n) {
    constexpr uint32_t largest_32bit_prime = 4294967291u;
    if (n <= 2)
        return 2;
    if (n > largest_32bit_prime)
        throw std::out_of_range("no 32-bit prime is >= " + std::to_string(n));
    uint32_t candidate = n | 1;  // every prime above 2 is odd
    while (!is_prime(candidate))
        candidate += 2;
    return candidate;
}

} // namespace sluice::lb
