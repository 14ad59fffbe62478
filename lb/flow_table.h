// A worker's connection table: every flow the worker balances, found from
// either direction. One per worker, never shared, so nothing locks. All
// memory is allocated when the table is built; insert, lookup and expiry
// never allocate. Keys hash with a secret random key, so crafted tuples
// cannot pile up in one bucket. No EAL.
#pragma once

#include <atomic>
#include <iterator>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>

#include "dataplane/counter.h"
#include "dataplane/net_addr.h"
#include "lb/flow_key.h"

namespace sluice::lb {

enum class FlowState : uint8_t {
    syn_seen,     // TCP: only the client's SYN so far
    established,  // TCP: data seen from both sides (or SYN-ACK)
    closing,      // TCP: FIN or RST seen
    udp,          // UDP and other protocols without connection state
    reset_sent,   // TCP: its backend left a `reset` service; the client was
                  // sent a RST, the backend's packets are dropped (closing's timeout)
};

// Idle timeouts per state, in the table's time unit (the caller's `now`;
// sluiced uses milliseconds).
struct FlowTimeouts {
    uint32_t syn_seen = 5'000;
    uint32_t established = 300'000;
    uint32_t closing = 10'000;
    uint32_t udp = 30'000;
};

// A flow's timeouts are one of the table's profiles: 0 is the table's own
// (lb.timeouts), the others come from services with timeouts of their own
// (FlowTable::set_timeouts). A profile, once given, never changes, so that a
// flow keeps the timeouts it began with.
using TimeoutProfile = uint8_t;
constexpr unsigned max_timeout_profiles = 256;

using FlowId = uint32_t;
constexpr FlowId no_flow = UINT32_MAX;

// A backend's place in the per-worker counter arrays: given by the control
// plane, stable for as long as the backend or any of its flows lives.
using BackendSlot = uint16_t;
constexpr BackendSlot max_backend_slots = 4096;
constexpr BackendSlot no_backend_slot = UINT16_MAX;

// One connection, as given to FlowTable::insert(). `forward` is the tuple as
// it arrives from the client; `reverse` the tuple as the backend's answers
// arrive (after NAT, that is not forward.reversed()). What the data path
// rewrites is derived from them.
struct Flow {
    FlowKey forward;
    FlowKey reverse;
    uint32_t last_seen = 0; // `now` of the last packet
    FlowState state = FlowState::syn_seen;
    // Where answers for the client go: the port its packets came in on and
    // the MAC they came from (the client's, or the router's before it).
    uint8_t client_port = 0;
    MacAddress client_mac;
    // False for flows whose answers never come back through the gateway
    // (dsr): `reverse` then only records where the flow goes and is not
    // indexed, so it need not be unique.
    bool reverse_indexed = true;
    TimeoutProfile timeout_profile = 0;  // its service's (FlowTable::set_timeouts)
    BackendSlot backend = no_backend_slot;  // whose counters the flow's packets add to
};

// A tuple as the table stores it: an IPv4 tuple whole in 16 bytes, an IPv6
// tuple's addresses in the flow's FlowAddresses6.
struct PackedTuple {
    uint32_t source4 = 0;       // IPv4 source address as in the header; 0 for IPv6
    uint32_t destination4 = 0;
    uint64_t tail = 0;          // the FlowKey's last word: ports, protocol, family
};

// The IPv6 addresses of a flow's two tuples, apart from its entry: an IPv4
// flow never reads (nor, in memory that is never written, pays for) them.
struct FlowAddresses6 {
    std::array<uint8_t, 16> forward_source, forward_destination;
    std::array<uint8_t, 16> reverse_source, reverse_destination;
};

// A stored flow: one 64-byte line holds everything an IPv4 packet of the
// flow reads or writes, so a lookup costs one line of flows, not the two a
// pair of 40-byte FlowKeys spanned. forward() and reverse() give the tuples
// back as FlowKeys.
struct alignas(64) FlowEntry {
    PackedTuple forward_tuple;
    PackedTuple reverse_tuple;
    uint32_t last_seen = 0;
    FlowState state = FlowState::syn_seen;
    uint8_t client_port = 0;
    bool reverse_indexed = true;
    TimeoutProfile timeout_profile = 0;
    BackendSlot backend = no_backend_slot;
    MacAddress client_mac;
    // Set only when a tuple is IPv6: where its addresses are.
    FlowAddresses6 *addresses6 = nullptr;
    // What the rewrite of each side's IPv4 packets changes in their
    // checksums (nat.h): [0] for packets of the forward tuple, [1] of the
    // reverse one.
    std::array<RewriteSums, 2> sums;

