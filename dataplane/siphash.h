// SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed pseudorandom function
// over short inputs. The userspace TCP draws its initial sequence numbers
// (RFC 6528) and its SYN cookies from it, which must not be predictable
// without the worker's secret.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice {

struct SipKey {
    uint64_t k0 = 0, k1 = 0;
};

inline uint64_t siphash24(const SipKey &key, const uint8_t *data, size_t length) {
    uint64_t v0 = 0x736f6d6570736575ull ^ key.k0, v1 = 0x646f72616e646f6dull ^ key.k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ key.k0, v3 = 0x7465646279746573ull ^ key.k1;
    const auto rotl = [](uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
    const auto round = [&] {
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
    };
    const size_t whole = length & ~size_t(7);
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m;
        std::memcpy(&m, data + i, 8);  // little-endian hosts, as DPDK's x86 and arm64
        v3 ^= m;
        round();
        round();
        v0 ^= m;
    }
    uint64_t last = uint64_t(length) << 56;
    for (size_t i = 0; i < (length & 7); ++i)
        last |= uint64_t(data[whole + i]) << (8 * i);
    v3 ^= last;
    round();
    round();
    v0 ^= last;
    v2 ^= 0xff;
    round();
    round();
    round();
    round();
    return v0 ^ v1 ^ v2 ^ v3;
}

} // namespace sluice
