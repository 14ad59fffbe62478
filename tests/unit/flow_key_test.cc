#include <gtest/gtest.h>

#include <set>

#include "lb/flow_key.h"

namespace sluice::lb {
namespace {

FlowKey tuple(uint8_t last_octet, uint16_t source_port) {
    FlowKey k;
    k.source = {198, 18, 0, last_octet};
    k.destination = {198, 18, 10, 1};
    k.source_port = source_port;
    k.destination_port = 80;
    k.protocol = 6;
    return k;
}

TEST(FlowKey, SeededKeysAreTheSameEverywhere) {
    // Maglev's promise across instances rests on this: same seed, same hash.
    const HashKey a = HashKey::from_seed(42), b = HashKey::from_seed(42);
    EXPECT_EQ(a.words, b.words);
    EXPECT_EQ(flow_hash(tuple(2, 1000), a), flow_hash(tuple(2, 1000), b));
    EXPECT_NE(HashKey::from_seed(43).words, a.words);
}

TEST(FlowKey, RandomKeysDiffer) {
    EXPECT_NE(HashKey::random().words, HashKey::random().words);
}

TEST(FlowKey, HashSpreadsNeighbouringTuples) {
    const HashKey key = HashKey::random();
    std::set<uint64_t> hashes, low_bits;
    for (uint16_t port = 1; port <= 4096; ++port) {
        const uint64_t h = flow_hash(tuple(2, port), key);
        hashes.insert(h);
        low_bits.insert(h & 0xfff);
    }
    EXPECT_EQ(hashes.size(), 4096u);
    // 4096 balls in 4096 bins: about 63% distinct if the low bits are uniform.
    EXPECT_GT(low_bits.size(), 2400u);
}

TEST(FlowKey, Reversed) {
    const FlowKey k = tuple(2, 1000);
    const FlowKey r = k.reversed();
    EXPECT_EQ(r.source, k.destination);
    EXPECT_EQ(r.destination_port, k.source_port);
    EXPECT_EQ(r.reversed(), k);
    EXPECT_NE(r, k);
}

} // namespace
} // namespace sluice::lb