    FlowKey forward() const { return unpacked(forward_tuple, false); }
    FlowKey reverse() const { return unpacked(reverse_tuple, true); }
    uint8_t protocol() const { return forward().protocol; }
    // True when `key` is the tuple (of the reverse side when `reverse_side`).
    bool holds(const FlowKey &key, bool reverse_side) const;

private:
    FlowKey unpacked(const PackedTuple &tuple, bool reverse_side) const;
};

inline bool FlowEntry::holds(const FlowKey &key, bool reverse_side) const {
    const PackedTuple &tuple = reverse_side ? reverse_tuple : forward_tuple;
    if (key_word(key, 4) != tuple.tail)
        return false;
    if (key.family == 4) {
        // Zero-extended as key_word() reads an IPv4 key's first words.
        uint64_t source = 0, destination = 0;
        std::memcpy(&source, &tuple.source4, 4);
        std::memcpy(&destination, &tuple.destination4, 4);
        return ((key_word(key, 0) ^ source) | key_word(key, 1) |
                (key_word(key, 2) ^ destination) | key_word(key, 3)) == 0;
    }
    const uint8_t *addresses = (reverse_side ? addresses6->reverse_source
                                             : addresses6->forward_source).data();
    return std::memcmp(addresses, key.source.data(), 16) == 0 &&
           std::memcmp(addresses + 16, key.destination.data(), 16) == 0;
}

inline FlowKey FlowEntry::unpacked(const PackedTuple &tuple, bool reverse_side) const {
    FlowKey key;
    std::memcpy(reinterpret_cast<uint8_t *>(&key) + 32, &tuple.tail, 8);
    if (key.family == 4) {
        std::memcpy(key.source.data(), &tuple.source4, 4);
        std::memcpy(key.destination.data(), &tuple.destination4, 4);
    } else {
        key.source = reverse_side ? addresses6->reverse_source : addresses6->forward_source;
        key.destination =
            reverse_side ? addresses6->reverse_destination : addresses6->forward_destination;
    }
    return key;
}

struct FlowLookup {
    FlowId id = no_flow;
    bool reverse = false;   // matched Flow::reverse: a packet from the backend
};

// What hint_of() saw in a key's primary bucket: the entry (flow id
// and direction) whose signature matched, for lookup() to try first.
using FlowHint = uint32_t;
constexpr FlowHint no_hint = UINT32_MAX;

class FlowTable {
public:
    // Room for `capacity` flows (each indexed twice). `key` is secret; tests
    // pass a fixed one. `timeouts` are profile 0's, and every other
    // profile's until set_timeouts() gives it its own.
    FlowTable(uint32_t capacity, const HashKey &key, FlowTimeouts timeouts = {});
    ~FlowTable();
    FlowTable(const FlowTable &) = delete;
    FlowTable &operator=(const FlowTable &) = delete;

