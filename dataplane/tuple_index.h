// An index from a keyed hash to small ids (the endpoint's connection slots
// and TIME-WAIT entries): open addressing with linear probing in a table
// of at least twice as many entries as ids, sized once, so that a lookup
// reads one or two cache lines and nothing is allocated per key. Each
// entry keeps 32 bits of its key's hash, to skip most keys that are not
// the one sought without reading them, and its id; the caller compares
// the key itself. Deletion shifts the entries after the deleted one back
// (Knuth 6.4, algorithm R), so no tombstones accumulate under churn.
//
// The hash must be keyed (SipHash under the worker's secret): with a known
// hash function, crafted tuples could all land in one run of the table and
// make every lookup walk it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sluice::tcp {

class TupleIndex {
public:
    static constexpr uint32_t none = UINT32_MAX;

    explicit TupleIndex(size_t ids) {
        size_t size = 16;
        while (size < 2 * ids)
            size *= 2;
        entries_.assign(size, Entry{});
        mask_ = uint32_t(size - 1);
    }

    // The id whose key has `hash` and satisfies `matches(id)`, or none.
    template <class Matches>
    uint32_t find(uint64_t hash, Matches &&matches) const {
        const uint32_t h = uint32_t(hash);
        for (uint32_t i = h & mask_;; i = (i + 1) & mask_) {
            const Entry &e = entries_[i];
            if (e.id == none)
                return none;
            if (e.hash == h && matches(e.id))
                return e.id;
        }
    }

    // Adds `id` under `hash`; the caller keeps the ids below the count the
    // index was made for, and never adds a key twice.
    void insert(uint64_t hash, uint32_t id) {
        const uint32_t h = uint32_t(hash);
        uint32_t i = h & mask_;
        while (entries_[i].id != none)
            i = (i + 1) & mask_;
        entries_[i] = {h, id};
    }

    // Removes `id`, filed under `hash`.
    void erase(uint64_t hash, uint32_t id) {
        uint32_t i = uint32_t(hash) & mask_;
        while (entries_[i].id != id) {
            if (entries_[i].id == none)
                return;
            i = (i + 1) & mask_;
        }
        // Algorithm R: move back each later entry of the run whose home
        // is not between the hole and it (cyclically).
        for (uint32_t j = (i + 1) & mask_; entries_[j].id != none; j = (j + 1) & mask_) {
            const uint32_t home = entries_[j].hash & mask_;
            const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (stays)
                continue;
            entries_[i] = entries_[j];
            i = j;
        }
        entries_[i] = Entry{};
    }

    // How far the entry of `id` under `hash` sits from its home; for tests.
    size_t distance(uint64_t hash, uint32_t id) const {
        size_t d = 0;
        for (uint32_t i = uint32_t(hash) & mask_; entries_[i].id != id; i = (i + 1) & mask_)
            ++d;
        return d;
    }
    size_t capacity() const { return entries_.size(); }

private:
    struct Entry {
        uint32_t hash = 0;
        uint32_t id = none;
    };
    std::vector<Entry> entries_;
    uint32_t mask_ = 0;
};

} // namespace sluice::tcp
