// The flow table in the shape of VPP's lb plugin (src/plugins/lb/lbhash.h):
// one 64-byte cache line per bucket, a packet costs one or two bucket lines
// (prefetched a few packets ahead) plus the one line of its FlowEntry (and,
// for an IPv6 tuple, the line of its addresses).
//
// A bucket holds 8 slots of {signature, flow id + direction}. The signature is
// the high 32 bits of the flow hash, so a slot is ruled out without reading
// the Flow; only a matching signature costs the Flow read and the full key
// compare. Every flow sits in the table twice, under its forward key and its
// reverse key, so a packet from either side finds it in one lookup.
//
// Each key has two candidate buckets ("power of two choices", Azar et al.
// 1994): the primary from the low bits of the hash, the alternate at
// primary ^ f(signature). A key goes to the less loaded of the two, which
// keeps the fullest bucket close to the average: a table sized for at most
// 60% average load runs out of flow ids, not slots (the fill test fills
// 100% of capacity at exactly 60%). A lookup reads both candidates (prefetch()
// fetches both lines), the primary first. Because the alternate is derived
// from the signature alone, the other candidate of any stored slot is known
// from its bucket and signature: a cuckoo-style move would need nothing more,
// should it ever be worth its code.
//
// Flows leave the table by remove(), by expire()'s walk over the ids, or when
// a lookup or insert meets them expired; until then size() counts them.
#include "lb/flow_table.h"

#include <sys/mman.h>

#include <bit>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "lb/nat.h"

namespace sluice::lb {

namespace {

constexpr uint32_t slots_per_bucket = 8;
constexpr uint32_t empty_signature = 0;

// A flow id with no flow behind it is marked in its own state, so that
// neither Flow nor the table grows a field for it: expire() reads the state
// anyway, and the data path only ever sees ids of live flows.
constexpr FlowState vacant = static_cast<FlowState>(0xff);

// Buckets are sized for at most 60% average slot use at full capacity
// (2 keys per flow); rounding up to a power of two can halve that.
constexpr uint64_t max_load_num = 3, max_load_den = 5;

bool same_key(const FlowKey &a, const FlowKey &b) { return a == b; }

bool live(const FlowEntry &flow) { return flow.state != vacant; }

// A key in the entry's form: its last word whole, IPv4 addresses inline,
// IPv6 ones in `addresses6` (the flow's own, written only then).
PackedTuple packed(const FlowKey &key, std::array<uint8_t, 16> &source6,
                   std::array<uint8_t, 16> &destination6) {
    PackedTuple tuple;
    tuple.tail = key_word(key, 4);
    if (key.family == 4) {
        std::memcpy(&tuple.source4, key.source.data(), 4);
        std::memcpy(&tuple.destination4, key.destination.data(), 4);
    } else {
        source6 = key.source;
        destination6 = key.destination;
    }
    return tuple;
}


constexpr size_t huge_page = 2u << 20;

size_t rounded_size(size_t bytes) {
    // Large arrays on 2 MiB boundaries (aligned_alloc wants a multiple of
    // the alignment).
    const size_t alignment = bytes >= huge_page ? huge_page : 64;
    return bytes == 0 ? alignment : (bytes + alignment - 1) / alignment * alignment;
}

// Lookups land at random across the buckets and flows: with 4 KiB pages
// nearly every one would also miss the TLB. `hot` arrays take reserved
// hugepages when some are free (a DPDK host has them; the EAL took its
// share at start-up), else ask for transparent ones, as the others do.
void *allocate_lines(size_t bytes, bool hot, bool &hugetlb) {
    const size_t size = rounded_size(bytes);
    hugetlb = false;
    if (hot && size >= huge_page) {
        void *memory = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
        if (memory != MAP_FAILED) {
            hugetlb = true;
            return memory;
        }
    }
    void *memory = std::aligned_alloc(size >= huge_page ? huge_page : 64, size);
    if (memory && size >= huge_page)
        madvise(memory, size, MADV_HUGEPAGE);  // a hint: failure costs speed only
    return memory;
}

void release_lines(void *memory, size_t bytes, bool hugetlb) {
    if (hugetlb)
        munmap(memory, rounded_size(bytes));
    else
        std::free(memory);
}

} // namespace

struct alignas(64) FlowTable::Bucket {
    uint32_t signature[slots_per_bucket];  // empty_signature: a free slot
    uint32_t entry[slots_per_bucket];      // flow id | reverse_bit

