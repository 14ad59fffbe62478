#include <gtest/gtest.h>

#include <arpa/inet.h>

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

// Maglev's promise across versions: gateways of different builds with the
// same seed pick alike (a rolling upgrade moves connections between them).
// The values are maglev_hash's since sluice first balanced; a change here
// moves Maglev picks and needs saying so in the release notes.
TEST(FlowKey, MaglevHashIsPinned) {
    const HashKey seeded = HashKey::from_seed(20261126);
    FlowKey v4;
    v4.family = 4;
    v4.protocol = 6;
    v4.source = {198, 19, 0, 2};
    v4.destination = {198, 18, 10, 1};
    v4.source_port = htons(0x1234);
    v4.destination_port = htons(80);
    EXPECT_EQ(maglev_hash(v4, seeded), 0xacc365c8979adbdcull);
    FlowKey v6;
    v6.family = 6;
    v6.protocol = 17;
    v6.source = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2};
    v6.destination = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 1};
    v6.source_port = htons(0x1235);
    v6.destination_port = htons(53);
    EXPECT_EQ(maglev_hash(v6, seeded), 0xb1b48fdbc45fa99bull);
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