    uint64_t hash(const FlowKey &key) const { return flow_hash(key, key_); }
    // Prefetches the primary bucket of `hash`, which holds nearly every key
    // (place() fills it first), ahead of hint_of() or lookup(). Inline: it
    // is a handful of instructions, run for every packet.
    void prefetch(uint64_t hash) const { prefetch_bucket(uint32_t(hash) & bucket_mask_); }
    // Both candidate buckets of a key about to be inserted: proving it
    // absent reads both.
    void prefetch_for_insert(uint64_t hash) const {
        const uint32_t primary = uint32_t(hash) & bucket_mask_;
        prefetch_bucket(primary);
        prefetch_bucket(alternate_bucket(primary, signature_of(hash), bucket_mask_));
    }
    // Once the primary bucket is in cache: the entry whose signature
    // matches, for prefetch_flow() and for lookup() to start from. no_hint
    // when the primary bucket does not hold the key's signature, and then it
    // prefetches the alternate: the key is most likely not in the table (a
    // new flow), else in the alternate, where the primary was full when it
    // came.
    FlowHint hint_of(uint64_t hash) const;
    // The line of a hinted flow (and, for an IPv6 key, its addresses), so
    // that lookup() finds it loaded.
    void prefetch_flow(FlowHint hint, bool ipv6) const {
        __builtin_prefetch(&flows_[hint & id_mask]);
        if (ipv6)
            __builtin_prefetch(&addresses6_[hint & id_mask]);
    }

    // A live flow with `key` in either direction; expired flows are not found.
    FlowLookup lookup(const FlowKey &key, uint64_t hash, uint32_t now);
    // The same, trying `hint` first: a live flow there that holds the key is
    // the key's one entry, found without searching the buckets again. A hint
    // gone stale (its flow ended or was replaced in between) costs only the
    // search it would have saved.
    FlowLookup lookup(const FlowKey &key, uint64_t hash, uint32_t now, FlowHint hint) {
        if (hint != no_hint) {
            const FlowEntry &flow = flows_[hint & id_mask];
            const bool reverse = (hint & reverse_bit) != 0;
            if (!expired(flow, now) && (!reverse || flow.reverse_indexed) &&
                flow.holds(key, reverse))
                return {hint & id_mask, reverse};
        }
        return lookup(key, hash, now);
    }

    // Adds a flow under both of its keys (only `forward` when
    // !flow.reverse_indexed). Returns no_flow when the table is full (expired
    // flows in the way are reclaimed first) or when a key is already present
    // (reverse_in_use() tells the reverse key apart).
    FlowId insert(const Flow &flow, uint64_t forward_hash, uint64_t reverse_hash, uint32_t now);

    // True when a live flow already answers to `reverse`: two flows whose
    // answers would be indistinguishable (nat: one client port, two VIPs,
    // one backend).
    bool reverse_in_use(const FlowKey &reverse, uint64_t reverse_hash, uint32_t now) {
        return lookup(reverse, reverse_hash, now).id != no_flow;
    }

    FlowEntry &flow(FlowId id) { return flows_[id]; }
    const FlowEntry &flow(FlowId id) const { return flows_[id]; }

    // The timeouts of flows inserted with `profile` from now on. The
    // control plane never changes a profile it has given out (a service
    // whose timeouts change gets another), so flows already in the table
    // keep theirs.
    void set_timeouts(TimeoutProfile profile, const FlowTimeouts &timeouts);

    // Marks the flow alive at `now`, in `state`.
    void touch(FlowId id, FlowState state, uint32_t now);
    // The data path's touch: writes only when the state changes or the flow's
    // age passes 1/64 of its timeout, so that packets of a busy flow leave its
    // line clean (a dirty line costs a write-back when it leaves the cache).
    // An idle flow then expires up to 1/64 of its timeout early.
    void refresh(FlowEntry &flow, FlowState state, uint32_t now) const {
        if (state != flow.state ||
            uint32_t(now - flow.last_seen) > timeout_of_[flow.timeout_profile][uint8_t(state)] / 64) {
            flow.state = state;
            flow.last_seen = now;
        }
    }
    void remove(FlowId id);

    // Removes up to `budget` expired flows, resuming where the last call
    // stopped; returns how many it removed. Workers call it when idle.
    uint32_t expire(uint32_t now, uint32_t budget);

    // Live flows, and expired ones not yet reclaimed. Other threads may read it.
    uint32_t size() const { return size_.load(std::memory_order_relaxed); }
    uint32_t capacity() const { return capacity_; }
    // The bucket array's size (bench_memory reads arrays of the table's sizes).
    size_t bucket_bytes() const { return bucket_bytes_; }
    // Bytes of table memory per flow of capacity, for the docs.
    static size_t bytes_per_flow();
    // True when the buckets and flows, which lookups read at random, sit in
    // reserved hugepages (else transparent hugepages were asked for).
    bool in_reserved_hugepages() const { return buckets_hugetlb_ && flows_hugetlb_; }

