// The flow table's promises: a flow is found from either side until its
// state's idle timeout passes (across the wrap of `now`), never twice, and a
// full table refuses cleanly; expiry works in bounded steps; crafted tuples
// do not pile up; and a long random run agrees with a model. The last
// tests print the memory per flow, the fill reached and the lookup rate.
#include "lb/flow_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace sluice::lb {
namespace {

HashKey test_key() { return HashKey::from_seed(0x5105'e0f1'0a7b'1e00); }

// For the test's own sets and maps; the key is unrelated to the table's.
struct KeyHash {
    size_t operator()(const FlowKey &key) const {
        static const HashKey secret = HashKey::from_seed(99);
        return flow_hash(key, secret);
    }
};

FlowKey v4(uint32_t source, uint16_t source_port, uint32_t destination, uint16_t destination_port,
           uint8_t protocol = 6) {
    FlowKey k;
    k.family = 4;
    k.protocol = protocol;
    for (int i = 0; i < 4; ++i) {
        k.source[i] = uint8_t(source >> (24 - 8 * i));
        k.destination[i] = uint8_t(destination >> (24 - 8 * i));
    }
    k.source_port = source_port;
    k.destination_port = destination_port;
    return k;
}

FlowKey v6(uint8_t source_host, uint16_t source_port, uint8_t destination_host,
           uint16_t destination_port, uint8_t protocol = 6) {
    FlowKey k;
    k.family = 6;
    k.protocol = protocol;
    k.source = {0x20, 0x01, 0x0d, 0xb8, 0, 1};
    k.destination = {0x20, 0x01, 0x0d, 0xb8, 0, 2};
    k.source[15] = source_host;
    k.destination[15] = destination_host;
    k.source_port = source_port;
    k.destination_port = destination_port;
    return k;
}

Flow make_flow(const FlowKey &forward, const FlowKey &reverse, FlowState state = FlowState::established,
               uint8_t client_port = 0, uint8_t mac_tail = 0) {
    Flow f;
    f.forward = forward;
    f.reverse = reverse;
    f.state = state;
    f.client_port = client_port;
    f.client_mac.bytes[5] = mac_tail;
    return f;
}

// A client's flow to a VIP and the backend's replies to the SNAT address.
Flow nat_flow(uint16_t client_port, uint16_t snat_port, FlowState state = FlowState::established) {
    return make_flow(v4(0xc6120064, client_port, 0xc6120101, 443),   // 198.18.0.100 -> 198.18.1.1:443
                     v4(0xc6120205, 8443, 0xc6120301, snat_port),    // 198.18.2.5:8443 -> 198.18.3.1
                     state);
}

FlowId add(FlowTable &table, const Flow &flow, uint32_t now) {
    return table.insert(flow, table.hash(flow.forward), table.hash(flow.reverse), now);
}

FlowLookup find(FlowTable &table, const FlowKey &key, uint32_t now) {
    return table.lookup(key, table.hash(key), now);
}

// Random tuples, IPv4 and IPv6 mixed, TCP and UDP; with `distinct`, no key
// is ever handed out twice (a set remembers them all).
class Tuples {
public:
    explicit Tuples(uint64_t seed, bool distinct = true) : rng_(seed), distinct_(distinct) {}

    FlowKey fresh() {
        for (;;) {
            const FlowKey k = random_key();
            if (!distinct_ || seen_.insert(k).second)
                return k;
        }
    }

    // Half the flows are NATed (the reply tuple is unrelated to the request),
    // half come back as the plain reversed tuple.
    Flow fresh_flow(FlowState state = FlowState::established) {
        // One call per statement: the same draws under every compiler.
        Flow f = make_flow(fresh(), {}, state);
        f.client_port = uint8_t(rng_() % 16);
        f.client_mac.bytes[5] = uint8_t(rng_() % 64);
        const FlowKey r = f.forward.reversed();
        const bool plain = (rng_() & 1) && r != f.forward && (!distinct_ || seen_.insert(r).second);
        f.reverse = plain ? r : fresh();
        return f;
    }

    std::mt19937_64 &rng() { return rng_; }

private:
    FlowKey random_key() {
        FlowKey k;
        k.family = (rng_() & 1) ? 6 : 4;
        k.protocol = (rng_() & 1) ? 6 : 17;
        const size_t bytes = k.family == 6 ? 16 : 4;
        for (size_t i = 0; i < bytes; ++i) {
            k.source[i] = uint8_t(rng_());
            k.destination[i] = uint8_t(rng_());
        }
        k.source_port = uint16_t(rng_());
        k.destination_port = uint16_t(rng_());
        return k;
    }

    std::mt19937_64 rng_;
    bool distinct_;
    std::unordered_set<FlowKey, KeyHash> seen_;
};

uint32_t timeout_of(const FlowTimeouts &t, FlowState state) {
    switch (state) {
    case FlowState::syn_seen: return t.syn_seen;
    case FlowState::established: return t.established;
    case FlowState::closing: return t.closing;
    case FlowState::udp: return t.udp;
    case FlowState::reset_sent: return t.closing;
    }
    return 0;
}

constexpr FlowState all_states[] = {FlowState::syn_seen, FlowState::established,
                                    FlowState::closing, FlowState::udp,
                                    FlowState::reset_sent};

// 1. Found from either side.
TEST(FlowTable, InsertedFlowIsFoundFromBothSides) {
    FlowTable table(1000, test_key());
    const Flow a = nat_flow(40000, 1024, FlowState::established);
    const Flow b = make_flow(v6(1, 50000, 2, 80), v6(2, 80, 1, 50000), FlowState::syn_seen, 3, 7);

    const FlowId ia = add(table, a, 100);
    const FlowId ib = add(table, b, 100);
    ASSERT_NE(ia, no_flow);
    ASSERT_NE(ib, no_flow);
    EXPECT_NE(ia, ib);
    EXPECT_EQ(table.size(), 2u);

    for (const auto &[flow, id] : {std::pair{a, ia}, std::pair{b, ib}}) {
        const FlowLookup forward = find(table, flow.forward, 101);
        EXPECT_EQ(forward.id, id);
        EXPECT_FALSE(forward.reverse);
        const FlowLookup reverse = find(table, flow.reverse, 101);
        EXPECT_EQ(reverse.id, id);
        EXPECT_TRUE(reverse.reverse);
    }
    const FlowEntry &stored = table.flow(ib);
    EXPECT_EQ(stored.forward(), b.forward);
    EXPECT_EQ(stored.reverse(), b.reverse);
    EXPECT_EQ(stored.client_port, 3u);
    EXPECT_EQ(stored.client_mac.bytes[5], 7u);
    EXPECT_EQ(stored.state, FlowState::syn_seen);
    EXPECT_EQ(stored.last_seen, 100u);  // insert's `now`

    // The NATed flow's forward tuple reversed is not its reply tuple.
    EXPECT_EQ(find(table, a.forward.reversed(), 101).id, no_flow);
    EXPECT_EQ(find(table, nat_flow(40001, 1024).forward, 101).id, no_flow);
    EXPECT_EQ(find(table, v6(1, 50000, 3, 80), 101).id, no_flow);
    FlowKey other_protocol = a.forward;
    other_protocol.protocol = 17;
    EXPECT_EQ(find(table, other_protocol, 101).id, no_flow);
    EXPECT_EQ(table.size(), 2u);
}

// 1b. The compact entry keeps every tuple whole: IPv4 inline, IPv6 in its
// own line, one flow of each family on either side, and an id that goes
// from an IPv6 flow to an IPv4 one keeps nothing of the first.
TEST(FlowTable, EntryKeepsTuplesOfEitherFamily) {
    FlowTable table(4, test_key());
    // An IPv4 client to an IPv6 backend (dsr with GUE, or nat), and back.
    const Flow mixed = make_flow(v4(0xc6120064, 40000, 0xc6120101, 80),
                                 v6(9, 80, 1, 40000, 6), FlowState::syn_seen, 2, 5);
    const Flow mixed_back = make_flow(v6(3, 50000, 4, 443), v4(0xc6120205, 443, 0xc6120301, 1024));
    const FlowId im = add(table, mixed, 7);
    const FlowId ib = add(table, mixed_back, 7);
    ASSERT_NE(im, no_flow);
    ASSERT_NE(ib, no_flow);
    for (const auto &[flow, id] : {std::pair{mixed, im}, std::pair{mixed_back, ib}}) {
        EXPECT_EQ(table.flow(id).forward(), flow.forward);
        EXPECT_EQ(table.flow(id).reverse(), flow.reverse);
        EXPECT_EQ(find(table, flow.forward, 8).id, id);
        EXPECT_EQ(find(table, flow.reverse, 8).id, id);
    }
    EXPECT_EQ(table.flow(im).protocol(), 6u);

    // Keys that differ only where the other family would not look.
    FlowKey high_bytes = mixed.reverse;
    high_bytes.source[8] ^= 1;
    EXPECT_EQ(find(table, high_bytes, 8).id, no_flow);
    FlowKey v6_with_v4_prefix = v6(0, 40000, 0, 80);
    std::memcpy(v6_with_v4_prefix.source.data(), mixed.forward.source.data(), 4);
    std::memcpy(v6_with_v4_prefix.destination.data(), mixed.forward.destination.data(), 4);
    v6_with_v4_prefix.source[15] = v6_with_v4_prefix.destination[15] = 0;
    for (size_t i = 4; i < 16; ++i)
        v6_with_v4_prefix.source[i] = v6_with_v4_prefix.destination[i] = 0;
    EXPECT_EQ(find(table, v6_with_v4_prefix, 8).id, no_flow) << "family is part of the key";

    // The IPv6 flow's id taken by an IPv4 flow.
    table.remove(ib);
    const Flow plain = nat_flow(40001, 1025, FlowState::udp);
    const FlowId ip = add(table, plain, 9);
    ASSERT_EQ(ip, ib) << "ids are reused last out, first in";
    EXPECT_EQ(table.flow(ip).addresses6, nullptr);
    EXPECT_EQ(table.flow(ip).forward(), plain.forward);
    EXPECT_EQ(table.flow(ip).reverse(), plain.reverse);
    EXPECT_EQ(find(table, mixed_back.forward, 9).id, no_flow);
    EXPECT_EQ(find(table, plain.reverse, 9).id, ip);
    EXPECT_EQ(table.flow(ip).state, FlowState::udp);
    EXPECT_EQ(table.flow(ip).last_seen, 9u);
    EXPECT_TRUE(table.flow(ip).reverse_indexed);
}

// 2. A key is held by one flow only; remove frees both keys.
TEST(FlowTable, DuplicateRefusedRemoveThenReinsert) {
    FlowTable table(1000, test_key());
    const Flow f = nat_flow(40000, 1024);
    const FlowId id = add(table, f, 10);
    ASSERT_NE(id, no_flow);

    EXPECT_EQ(add(table, f, 11), no_flow);
    EXPECT_EQ(add(table, make_flow(f.forward, nat_flow(1, 2).reverse), 11), no_flow);
    EXPECT_EQ(add(table, make_flow(nat_flow(1, 2).forward, f.reverse), 11), no_flow);
    EXPECT_EQ(add(table, make_flow(f.reverse, nat_flow(1, 2).reverse), 11), no_flow);
    EXPECT_EQ(add(table, make_flow(f.forward, f.forward), 11), no_flow) << "both keys equal";
    const Flow self = nat_flow(9, 9);
    EXPECT_EQ(add(table, make_flow(self.forward, self.forward), 11), no_flow);
    EXPECT_EQ(find(table, self.forward, 11).id, no_flow) << "nothing left of a refused insert";
    EXPECT_EQ(table.size(), 1u);

    table.remove(id);
    EXPECT_EQ(table.size(), 0u);
    EXPECT_EQ(find(table, f.forward, 12).id, no_flow);
    EXPECT_EQ(find(table, f.reverse, 12).id, no_flow);
    table.remove(id);  // a stale id: nothing happens
    table.touch(id, FlowState::established, 12);
    EXPECT_EQ(table.size(), 0u);

    const FlowId again = add(table, f, 13);
    ASSERT_NE(again, no_flow);
    EXPECT_EQ(find(table, f.forward, 13).id, again);
    EXPECT_EQ(find(table, f.reverse, 13).id, again);
    EXPECT_EQ(table.size(), 1u);
}

// 3. Idle timeouts by state, touch(), and the wrap of `now`.
const FlowTimeouts short_timeouts{.syn_seen = 50, .established = 1000, .closing = 200, .udp = 400};

TEST(FlowTable, ExpiresByStateTimeout) {
    for (FlowState state : all_states) {
        SCOPED_TRACE(int(state));
        const uint32_t timeout = timeout_of(short_timeouts, state);
        FlowTable table(100, test_key(), short_timeouts);
        const Flow f = nat_flow(40000, 1024, state);
        const FlowId id = add(table, f, 1000);
        ASSERT_NE(id, no_flow);
        EXPECT_EQ(find(table, f.forward, 1000 + timeout).id, id) << "idle exactly the timeout";
        EXPECT_EQ(find(table, f.reverse, 1000 + timeout).id, id);
        EXPECT_EQ(find(table, f.reverse, 1000 + timeout + 1).id, no_flow) << "one past";
        EXPECT_EQ(table.size(), 0u) << "the lookup reclaimed it";
        EXPECT_EQ(find(table, f.forward, 1000 + timeout + 1).id, no_flow);
        EXPECT_NE(add(table, f, 1000 + timeout + 1), no_flow) << "the keys are free again";
    }
}

TEST(FlowTable, ExpiredFlowDoesNotBlockItsKeys) {
    FlowTable table(100, test_key(), short_timeouts);
    const Flow f = nat_flow(40000, 1024, FlowState::udp);
    const FlowId first = add(table, f, 0);
    ASSERT_NE(first, no_flow);
    // No lookup in between: insert itself must see the old flow has expired.
    const FlowId second = add(table, make_flow(f.forward, nat_flow(1, 2).reverse), 401);
    ASSERT_NE(second, no_flow);
    EXPECT_EQ(table.size(), 1u);
    EXPECT_EQ(find(table, f.forward, 401).id, second);
    EXPECT_EQ(find(table, f.reverse, 401).id, no_flow);
}

TEST(FlowTable, TouchExtendsLifeAndChangesTimeout) {
    FlowTable table(100, test_key(), short_timeouts);
    const Flow f = nat_flow(40000, 1024, FlowState::syn_seen);
    const FlowId id = add(table, f, 0);
    ASSERT_NE(id, no_flow);

    table.touch(id, FlowState::syn_seen, 40);
    EXPECT_EQ(find(table, f.forward, 90).id, id);   // 50 after the touch
    table.touch(id, FlowState::established, 90);     // the SYN-ACK
    EXPECT_EQ(table.flow(id).state, FlowState::established);
    EXPECT_EQ(table.flow(id).last_seen, 90u);
    EXPECT_EQ(find(table, f.reverse, 1090).id, id);
    table.touch(id, FlowState::closing, 1090);       // a FIN: shorter timeout
    EXPECT_EQ(find(table, f.forward, 1290).id, id);
    EXPECT_EQ(find(table, f.forward, 1291).id, no_flow);
}

// A flow keeps the timeouts of the profile it was inserted with: profile
// 0's are the table's own, others are what set_timeouts() gave them, and
// expire() goes by the same ones.
TEST(FlowTable, FlowsExpireByTheirProfile) {
    const FlowTimeouts longer{.syn_seen = 500, .established = 9000, .closing = 900, .udp = 4000};
    for (FlowState state : all_states) {
        SCOPED_TRACE(int(state));
        FlowTable table(100, test_key(), short_timeouts);
        table.set_timeouts(7, longer);
        const Flow plain = nat_flow(40000, 1024, state);
        Flow own = nat_flow(40001, 1025, state);
        own.timeout_profile = 7;
        ASSERT_NE(add(table, plain, 1000), no_flow);
        const FlowId id = add(table, own, 1000);
        ASSERT_NE(id, no_flow);
        EXPECT_EQ(table.flow(id).timeout_profile, 7);
        const uint32_t short_one = timeout_of(short_timeouts, state);
        const uint32_t long_one = timeout_of(longer, state);
        EXPECT_EQ(find(table, plain.forward, 1000 + short_one + 1).id, no_flow);
        EXPECT_EQ(find(table, own.forward, 1000 + short_one + 1).id, id);
        EXPECT_EQ(find(table, own.reverse, 1000 + long_one).id, id) << "idle exactly its timeout";
        EXPECT_EQ(table.expire(1000 + long_one, 100), 0u);
        EXPECT_EQ(table.expire(1000 + long_one + 1, 100), 1u) << "expire() by its profile too";
        EXPECT_EQ(find(table, own.forward, 1000 + long_one + 1).id, no_flow);
    }
}

// A profile the control plane never set keeps the table's own timeouts.
TEST(FlowTable, UnsetProfilesHaveTheTablesTimeouts) {
    FlowTable table(100, test_key(), short_timeouts);
    Flow f = nat_flow(40000, 1024, FlowState::udp);
    f.timeout_profile = 255;
    const FlowId id = add(table, f, 0);
    ASSERT_NE(id, no_flow);
    EXPECT_EQ(find(table, f.forward, short_timeouts.udp).id, id);
    EXPECT_EQ(find(table, f.forward, short_timeouts.udp + 1).id, no_flow);
}

// The data path's refresh leaves a busy flow's line unwritten until 1/64 of
// its timeout has passed, and writes at once when the state changes.
TEST(FlowTable, RefreshWritesOncePerSixtyFourthOfTheTimeout) {
    FlowTable table(100, test_key(), FlowTimeouts{640, 6400, 64, 3200});
    const FlowId id = add(table, nat_flow(40000, 1024, FlowState::established), 1000);
    ASSERT_NE(id, no_flow);
    FlowEntry &flow = table.flow(id);
    table.refresh(flow, FlowState::established, 1100);  // 100 <= 6400 / 64
    EXPECT_EQ(flow.last_seen, 1000u);
    table.refresh(flow, FlowState::established, 1101);
    EXPECT_EQ(flow.last_seen, 1101u);
    table.refresh(flow, FlowState::closing, 1102);       // a FIN: written at once
    EXPECT_EQ(flow.state, FlowState::closing);
    EXPECT_EQ(flow.last_seen, 1102u);
    // Still alive just before its timeout from the last write, gone after.
    EXPECT_NE(find(table, nat_flow(40000, 1024, FlowState::closing).forward, 1102 + 64).id, no_flow);
    EXPECT_EQ(find(table, nat_flow(40000, 1024, FlowState::closing).forward, 1102 + 65).id, no_flow);
}

TEST(FlowTable, NowWrapsAround) {
    FlowTable table(100, test_key(), short_timeouts);
    const uint32_t start = UINT32_MAX - 10;
    const Flow f = nat_flow(40000, 1024, FlowState::udp);
    const FlowId id = add(table, f, start);
    ASSERT_NE(id, no_flow);
    EXPECT_EQ(find(table, f.forward, 50).id, id);     // 61 after start
    EXPECT_EQ(find(table, f.reverse, 389).id, id);    // 400 after start
    EXPECT_EQ(table.expire(389, 100), 0u);
    EXPECT_EQ(find(table, f.reverse, 390).id, no_flow);

    // Same across the wrap by expire(), and with touch() on both sides of it.
    const Flow g = nat_flow(40001, 1025, FlowState::udp);
    const FlowId ig = add(table, g, UINT32_MAX - 100);
    ASSERT_NE(ig, no_flow);
    table.touch(ig, FlowState::udp, UINT32_MAX);
    EXPECT_EQ(table.expire(399, 100), 0u);
    EXPECT_EQ(find(table, g.forward, 399).id, ig);
    table.touch(ig, FlowState::udp, 5);
    EXPECT_EQ(table.expire(405, 100), 0u);
    EXPECT_EQ(table.expire(406, 100), 1u);
    EXPECT_EQ(table.size(), 0u);
}

// 4. Fill to capacity: with buckets for at most 60% average use, slots never
// run out before flow ids do; a full table refuses without side effects.
// 78643 flows is the sizing's worst case (exactly 60% of the slots used at
// capacity); 100000 rounds up to 38%.
TEST(FlowTable, FillsToCapacity) {
    for (uint32_t capacity : {100'000u, 78'643u}) {
        SCOPED_TRACE(capacity);
        FlowTable table(capacity, test_key());
        Tuples tuples(capacity);
        std::vector<Flow> flows;
        std::vector<FlowId> ids;
        flows.reserve(capacity);
        int64_t first_failure = -1;
        for (uint32_t i = 0; i < capacity; ++i) {
            const Flow f = tuples.fresh_flow();
            const FlowId id = add(table, f, 1);
            if (id == no_flow) {
                if (first_failure < 0)
                    first_failure = i;
                continue;
            }
            flows.push_back(f);
            ids.push_back(id);
        }
        if (first_failure < 0)
            std::printf("[   info   ] capacity %u: all %zu inserts succeeded\n", capacity, flows.size());
        else
            std::printf("[   info   ] capacity %u: first refusal at insert %lld, %zu flows in the end\n",
                        capacity, (long long)first_failure, flows.size());
        EXPECT_TRUE(first_failure < 0 || first_failure >= int64_t(capacity) * 99 / 100);
        EXPECT_EQ(table.size(), flows.size());

        for (size_t i = 0; i < flows.size(); ++i) {
            const FlowLookup forward = find(table, flows[i].forward, 2);
            const FlowLookup reverse = find(table, flows[i].reverse, 2);
            ASSERT_EQ(forward.id, ids[i]);
            ASSERT_FALSE(forward.reverse);
            ASSERT_EQ(reverse.id, ids[i]);
            ASSERT_TRUE(reverse.reverse);
        }
        if (flows.size() != capacity)
            continue;

        // Full: every further insert is refused and leaves no trace.
        for (int extra = 0; extra < 1000; ++extra) {
            const Flow f = tuples.fresh_flow();
            ASSERT_EQ(add(table, f, 3), no_flow);
            ASSERT_EQ(find(table, f.forward, 3).id, no_flow);
            ASSERT_EQ(find(table, f.reverse, 3).id, no_flow);
        }
        EXPECT_EQ(table.size(), capacity);
        for (size_t i = 0; i < flows.size(); ++i) {
            ASSERT_EQ(find(table, flows[i].forward, 4).id, ids[i]);
            ASSERT_EQ(find(table, flows[i].reverse, 4).id, ids[i]);
        }
        // One removed, one fits again.
        table.remove(ids[0]);
        EXPECT_NE(add(table, tuples.fresh_flow(), 5), no_flow);
    }
}

// A key goes to its primary bucket while that has room: the one bucket the
// data path prefetches ahead holds nearly every key, so a lookup reads one
// bucket line, not two. (Placing each key in the less loaded of its two
// buckets would leave about half of them in the alternate.)
TEST(FlowTable, KeysStayInTheirPrimaryBucketWhileItHasRoom) {
    const uint32_t capacity = 100'000;
    FlowTable table(capacity, test_key());
    Tuples tuples(11);
    std::vector<Flow> flows;
    for (uint32_t i = 0; i < capacity; ++i) {
        flows.push_back(tuples.fresh_flow());
        ASSERT_NE(add(table, flows.back(), 1), no_flow);
    }
    // hint_of() has a hint when the primary bucket holds the signature.
    size_t in_primary = 0;
    for (const Flow &f : flows)
        in_primary += (table.hint_of(table.hash(f.forward)) != no_hint) +
                      (table.hint_of(table.hash(f.reverse)) != no_hint);
    std::printf("[   info   ] a full table: %.2f%% of keys in their primary bucket\n",
                100.0 * double(in_primary) / double(2 * flows.size()));
    EXPECT_GE(in_primary, 2 * flows.size() * 95 / 100);
}

// The hint hint_of() gives is only where lookup() starts: when the
// flow there ended, or its id went to another flow, in between (packets of
// one burst are probed before any of them runs), the search finds the truth.
TEST(FlowTable, StaleHintsFallBackToTheSearch) {
    FlowTable table(1000, test_key());
    Tuples tuples(12);
    const Flow a = tuples.fresh_flow();
    const FlowId first = add(table, a, 1);
    ASSERT_NE(first, no_flow);
    const FlowHint forward_hint = table.hint_of(table.hash(a.forward));
    const FlowHint reverse_hint = table.hint_of(table.hash(a.reverse));
    ASSERT_NE(forward_hint, no_hint);
    const FlowLookup hinted = table.lookup(a.reverse, table.hash(a.reverse), 1, reverse_hint);
    EXPECT_EQ(hinted.id, first);
    EXPECT_TRUE(hinted.reverse);

    // Ended, and its id given to another flow.
    table.remove(first);
    const Flow b = tuples.fresh_flow();
    ASSERT_EQ(add(table, b, 2), first);
    EXPECT_EQ(table.lookup(a.forward, table.hash(a.forward), 2, forward_hint).id, no_flow);
    // The key back under another id: found there.
    const FlowId again = add(table, a, 3);
    ASSERT_NE(again, no_flow);
    ASSERT_NE(again, first);
    EXPECT_EQ(table.lookup(a.forward, table.hash(a.forward), 3, forward_hint).id, again);
    // Ended and its id not reused: the vacant entry still holds b's tuple,
    // but does not count.
    table.remove(first);  // b
    EXPECT_EQ(table.lookup(b.forward, table.hash(b.forward), 3, forward_hint).id, no_flow);
}

// A full table whose flows have all expired takes new flows: insert reclaims
// expired flows in its candidate buckets when no id is free.
TEST(FlowTable, FullTableReclaimsExpiredFlowsOnInsert) {
    FlowTable table(1000, test_key(), short_timeouts);
    Tuples tuples(7);
    for (int i = 0; i < 1000; ++i)
        ASSERT_NE(add(table, tuples.fresh_flow(FlowState::udp), 0), no_flow);
    EXPECT_EQ(add(table, tuples.fresh_flow(FlowState::udp), 400), no_flow);
    int taken = 0;
    for (int i = 0; i < 100; ++i)
        taken += add(table, tuples.fresh_flow(FlowState::udp), 401) != no_flow;
    std::printf("[   info   ] %d of 100 inserts into a full, expired table reclaimed room\n", taken);
    EXPECT_GE(taken, 90);  // a miss needs all four candidate buckets empty
    EXPECT_LE(table.size(), 1000u);
}

// When both candidate buckets of a key are full the insert is refused and
// leaves nothing behind. The hashes here are chosen by the test (insert and
// lookup take them from the caller), so every key lands in the same two
// buckets; remove() would recompute real hashes, so it is not used.
TEST(FlowTable, FullBucketsRefuseWithoutTrace) {
    FlowTable table(100, test_key(), short_timeouts);  // 64 buckets
    Tuples tuples(8);
    // Signature 1, buckets {0, 1}; signature 2, buckets {4, 6}.
    const uint64_t crowded = 0x0000'0001'0000'0000, other = 0x0000'0002'0000'0004;
    std::vector<std::pair<Flow, FlowId>> placed;
    for (;;) {
        const Flow f = tuples.fresh_flow(FlowState::udp);
        const FlowId id = table.insert(f, crowded, crowded, 0);
        if (id == no_flow)
            break;
        placed.push_back({f, id});
    }
    EXPECT_EQ(placed.size(), 8u) << "two buckets of 8 slots, two keys a flow";
    for (const auto &[f, id] : placed) {
        EXPECT_EQ(table.lookup(f.forward, crowded, 1).id, id);
        EXPECT_EQ(table.lookup(f.reverse, crowded, 1).id, id);
    }

    // One key with room, the other without: refused, and the key with room
    // did not keep its slot.
    const Flow half = tuples.fresh_flow(FlowState::udp);
    EXPECT_EQ(table.insert(half, other, crowded, 1), no_flow);
    EXPECT_EQ(table.insert(half, crowded, other, 1), no_flow);
    EXPECT_EQ(table.lookup(half.forward, other, 1).id, no_flow);
    EXPECT_EQ(table.size(), 8u);
    for (int i = 0; i < 8; ++i)
        EXPECT_NE(table.insert(tuples.fresh_flow(FlowState::udp), other, other, 1), no_flow)
            << "a slot leaked at " << i;
    EXPECT_EQ(table.insert(tuples.fresh_flow(FlowState::udp), other, other, 1), no_flow);
}

// The same with real hashes, so that remove() works: keys found by trying
// tuples until 8 bits of the bucket index and of the signature agree, which
// puts them all in the same two buckets of any table up to 256 buckets.
// When those buckets are full of expired flows, insert reclaims them.
TEST(FlowTable, FullBucketsReclaimExpiredFlows) {
    FlowTable table(100, test_key(), short_timeouts);  // 64 buckets
    const uint64_t pattern = table.hash(v4(0x0a000001, 1, 0xc6120101, 443));
    std::vector<FlowKey> crowded;
    for (uint32_t i = 2; crowded.size() < 18; ++i) {
        const FlowKey k = v4(0x0a000000 + (i >> 16), uint16_t(i), 0xc6120101, 443);
        if (((table.hash(k) ^ pattern) & 0x0000'00ff'0000'00ff) == 0)
            crowded.push_back(k);
    }
    Tuples tuples(11);
    for (size_t i = 0; i < 16; ++i)
        ASSERT_NE(add(table, make_flow(crowded[i], tuples.fresh(), FlowState::udp), 0), no_flow) << i;
    EXPECT_EQ(add(table, make_flow(crowded[16], tuples.fresh(), FlowState::udp), 0), no_flow)
        << "16 slots in two buckets";
    EXPECT_EQ(add(table, make_flow(crowded[16], tuples.fresh(), FlowState::udp), 400), no_flow);
    EXPECT_EQ(table.size(), 16u);

    // All 16 have expired at 401; the insert makes room by removing them.
    const Flow late = make_flow(crowded[16], tuples.fresh(), FlowState::udp);
    const FlowId id = add(table, late, 401);
    ASSERT_NE(id, no_flow);
    EXPECT_EQ(table.size(), 1u);
    EXPECT_EQ(find(table, late.forward, 401).id, id);
    EXPECT_EQ(find(table, crowded[0], 401).id, no_flow);
    EXPECT_NE(add(table, make_flow(crowded[17], tuples.fresh(), FlowState::udp), 401), no_flow);
}

// A hash whose signature bits are all zero must not look like an empty slot.
TEST(FlowTable, ZeroSignatureIsStored) {
    FlowTable table(100, test_key());
    Tuples tuples(9);
    const uint64_t zero_signature = 0x0000'0000'0000'0005;
    const Flow a = tuples.fresh_flow(), b = tuples.fresh_flow();
    const FlowId ia = table.insert(a, zero_signature, zero_signature, 0);
    const FlowId ib = table.insert(b, zero_signature, zero_signature, 0);
    ASSERT_NE(ia, no_flow);
    ASSERT_NE(ib, no_flow);
    EXPECT_EQ(table.lookup(a.forward, zero_signature, 0).id, ia);
    EXPECT_EQ(table.lookup(a.reverse, zero_signature, 0).id, ia);
    EXPECT_EQ(table.lookup(b.forward, zero_signature, 0).id, ib);
    EXPECT_EQ(table.lookup(b.reverse, zero_signature, 0).id, ib);
}

// A stale id (its flow removed) is ignored by touch() and remove(): it must
// not come back to life and be freed a second time by expire().
TEST(FlowTable, StaleIdsAreIgnored) {
    FlowTable table(2, test_key(), short_timeouts);
    Tuples tuples(10);
    const FlowId id = add(table, tuples.fresh_flow(), 0);
    ASSERT_NE(id, no_flow);
    table.remove(id);
    table.touch(id, FlowState::established, 1);
    table.remove(id);
    table.touch(no_flow, FlowState::established, 1);
    table.remove(no_flow);
    EXPECT_EQ(table.size(), 0u);
    EXPECT_EQ(table.expire(100'000, 10), 0u);
    EXPECT_EQ(table.size(), 0u);
    EXPECT_NE(add(table, tuples.fresh_flow(), 100'000), no_flow);
    EXPECT_NE(add(table, tuples.fresh_flow(), 100'000), no_flow);
    EXPECT_EQ(add(table, tuples.fresh_flow(), 100'000), no_flow) << "still two ids, not three";
    EXPECT_EQ(table.size(), 2u);
}

// 5. expire() examines at most `budget` ids per call, removes expired flows
// only, covers the table in capacity / budget calls; freed ids are reused.
TEST(FlowTable, ExpireWorksInBoundedSteps) {
    constexpr uint32_t capacity = 1000;
    FlowTable table(capacity, test_key(), short_timeouts);
    Tuples tuples(5);
    std::vector<Flow> flows;
    std::vector<FlowId> ids;
    for (uint32_t i = 0; i < capacity; ++i) {
        flows.push_back(tuples.fresh_flow(i % 2 ? FlowState::udp : FlowState::established));
        ids.push_back(add(table, flows.back(), 0));
        ASSERT_NE(ids.back(), no_flow);
    }
    EXPECT_EQ(table.expire(400, capacity), 0u) << "nothing has expired yet";

    // At 500 the UDP half has expired (400), the established half not (1000).
    uint32_t removed = 0;
    for (int call = 0; call < 10; ++call) {
        const uint32_t r = table.expire(500, 100);
        EXPECT_LE(r, 100u);
        removed += r;
    }
    EXPECT_EQ(removed, capacity / 2) << "ten calls of 100 cover 1000 ids";
    EXPECT_EQ(table.size(), capacity / 2);
    EXPECT_EQ(table.expire(500, capacity), 0u);
    std::unordered_set<FlowId> freed;
    for (uint32_t i = 0; i < capacity; ++i) {
        if (i % 2) {
            freed.insert(ids[i]);
            EXPECT_EQ(find(table, flows[i].forward, 500).id, no_flow);
        } else {
            EXPECT_EQ(find(table, flows[i].forward, 500).id, ids[i]);
            EXPECT_EQ(find(table, flows[i].reverse, 500).id, ids[i]);
        }
    }

    // The freed ids are the ones new flows get, and the table is full again.
    for (uint32_t i = 0; i < capacity / 2; ++i) {
        const FlowId id = add(table, tuples.fresh_flow(FlowState::established), 500);
        ASSERT_NE(id, no_flow);
        EXPECT_EQ(freed.erase(id), 1u) << id;
    }
    EXPECT_EQ(table.size(), capacity);
    EXPECT_EQ(add(table, tuples.fresh_flow(), 500), no_flow);

    // Everything expired: each call removes exactly what it examines.
    removed = 0;
    for (int call = 0; call < 15; ++call) {
        EXPECT_EQ(table.expire(100'000, 64), 64u);
        removed += 64;
    }
    EXPECT_EQ(table.expire(100'000, 64), capacity - removed);
    EXPECT_EQ(table.size(), 0u);
    EXPECT_EQ(table.expire(100'000, 64), 0u);
    // A budget beyond the capacity is one sweep.
    ASSERT_NE(add(table, tuples.fresh_flow(FlowState::udp), 100'000), no_flow);
    EXPECT_EQ(table.expire(200'000, UINT32_MAX), 1u);
}

// 6. Hash flooding: tuples that differ in the source port alone spread over
// the buckets like random ones, and another key places them elsewhere.
TEST(FlowTable, PortSweepSpreadsOverBuckets) {
    const HashKey key = test_key();
    constexpr uint32_t buckets = 16384;  // 65535 keys: 4 per bucket on average
    std::vector<uint32_t> load(buckets);
    std::unordered_set<uint32_t> signatures;
    for (uint32_t port = 1; port <= 65535; ++port) {
        const uint64_t h = flow_hash(v4(0xc6120064, uint16_t(port), 0xc6120101, 443), key);
        ++load[h & (buckets - 1)];
        signatures.insert(uint32_t(h >> 32));
    }
    const uint32_t max_load = *std::max_element(load.begin(), load.end());
    std::printf("[   info   ] 65535 source ports over %u buckets: max %u, mean 4\n", buckets, max_load);
    EXPECT_LE(max_load, 16u);  // Poisson(4): about 12 for 16384 buckets
    EXPECT_GE(signatures.size(), 65530u);

    // The table takes a full sweep of client ports (replies to a sweep of
    // SNAT ports) without refusing one.
    FlowTable table(65535, key);
    for (uint32_t port = 1; port <= 65535; ++port)
        ASSERT_NE(add(table, nat_flow(uint16_t(port), uint16_t(port)), 0), no_flow) << port;
    EXPECT_EQ(table.size(), 65535u);
}

TEST(FlowTable, AnotherKeyPlacesTuplesElsewhere) {
    const HashKey a = test_key(), b = HashKey::from_seed(0x0dd5eed);
    constexpr uint32_t buckets = 16384;
    Tuples tuples(6);
    int same_hash = 0, same_bucket = 0;
    constexpr int n = 20000;
    for (int i = 0; i < n; ++i) {
        const FlowKey k = tuples.fresh();
        const uint64_t ha = flow_hash(k, a), hb = flow_hash(k, b);
        same_hash += ha == hb;
        same_bucket += (ha & (buckets - 1)) == (hb & (buckets - 1));
    }
    EXPECT_EQ(same_hash, 0);
    EXPECT_LT(same_bucket, n / 100);  // about n / buckets by chance
    FlowTable ta(10, a), tb(10, b);
    const FlowKey k = nat_flow(1, 1).forward;
    EXPECT_NE(ta.hash(k), tb.hash(k));
}

// 7. A long random run against a model made of two std::unordered_maps:
// the flows the table may still hold, by id, and the answer lookup owes for
// each of their keys. An expired flow ("zombie") may or may not have been
// reclaimed yet, so for those only what must hold either way is checked.
TEST(FlowTable, AgreesWithModelOverRandomOperations) {
    constexpr uint32_t capacity = 512;
    const FlowTimeouts timeouts{.syn_seen = 300, .established = 6000, .closing = 200, .udp = 2000};
    FlowTable table(capacity, test_key(), timeouts);
    Tuples tuples(42);
    std::mt19937_64 &rng = tuples.rng();

    struct Entry {
        Flow flow;
        size_t index;  // in `ids`, to pick a flow at random
    };
    std::unordered_map<FlowId, Entry> flows;
    std::unordered_map<FlowKey, FlowLookup, KeyHash> answers;
    std::vector<FlowId> ids;

    auto expired = [&](FlowId id, uint32_t now) {
        const Flow &f = flows.at(id).flow;
        return uint32_t(now - f.last_seen) > timeout_of(timeouts, f.state);
    };
    auto drop = [&](FlowId id) {
        const auto it = flows.find(id);
        ASSERT_NE(it, flows.end());
        const size_t i = it->second.index;
        ids[i] = ids.back();
        flows.at(ids[i]).index = i;
        ids.pop_back();
        answers.erase(it->second.flow.forward);
        answers.erase(it->second.flow.reverse);
        flows.erase(it);
    };
    auto keep = [&](FlowId id, Flow f, uint32_t now) {
        if (flows.count(id)) {
            ASSERT_TRUE(expired(id, now)) << "id " << id << " handed out while live";
            drop(id);  // a zombie reclaimed behind the model's back
        }
        f.last_seen = now;
        ASSERT_TRUE(answers.emplace(f.forward, FlowLookup{id, false}).second);
        ASSERT_TRUE(answers.emplace(f.reverse, FlowLookup{id, true}).second);
        flows.emplace(id, Entry{f, ids.size()});
        ids.push_back(id);
    };
    auto check_all = [&](uint32_t now) {
        for (const FlowId id : std::vector<FlowId>(ids)) {
            const Flow f = flows.at(id).flow;
            if (expired(id, now)) {
                EXPECT_EQ(find(table, f.forward, now).id, no_flow);
                drop(id);
                continue;
            }
            for (const FlowKey &key : {f.forward, f.reverse}) {
                const FlowLookup found = find(table, key, now), owed = answers.at(key);
                ASSERT_EQ(found.id, owed.id);
                ASSERT_EQ(found.reverse, owed.reverse);
            }
        }
        ASSERT_EQ(table.size(), flows.size()) << "only live flows left on both sides";
    };

    uint32_t now = UINT32_MAX - 60'000;  // wraps a third of the way through
    struct {
        int inserted = 0, inserted_when_full = 0, refused_full = 0, duplicates_refused = 0;
        int zombie_keys_retaken = 0, hits = 0, misses = 0, removed = 0, expired = 0;
        uint32_t max_size = 0;
    } stats;
    constexpr int operations = 200'000;
    for (int op = 0; op < operations; ++op) {
        now += uint32_t(rng() % 3);
        const uint32_t size_before = table.size();
        ASSERT_LE(size_before, flows.size());
        stats.max_size = std::max(stats.max_size, size_before);
        const uint32_t dice = uint32_t(rng() % 100);
        const FlowId some = ids.empty() ? no_flow : ids[rng() % ids.size()];

        if (dice < 30 || some == no_flow) {  // a new flow
            const Flow f = tuples.fresh_flow(all_states[rng() % 4]);
            const FlowId id = add(table, f, now);
            if (id == no_flow) {
                ASSERT_EQ(table.size(), capacity) << "refused with room left";
                ++stats.refused_full;
            } else {
                ASSERT_LT(id, capacity);
                keep(id, f, now);
                ++stats.inserted;
                stats.inserted_when_full += size_before == capacity;
            }
        } else if (dice < 38) {  // a new flow sharing a key with a known one
            Flow f = tuples.fresh_flow(all_states[rng() % 4]);
            const Flow known = flows.at(some).flow;
            const bool share_forward = rng() & 1;
            (rng() & 1 ? f.forward : f.reverse) = share_forward ? known.forward : known.reverse;
            const bool live = !expired(some, now);
            const FlowId id = add(table, f, now);
            if (live) {
                ASSERT_EQ(id, no_flow) << "a live flow's key taken";
                ++stats.duplicates_refused;
            } else {
                // The zombie holding the key is reclaimed: an id is free.
                ASSERT_NE(id, no_flow);
                if (id != some)
                    drop(some);
                keep(id, f, now);
                ++stats.zombie_keys_retaken;
            }
        } else if (dice < 70) {  // lookups, known and unknown
            const Flow f = flows.at(some).flow;
            const FlowKey key = rng() & 1 ? f.reverse : f.forward;
            if (rng() % 4 == 0) {
                const FlowKey unknown = tuples.fresh();
                ASSERT_EQ(answers.count(unknown), 0u);
                ASSERT_EQ(find(table, unknown, now).id, no_flow);
            } else if (const FlowLookup found = find(table, key, now); expired(some, now)) {
                ASSERT_EQ(found.id, no_flow);
                drop(some);
                ++stats.misses;
            } else {
                const FlowLookup owed = answers.at(key);
                ASSERT_EQ(found.id, owed.id);
                ASSERT_EQ(found.reverse, owed.reverse);
                ++stats.hits;
            }
        } else if (dice < 85) {  // packets on a live flow
            // The data path only touches what lookup returned: no zombies.
            if (!expired(some, now)) {
                const FlowState state = all_states[rng() % 4];
                table.touch(some, state, now);
                flows.at(some).flow.state = state;
                flows.at(some).flow.last_seen = now;
            }
        } else if (dice < 95) {  // the data path ends a flow (RST)
            const bool live = !expired(some, now);
            table.remove(some);
            drop(some);
            if (live)
                ASSERT_EQ(table.size(), size_before - 1);
            else  // a zombie may have been reclaimed already
                ASSERT_GE(table.size() + 1, size_before);
            ++stats.removed;
        } else if ((op / 25'000) % 2 == 1) {  // idle spells; busy ones let the table fill
            const uint32_t budget = 1 + uint32_t(rng() % 300);
            const uint32_t removed = table.expire(now, budget);
            ASSERT_LE(removed, budget);
            ASSERT_EQ(table.size(), size_before - removed);
            stats.expired += removed;
        }
        if (op % 10'000 == 9'999) {
            ASSERT_NO_FATAL_FAILURE(check_all(now));
        }
    }
    ASSERT_NO_FATAL_FAILURE(check_all(now));
    std::printf("[   info   ] %d ops: %d inserted (%d into a full table), %d refused (full), "
                "%d duplicates refused, %d expired keys retaken, %d hits, %d expired misses, "
                "%d removed, %d expired by expire(), max size %u of %u\n",
                operations, stats.inserted, stats.inserted_when_full, stats.refused_full,
                stats.duplicates_refused, stats.zombie_keys_retaken, stats.hits, stats.misses,
                stats.removed, stats.expired, stats.max_size, capacity);
    EXPECT_GT(stats.refused_full, 0) << "the run should reach a full table";
    EXPECT_GT(stats.inserted_when_full, 0);
    EXPECT_GT(stats.zombie_keys_retaken, 0);
    EXPECT_GT(stats.misses, 0);
}

// 8. Memory per flow, for the docs.
TEST(FlowTable, BytesPerFlowIsSmall) {
    std::printf("[   info   ] bytes per flow: %zu (sizeof(FlowEntry) %zu)\n",
                FlowTable::bytes_per_flow(), sizeof(FlowEntry));
    EXPECT_LT(FlowTable::bytes_per_flow(), 128u);
    EXPECT_EQ(sizeof(FlowEntry), 64u) << "an IPv4 packet reads one line of flows";
}

// Hits in random order on a 1,000,000-flow table (far larger than the CPU
// caches), plain and with the data path's hash-and-prefetch a few packets
// ahead. Printed, not asserted: a test machine's speed is its own business.
TEST(FlowTable, LookupRate) {
    constexpr uint32_t n = 1'000'000;
    FlowTable table(n, test_key());
    Tuples tuples(1, false);  // random keys, not checked for repeats
    // The keys to look up, in the order they are looked up: like packets in
    // a burst, they are read in sequence, so the time is the table's.
    struct Probe {
        FlowKey key;
        FlowId id;
    };
    std::vector<Probe> probes;
    probes.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
        const Flow f = tuples.fresh_flow();
        const FlowId id = add(table, f, 1);
        if (id != no_flow)
            probes.push_back({tuples.rng()() & 1 ? f.reverse : f.forward, id});
    }
    ASSERT_GE(probes.size(), n * 99 / 100);
    std::shuffle(probes.begin(), probes.end(), tuples.rng());

    using Clock = std::chrono::steady_clock;
    auto rate = [](Clock::time_point start, size_t count) {
        return double(count) / std::chrono::duration<double>(Clock::now() - start).count() / 1e6;
    };

    size_t hits = 0;
    auto start = Clock::now();
    for (const Probe &p : probes)
        hits += table.lookup(p.key, table.hash(p.key), 2).id == p.id;
    const double plain = rate(start, probes.size());
    EXPECT_EQ(hits, probes.size());

    constexpr size_t ahead = 8;
    uint64_t hashes[ahead];
    hits = 0;
    start = Clock::now();
    for (size_t i = 0; i < ahead && i < probes.size(); ++i) {
        hashes[i] = table.hash(probes[i].key);
        table.prefetch(hashes[i]);
    }
    for (size_t i = 0; i < probes.size(); ++i) {
        const uint64_t h = hashes[i % ahead];
        if (i + ahead < probes.size()) {
            hashes[i % ahead] = table.hash(probes[i + ahead].key);
            table.prefetch(hashes[i % ahead]);
        }
        hits += table.lookup(probes[i].key, h, 2).id == probes[i].id;
    }
    const double prefetched = rate(start, probes.size());
    EXPECT_EQ(hits, probes.size());

    // The worker's stages over bursts of 32: hash and prefetch the buckets,
    // prefetch the flows, then look up and read the flow. Timed in this
    // thread's CPU time, which a shared machine's preemptions do not
    // inflate: the table's own share of an established packet.
    constexpr size_t burst = 32;
    auto thread_ns = [] {
        timespec t;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        return uint64_t(t.tv_sec) * 1'000'000'000u + uint64_t(t.tv_nsec);
    };
    hits = 0;
    const uint64_t staged_start = thread_ns();
    for (size_t b = 0; b + burst <= probes.size(); b += burst) {
        uint64_t burst_hashes[burst];
        FlowHint hints[burst];
        for (size_t i = 0; i < burst; ++i) {
            burst_hashes[i] = table.hash(probes[b + i].key);
            table.prefetch(burst_hashes[i]);
        }
        for (size_t i = 0; i < burst; ++i)
            hints[i] = table.hint_of(burst_hashes[i]);
        for (size_t i = 0; i < burst; ++i)
            if (hints[i] != no_hint)
                table.prefetch_flow(hints[i], probes[b + i].key.family == 6);
        for (size_t i = 0; i < burst; ++i) {
            const FlowLookup found =
                table.lookup(probes[b + i].key, burst_hashes[i], 2, hints[i]);
            // Reads the flow, as a packet's rewrite does.
            hits += found.id == probes[b + i].id &&
                    table.flow(found.id).state == FlowState::established;
        }
    }
    const size_t staged_count = probes.size() / burst * burst;
    const double staged_ns = double(thread_ns() - staged_start) / double(staged_count);
    EXPECT_EQ(hits, staged_count);
    std::printf("[   info   ] %zu-flow table, random hits: %.1f M lookups/s plain, %.1f M/s with "
                "buckets prefetched %zu ahead, %.1f ns CPU each staged in bursts of %zu\n",
                probes.size(), plain, prefetched, ahead, staged_ns, burst);
}

} // namespace
} // namespace sluice::lb

namespace sluice::lb {
namespace {

TEST(FlowTableOneWay, ReverseNotIndexedNeedNotBeUnique) {
    FlowTable table(16, HashKey::from_seed(3));
    FlowKey a, b, shared;
    a.source = {198, 18, 0, 2};
    a.source_port = 1;
    b = a;
    b.source_port = 2;
    shared.source = {198, 18, 1, 11};
    Flow first, second;
    first.forward = a;
    second.forward = b;
    first.reverse = second.reverse = shared;
    first.reverse_indexed = second.reverse_indexed = false;
    const FlowId one = table.insert(first, table.hash(a), table.hash(shared), 10);
    const FlowId two = table.insert(second, table.hash(b), table.hash(shared), 10);
    ASSERT_NE(one, no_flow);
    ASSERT_NE(two, no_flow);
    EXPECT_EQ(table.lookup(shared, table.hash(shared), 11).id, no_flow);
    EXPECT_EQ(table.lookup(a, table.hash(a), 11).id, one);
    table.remove(one);
    EXPECT_EQ(table.lookup(a, table.hash(a), 11).id, no_flow);
    EXPECT_EQ(table.lookup(b, table.hash(b), 11).id, two);
    EXPECT_EQ(table.size(), 1u);
}

} // namespace
} // namespace sluice::lb
