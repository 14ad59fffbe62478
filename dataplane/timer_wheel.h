// A hashed timing wheel (Varghese and Lauck, 1987): one wheel of 1 ms ticks
// and 4096 buckets, whose entries further away than one turn (4.096 s) wait
// in their bucket for later rounds. Filing, moving and removing an entry are
// O(1); expire() visits only the buckets whose ticks came, and each entry
// once per turn of the wheel it waits; next_us() finds the first bucket
// that holds an entry of this round through a bitmap of the buckets that
// hold any. Entries are ids below a capacity fixed when the wheel is made
// (the endpoint's slots), their links in arrays: nothing is allocated after
// construction.
//
// An entry fires at the first tick at or after its deadline: never early,
// late by less than one tick. The earliest filing is kept once found, so
// that expire() with nothing due, as on most turns of a worker's loop,
// only moves the cursor.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sluice::tcp {

class TimerWheel {
public:
    static constexpr uint64_t tick_us = 1000;
    static constexpr uint32_t bucket_count = 4096;  // a power of two
    static constexpr uint32_t none = UINT32_MAX;

    explicit TimerWheel(uint32_t ids);

    // Files `id` to fire at at_us (> 0), in place of any earlier filing.
    void file(uint32_t id, uint64_t at_us);
    // Files `id` at at_us unless it is filed to fire by then already.
    // True when it was (re)filed.
    bool file_if_earlier(uint32_t id, uint64_t at_us);
    void remove(uint32_t id);
    bool filed(uint32_t id) const { return links_[id].tick != 0; }

    // Takes out every entry whose tick came by now_us, appending its id to
    // `due` (whose capacity the caller keeps).
    void expire(uint64_t now_us, std::vector<uint32_t> &due);

    // When the earliest entry fires (a tick boundary), 0 when none is filed.
    // Found from the cursor through the bitmap, and kept until the entry
    // at it is removed or expire() moves the cursor.
    uint64_t next_us() const;

    size_t size() const { return count_; }

private:
    struct Link {
        uint64_t tick = 0;  // 0: not filed
        uint32_t prev = none, next = none;
    };
    static constexpr uint32_t word_count = bucket_count / 64;

    void link(uint32_t id, uint64_t tick);
    void unlink(uint32_t id);
    // The first bucket in [from, to) that holds entries, or `to`.
    uint32_t next_occupied(uint32_t from, uint32_t to) const;
    void expire_bucket(uint32_t bucket, uint64_t target, std::vector<uint32_t> &due);
    uint64_t find_next_tick() const;

    std::vector<Link> links_;
    std::vector<uint32_t> heads_;
    // The earliest tick filed in each bucket.
    std::vector<uint64_t> bucket_min_;
    std::array<uint64_t, word_count> occupied_{};
    uint64_t cursor_ = 0;  // the first tick not yet expired
    size_t count_ = 0;
    // The earliest tick filed (UINT64_MAX: none) while next_known_: filing
    // lowers it, removing the entry at it or expiring it forgets it.
    mutable uint64_t next_tick_ = UINT64_MAX;
    mutable bool next_known_ = true;
};

} // namespace sluice::tcp