    // Flows that left the table, by their backend's slot: with the
    // balancer's new-flow counts, how many each backend has open.
    uint64_t ended_flows(BackendSlot slot) const {
        return slot < max_backend_slots ? ended_by_backend_[slot].read() : 0;
    }

private:
    struct Bucket;
    static constexpr uint32_t reverse_bit = 1u << 31;     // in a slot's entry: matched Flow::reverse
    static constexpr uint32_t id_mask = reverse_bit - 1;  // flow ids stay below 2^31
    static constexpr uint32_t no_entry = UINT32_MAX;  // no slot's entry is all ones
    void prefetch_bucket(uint32_t index) const {  // buckets are 64-byte lines
        __builtin_prefetch(reinterpret_cast<const char *>(buckets_) + size_t(index) * 64);
    }

    // A bucket slot's signature: the high 32 bits of the hash, never 0 (0
    // marks a free slot).
    static uint32_t signature_of(uint64_t hash) {
        const uint32_t s = uint32_t(hash >> 32);
        return s != 0 ? s : 1;
    }
    // The alternate bucket of a key in `bucket` with signature `sig`. XOR
    // makes it symmetric (the alternate of the alternate is the primary);
    // the offset is never 0 so the two candidates always differ. The low
    // signature bits are independent of the primary (the low hash bits), so
    // the keys that land in a bucket as their alternate still have uniformly
    // spread signatures.
    static uint32_t alternate_bucket(uint32_t bucket, uint32_t sig, uint32_t mask) {
        const uint32_t offset = sig & mask;
        return bucket ^ (offset != 0 ? offset : 1);
    }
    // The entry (flow id | direction bit) of the slot in `bucket` that holds
    // `key`, or no_entry.
    uint32_t find_entry(const Bucket &bucket, uint32_t sig, const FlowKey &key) const;
    // False when neither candidate bucket holds a slot with the signature of
    // `hash`: no key with that hash is stored.
    bool may_hold(uint64_t hash) const;
    bool expired(const FlowEntry &flow, uint32_t now) const {
        // Vacant and any other unknown state: expired. Unsigned difference:
        // right across the wrap of `now` (every 49.7 days in milliseconds),
        // as long as `now` never goes backwards.
        const auto state = static_cast<uint8_t>(flow.state);
        return state >= std::size(timeout_of_[0]) ||
               uint32_t(now - flow.last_seen) > timeout_of_[flow.timeout_profile][state];
    }
    bool place(uint64_t hash, FlowId id, bool reverse);
    void release_memory();
    // Writes `flow` into its entry (and its IPv6 addresses, if it has any).
    void store(FlowId id, const Flow &flow, uint32_t now);
    void unplace(uint64_t hash, FlowId id);

    HashKey key_;
    // FlowTimeouts by profile, then by FlowState: one indexed load instead
    // of a switch (the profile is in the flow's own line).
    uint32_t timeout_of_[max_timeout_profiles][5];
    uint32_t capacity_ = 0;
    std::atomic<uint32_t> size_{0};  // one writer: relaxed load + store, no locked add
    uint32_t bucket_mask_ = 0;
    Bucket *buckets_ = nullptr;     // cache-line aligned
    FlowEntry *flows_ = nullptr;
    size_t bucket_bytes_ = 0;
    bool buckets_hugetlb_ = false, flows_hugetlb_ = false;  // in reserved hugepages
    // By flow id; only IPv6 flows write theirs, so an IPv4-only table never
    // touches (nor, its pages left unmapped, pays for) this array.
    FlowAddresses6 *addresses6_ = nullptr;
    uint32_t *free_ids_ = nullptr;  // stack of unused flow ids
    uint32_t free_count_ = 0;
    uint32_t expiry_cursor_ = 0;
    std::unique_ptr<Counter[]> ended_by_backend_;  // max_backend_slots of them
};

} // namespace sluice::lb
