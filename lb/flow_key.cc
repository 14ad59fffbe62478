#include "lb/flow_key.h"

#include <sys/random.h>

#include <stdexcept>

namespace sluice::lb {

namespace {

uint64_t splitmix64(uint64_t &state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

} // namespace

HashKey HashKey::from_seed(uint64_t seed) {
    HashKey key;
    for (uint64_t &word : key.words)
        word = splitmix64(seed) | 1;  // odd: a zero word would let the multiply collapse
    return key;
}

HashKey HashKey::random() {
    HashKey key;
    uint8_t *bytes = reinterpret_cast<uint8_t *>(key.words.data());
    size_t filled = 0;
    while (filled < sizeof key.words) {
        const ssize_t n = getrandom(bytes + filled, sizeof key.words - filled, 0);
        if (n < 0)
            throw std::runtime_error("getrandom failed");
        filled += size_t(n);
    }
    for (uint64_t &word : key.words)
        word |= 1;
    return key;
}

} // namespace sluice::lb
