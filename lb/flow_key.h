// The 5-tuple of a flow as it appears in a packet, and the keyed hash over
// it. Plain data, no EAL: used by the flow table, Maglev and tests alike.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

namespace sluice::lb {

// Addresses and ports in network byte order, exactly as in the headers. An
// IPv4 address fills the first 4 bytes and leaves the other 12 zero, so that
// keys compare and hash as plain bytes.
struct FlowKey {
    std::array<uint8_t, 16> source{};
    std::array<uint8_t, 16> destination{};
    uint16_t source_port = 0;       // network byte order; 0 for protocols without ports
    uint16_t destination_port = 0;  // network byte order
    uint8_t protocol = 0;           // IPPROTO_TCP, IPPROTO_UDP, ...
    uint8_t family = 4;             // 4 or 6
    uint16_t reserved = 0;          // always zero: part of the hashed bytes

    // Five 8-byte compares, inline. The defaulted operator compares the
    // arrays with a memcmp call (GCC 12, -O3), which the snapshot's service
    // and next-hop lookups paid on every packet.
    bool operator==(const FlowKey &other) const;

    // The same flow seen in the other direction.
    FlowKey reversed() const {
        FlowKey r = *this;
        r.source = destination;
        r.destination = source;
        r.source_port = destination_port;
        r.destination_port = source_port;
        return r;
    }
};
static_assert(sizeof(FlowKey) == 40, "FlowKey is hashed and compared as five 8-byte words");

// Word `i` (0 to 4) of a key's 40 bytes. One load each, no local array: an
// array would be copied to the stack and, with -fstack-protector-strong, buy
// its function a canary check.
inline uint64_t key_word(const FlowKey &key, unsigned i) {
    uint64_t word;
    std::memcpy(&word, reinterpret_cast<const uint8_t *>(&key) + 8 * i, sizeof word);
    return word;
}

inline bool FlowKey::operator==(const FlowKey &other) const {
    return ((key_word(*this, 0) ^ key_word(other, 0)) | (key_word(*this, 1) ^ key_word(other, 1)) |
            (key_word(*this, 2) ^ key_word(other, 2)) | (key_word(*this, 3) ^ key_word(other, 3)) |
            (key_word(*this, 4) ^ key_word(other, 4))) == 0;
}

// What rewriting an IPv4 TCP or UDP packet of a flow for its other side
// changes in its checksums (nat.h, rewrite_sums()), kept with the flow.
struct RewriteSums {
    uint16_t header = 0;  // the IPv4 header checksum's
    uint16_t l4 = 0;      // the TCP or UDP checksum's
};

// A secret (or, for Maglev, shared) key for flow_hash and maglev_hash: five
// 64-bit words, one per 8 bytes of FlowKey, and a final mixing word.
struct HashKey {
    std::array<uint64_t, 6> words{};

    // Expands a 64-bit seed into a key (splitmix64). The same seed gives the
    // same key on every machine: that is what Maglev needs across instances.
    static HashKey from_seed(uint64_t seed);
    // A key from the kernel's random source: what flow tables need, so that
    // nobody outside can predict which tuples collide.
    static HashKey random();
};

namespace hash_detail {

// A 64x64->128 multiply with its halves folded together (wyhash, UMASH).
inline uint64_t mix(uint64_t a, uint64_t b) {
    const unsigned __int128 product = (unsigned __int128)a * b;
    return uint64_t(product) ^ uint64_t(product >> 64);
}

// A folded product leaves some bits weakly mixed: splitmix64's finish, so
// that tuples differing in a port spread over the low bits (which pick a
// bucket, or a Maglev slot).
inline uint64_t avalanche(uint64_t h) {
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

} // namespace hash_detail

// The hash Maglev picks backends by, under the key of lb.maglev_seed: the
// same on every gateway with the same seed, and from one version to the
// next, so that a connection moving between gateways (an ECMP change, a
// rolling upgrade) finds its backend again. Its values are pinned by a
// test (FlowKey.MaglevHashIsPinned): changing it moves Maglev picks. It
// runs once per new flow, so it keeps the five-word form.
inline uint64_t maglev_hash(const FlowKey &key, const HashKey &seeded) {
    using hash_detail::mix;
    uint64_t h = mix(key_word(key, 0) ^ seeded.words[0], key_word(key, 1) ^ seeded.words[1]);
    h = mix(h ^ key_word(key, 2) ^ seeded.words[2], key_word(key, 3) ^ seeded.words[3]);
    return hash_detail::avalanche(mix(h ^ key_word(key, 4) ^ seeded.words[4], seeded.words[5]));
}

// The hash of the tables inside one process (flow tables, fragments,
// steering between workers): keyed multiply-mix over the key's words. Not
// a MAC, but without the key an attacker cannot choose tuples that
// collide, which is what hash flooding needs. Free to change from one
// version to the next; Maglev uses maglev_hash().
inline uint64_t flow_hash(const FlowKey &key, const HashKey &secret) {
    using hash_detail::mix;
    if (key.family == 4) {
        // Words 1 and 3 of an IPv4 key are zero: both addresses in one
        // word, one multiply with the ports' word.
        uint32_t source, destination;
        std::memcpy(&source, key.source.data(), 4);
        std::memcpy(&destination, key.destination.data(), 4);
        const uint64_t addresses = uint64_t(source) | uint64_t(destination) << 32;
        return hash_detail::avalanche(
            mix(addresses ^ secret.words[0], key_word(key, 4) ^ secret.words[4]));
    }
    return maglev_hash(key, secret);  // IPv6: all five words
}

} // namespace sluice::lb