    // Bit i set when slot i holds `sig`. Signatures sit in their own half of
    // the line so that this is two vector compares, branch-free; the
    // compiler does not find that from the scalar loop (GCC 12, -O2).
    uint32_t matches(uint32_t sig) const {
#if defined(__SSE2__)
        const __m128i wanted = _mm_set1_epi32(int(sig));
        const __m128i *line = reinterpret_cast<const __m128i *>(signature);
        const __m128i low = _mm_cmpeq_epi32(_mm_load_si128(line), wanted);
        const __m128i high = _mm_cmpeq_epi32(_mm_load_si128(line + 1), wanted);
        return uint32_t(_mm_movemask_ps(_mm_castsi128_ps(low))) |
               uint32_t(_mm_movemask_ps(_mm_castsi128_ps(high))) << 4;
#else
        uint32_t mask = 0;
        for (uint32_t i = 0; i < slots_per_bucket; ++i)
            mask |= uint32_t(signature[i] == sig) << i;
        return mask;
#endif
    }
    uint32_t free_slots() const { return matches(empty_signature); }
};

FlowTable::FlowTable(uint32_t capacity, const HashKey &key, FlowTimeouts timeouts)
    : key_(key), capacity_(capacity), ended_by_backend_(new Counter[max_backend_slots]) {
    static_assert(uint8_t(FlowState::syn_seen) == 0 && uint8_t(FlowState::established) == 1 &&
                      uint8_t(FlowState::closing) == 2 && uint8_t(FlowState::udp) == 3 &&
                      uint8_t(FlowState::reset_sent) == 4,
                  "timeout_of_ is indexed by FlowState");
    for (unsigned profile = 0; profile < max_timeout_profiles; ++profile)
        set_timeouts(TimeoutProfile(profile), timeouts);
    static_assert(sizeof(Bucket) == 64 && alignof(Bucket) == 64, "one cache line per bucket");
    static_assert(sizeof(FlowEntry) == 64 && alignof(FlowEntry) == 64, "one cache line per flow");
    static_assert(sizeof(FlowAddresses6) == 64, "one cache line of IPv6 addresses per flow");
    if (capacity == 0 || capacity > id_mask)
        throw std::invalid_argument("flow table capacity must be between 1 and 2^31-1");

    const uint64_t keys = 2 * uint64_t(capacity);
    const uint64_t needed = (keys * max_load_den + slots_per_bucket * max_load_num - 1) /
                            (slots_per_bucket * max_load_num);
    // At least 2 buckets, so that a key's two candidates are distinct.
    const uint64_t buckets = std::bit_ceil(needed < 2 ? uint64_t(2) : needed);
    bucket_mask_ = uint32_t(buckets - 1);

    bucket_bytes_ = buckets * sizeof(Bucket);
    buckets_ = static_cast<Bucket *>(allocate_lines(bucket_bytes_, true, buckets_hugetlb_));
    flows_ = static_cast<FlowEntry *>(
        allocate_lines(size_t(capacity) * sizeof(FlowEntry), true, flows_hugetlb_));
    // Left uninitialized: an IPv6 flow writes its line before anything reads it.
    bool cold_hugetlb;  // never: these stay unwritten (and unpaid for) until used
    addresses6_ = static_cast<FlowAddresses6 *>(
        allocate_lines(size_t(capacity) * sizeof(FlowAddresses6), false, cold_hugetlb));
    free_ids_ = static_cast<uint32_t *>(
        allocate_lines(size_t(capacity) * sizeof(uint32_t), false, cold_hugetlb));
    if (!buckets_ || !flows_ || !addresses6_ || !free_ids_) {
        release_memory();
        throw std::bad_alloc();
    }

    for (uint64_t b = 0; b < buckets; ++b)
        new (&buckets_[b]) Bucket{};  // all signatures empty
    for (uint32_t id = 0; id < capacity; ++id) {
        new (&flows_[id]) FlowEntry{};
        flows_[id].state = vacant;
    }
    // Pops come from the top: ids are handed out from 0 upwards, which keeps
    // a lightly loaded table in few pages.
    for (uint32_t i = 0; i < capacity; ++i)
        free_ids_[i] = capacity - 1 - i;
    free_count_ = capacity;
}

FlowTable::~FlowTable() { release_memory(); }

void FlowTable::release_memory() {
    // Bucket and FlowEntry are trivially destructible: only the memory goes.
    if (buckets_)
        release_lines(buckets_, bucket_bytes_, buckets_hugetlb_);
    if (flows_)
        release_lines(flows_, size_t(capacity_) * sizeof(FlowEntry), flows_hugetlb_);
    std::free(addresses6_);
    std::free(free_ids_);
}

FlowHint FlowTable::hint_of(uint64_t hash) const {
    const uint32_t sig = signature_of(hash);
    const uint32_t primary = uint32_t(hash) & bucket_mask_;
    // A signature match in the primary is the key itself but for a 1 in
    // 2^29 chance, and then lookup() pays one miss.
    const Bucket &bucket = buckets_[primary];
    const uint32_t m = bucket.matches(sig);
    if (m == 0) {
        prefetch_bucket(alternate_bucket(primary, sig, bucket_mask_));
        return no_hint;
    }
    return bucket.entry[std::countr_zero(m)];
}

// Inlined into lookup(): a call there cost more than the search.
[[gnu::always_inline]] inline uint32_t FlowTable::find_entry(const Bucket &bucket, uint32_t sig, const FlowKey &key) const {
    for (uint32_t m = bucket.matches(sig); m != 0; m &= m - 1) {
        const uint32_t entry = bucket.entry[std::countr_zero(m)];
        if (flows_[entry & id_mask].holds(key, (entry & reverse_bit) != 0))
            return entry;
        // else a signature collision
    }
    return no_entry;
}

bool FlowTable::may_hold(uint64_t hash) const {
    const uint32_t sig = signature_of(hash);
    const uint32_t primary = uint32_t(hash) & bucket_mask_;
    return (buckets_[primary].matches(sig) |
            buckets_[alternate_bucket(primary, sig, bucket_mask_)].matches(sig)) != 0;
}

FlowLookup FlowTable::lookup(const FlowKey &key, uint64_t hash, uint32_t now) {
    const uint32_t sig = signature_of(hash);
    const uint32_t primary = uint32_t(hash) & bucket_mask_;
    uint32_t entry = find_entry(buckets_[primary], sig, key);
    if (entry == no_entry) {
        entry = find_entry(buckets_[alternate_bucket(primary, sig, bucket_mask_)], sig, key);
        if (entry == no_entry)
            return {};
    }
    // A key is stored at most once, so the search ends here either way.
    const FlowId id = entry & id_mask;
    if (expired(flows_[id], now)) [[unlikely]] {
        remove(id);  // reclaimed now rather than by expire()
        return {};
    }
    return {id, (entry & reverse_bit) != 0};
}

// The primary bucket whenever it has room, so that nearly every lookup
// reads one bucket, the one prefetched ahead; the alternate takes the
// overflow. With both full, a key of either moves to its own other bucket
// (one cuckoo step) to make room.
bool FlowTable::place(uint64_t hash, FlowId id, bool reverse) {
    const uint32_t sig = signature_of(hash);
    const uint32_t primary = uint32_t(hash) & bucket_mask_;
    const uint32_t candidates[2] = {primary, alternate_bucket(primary, sig, bucket_mask_)};
    auto put = [](Bucket &bucket, uint32_t slot, uint32_t signature, uint32_t entry) {
        bucket.signature[slot] = signature;
        bucket.entry[slot] = entry;
    };
    const uint32_t entry = id | (reverse ? reverse_bit : 0);
    for (uint32_t b : candidates) {
        if (const uint32_t free = buckets_[b].free_slots()) {
            put(buckets_[b], std::countr_zero(free), sig, entry);
            return true;
        }
    }
    for (uint32_t b : candidates) {
        Bucket &full = buckets_[b];
        for (uint32_t slot = 0; slot < slots_per_bucket; ++slot) {
            Bucket &other = buckets_[alternate_bucket(b, full.signature[slot], bucket_mask_)];
            if (const uint32_t free = other.free_slots()) {
                put(other, std::countr_zero(free), full.signature[slot], full.entry[slot]);
                put(full, slot, sig, entry);
                return true;
            }
        }
    }
    return false;
}

void FlowTable::unplace(uint64_t hash, FlowId id) {
    const uint32_t sig = signature_of(hash);
    uint32_t b = uint32_t(hash) & bucket_mask_;
    for (int candidate = 0; candidate < 2; ++candidate) {
        Bucket &bucket = buckets_[b];
        for (uint32_t m = bucket.matches(sig); m != 0; m &= m - 1) {
            const uint32_t slot = std::countr_zero(m);
            // One slot per call: should a flow's two keys ever share a full
            // hash, each of the two calls in remove() clears one of them.
            if ((bucket.entry[slot] & id_mask) == id) {
                bucket.signature[slot] = empty_signature;
                return;
            }
        }
        b = alternate_bucket(b, sig, bucket_mask_);
    }
}

FlowId FlowTable::insert(const Flow &flow, uint64_t forward_hash, uint64_t reverse_hash,
                         uint32_t now) {
    // A flow whose two keys are equal could not tell its directions apart.
    const bool both = flow.reverse_indexed;
    if (both && same_key(flow.forward, flow.reverse))
        return no_flow;
    // lookup() also reclaims an expired flow holding either key, so that no
    // key is ever stored twice. It runs only when a candidate bucket holds
    // the key's signature: without one the key is certainly absent, which is
    // what a new flow finds, for two vector compares per bucket.
    if ((may_hold(forward_hash) && lookup(flow.forward, forward_hash, now).id != no_flow) ||
        (both && may_hold(reverse_hash) && lookup(flow.reverse, reverse_hash, now).id != no_flow))
        return no_flow;

    // Expired flows in the four candidate buckets, removed when the table has
    // no id or no slot left for this flow. Bounded (32 slots) and only on the
    // way to a refusal, where it turns a refusal into a success if anything
    // there has expired; expire() does the rest of the cleaning.
    auto reclaim_candidates = [this, now](uint64_t hash) {
        const uint32_t primary = uint32_t(hash) & bucket_mask_;
        const uint32_t candidates[2] = {
            primary, alternate_bucket(primary, signature_of(hash), bucket_mask_)};
        uint32_t reclaimed = 0;
        for (uint32_t b : candidates) {
            const Bucket &bucket = buckets_[b];
            // Slot by slot from the line itself: remove() may clear more than
            // the slot at hand.
            for (uint32_t slot = 0; slot < slots_per_bucket; ++slot) {
                if (bucket.signature[slot] == empty_signature)
                    continue;
                const FlowId id = bucket.entry[slot] & id_mask;
                if (expired(flows_[id], now)) {
                    remove(id);
                    ++reclaimed;
                }
            }
        }
        return reclaimed;
    };

    for (int attempt = 0;; ++attempt) {
        if (free_count_ > 0) {
            const FlowId id = free_ids_[free_count_ - 1];
            if (place(forward_hash, id, false)) {
                if (!both || place(reverse_hash, id, true)) {
                    --free_count_;
                    size_.store(size_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
                    store(id, flow, now);
                    return id;
                }
                unplace(forward_hash, id);  // nothing half-inserted
            }
        }
        if (attempt > 0 ||
            reclaim_candidates(forward_hash) + (both ? reclaim_candidates(reverse_hash) : 0) == 0)
            return no_flow;
    }
}

void FlowTable::store(FlowId id, const Flow &flow, uint32_t now) {
    FlowEntry &entry = flows_[id];
    FlowAddresses6 &addresses = addresses6_[id];
    entry.forward_tuple = packed(flow.forward, addresses.forward_source, addresses.forward_destination);
    entry.reverse_tuple = packed(flow.reverse, addresses.reverse_source, addresses.reverse_destination);
    entry.addresses6 = flow.forward.family == 4 && flow.reverse.family == 4 ? nullptr : &addresses;
    entry.last_seen = now;
    entry.state = flow.state;
    entry.client_port = flow.client_port;
    entry.reverse_indexed = flow.reverse_indexed;
    entry.timeout_profile = flow.timeout_profile;
    entry.backend = flow.backend;
    entry.client_mac = flow.client_mac;
    entry.sums = rewrite_sums(flow.forward, flow.reverse);
}

void FlowTable::set_timeouts(TimeoutProfile profile, const FlowTimeouts &timeouts) {
    uint32_t *of_state = timeout_of_[profile];
    of_state[uint8_t(FlowState::syn_seen)] = timeouts.syn_seen;
    of_state[uint8_t(FlowState::established)] = timeouts.established;
    of_state[uint8_t(FlowState::closing)] = timeouts.closing;
    of_state[uint8_t(FlowState::udp)] = timeouts.udp;
    of_state[uint8_t(FlowState::reset_sent)] = timeouts.closing;
}

void FlowTable::touch(FlowId id, FlowState state, uint32_t now) {
    // Ignoring a stale id keeps a vacant Flow from coming back to life
    // outside the buckets (and later being freed twice).
    if (id >= capacity_ || !live(flows_[id]))
        return;
    flows_[id].state = state;
    flows_[id].last_seen = now;
}

void FlowTable::remove(FlowId id) {
    // A second remove() of the same id would push it on the free stack twice.
    if (id >= capacity_ || !live(flows_[id]))
        return;
    FlowEntry &flow = flows_[id];
    if (flow.backend < max_backend_slots)
        ended_by_backend_[flow.backend].increment();
    unplace(hash(flow.forward()), id);
    if (flow.reverse_indexed)
        unplace(hash(flow.reverse()), id);
    flow.state = vacant;
    free_ids_[free_count_++] = id;
    size_.store(size_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

uint32_t FlowTable::expire(uint32_t now, uint32_t budget) {
    // `budget` counts ids examined, not flows removed: a call costs at most
    // `budget` Flow reads (plus the removals), however few flows have expired.
    if (budget > capacity_)
        budget = capacity_;
    uint32_t removed = 0;
    for (; budget > 0 && size() > 0; --budget) {
        const FlowId id = expiry_cursor_;
        expiry_cursor_ = id + 1 == capacity_ ? 0 : id + 1;
        const FlowEntry &flow = flows_[id];
        if (live(flow) && expired(flow, now)) {
            remove(id);
            ++removed;
        }
    }
    return removed;
}

size_t FlowTable::bytes_per_flow() {
    // Per flow of capacity, at most: its entry, its free-stack entry, and
    // its share of the buckets: 2 keys × 8-byte slot / 60% load = 26.7
    // bytes, doubled in the worst case by the power-of-two rounding (a
    // capacity just above 12/5 × 2^k); so 95 to 122 bytes in all. The IPv6
    // addresses (64 more) are reserved too but only occupy memory where
    // IPv6 flows have written them, hence not counted here.
    constexpr size_t slot_bytes = sizeof(Bucket) / slots_per_bucket;
    constexpr size_t worst_bucket_bytes =
        (2 * slot_bytes * 2 * max_load_den + max_load_num - 1) / max_load_num;
    return sizeof(FlowEntry) + sizeof(uint32_t) + worst_bucket_bytes;
}

} // namespace sluice::lb
