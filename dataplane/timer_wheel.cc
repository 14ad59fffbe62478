#include "dataplane/timer_wheel.h"

#include <algorithm>

namespace sluice::tcp {

TimerWheel::TimerWheel(uint32_t ids)
    : links_(ids), heads_(bucket_count, none), bucket_min_(bucket_count, UINT64_MAX) {}

void TimerWheel::link(uint32_t id, uint64_t tick) {
    const uint32_t bucket = uint32_t(tick & (bucket_count - 1));
    Link &l = links_[id];
    l.tick = tick;
    l.prev = none;
    l.next = heads_[bucket];
    if (l.next != none)
        links_[l.next].prev = id;
    heads_[bucket] = id;
    bucket_min_[bucket] = std::min(bucket_min_[bucket], tick);
    occupied_[bucket / 64] |= 1ull << (bucket % 64);
    ++count_;
    if (next_known_ && tick < next_tick_)
        next_tick_ = tick;
}

void TimerWheel::unlink(uint32_t id) {
    Link &l = links_[id];
    const uint32_t bucket = uint32_t(l.tick & (bucket_count - 1));
    if (l.prev != none)
        links_[l.prev].next = l.next;
    else
        heads_[bucket] = l.next;
    if (l.next != none)
        links_[l.next].prev = l.prev;
    const uint64_t tick = l.tick;
    l = Link{};
    --count_;
    if (heads_[bucket] == none) {
        occupied_[bucket / 64] &= ~(1ull << (bucket % 64));
        bucket_min_[bucket] = UINT64_MAX;
    } else if (tick == bucket_min_[bucket]) {
        // Buckets are short (entries / bucket_count): keep the minimum exact.
        uint64_t least = UINT64_MAX;
        for (uint32_t i = heads_[bucket]; i != none; i = links_[i].next)
            least = std::min(least, links_[i].tick);
        bucket_min_[bucket] = least;
    }
    if (next_known_ && tick == next_tick_)
        next_known_ = false;  // found again when asked
}

void TimerWheel::file(uint32_t id, uint64_t at_us) {
    // The first tick at or after the deadline, and never one already past.
    const uint64_t tick = std::max((at_us + tick_us - 1) / tick_us, std::max<uint64_t>(cursor_, 1));
    if (links_[id].tick == tick)
        return;
    if (links_[id].tick)
        unlink(id);
    link(id, tick);
}

bool TimerWheel::file_if_earlier(uint32_t id, uint64_t at_us) {
    const uint64_t tick = std::max((at_us + tick_us - 1) / tick_us, std::max<uint64_t>(cursor_, 1));
    if (links_[id].tick && links_[id].tick <= tick)
        return false;
    file(id, at_us);
    return true;
}

void TimerWheel::remove(uint32_t id) {
    if (links_[id].tick)
        unlink(id);
}

uint32_t TimerWheel::next_occupied(uint32_t from, uint32_t to) const {
    while (from < to) {
        const uint64_t word = occupied_[from / 64] & (~0ull << (from % 64));
        if (word) {
            const uint32_t found = (from & ~63u) + uint32_t(__builtin_ctzll(word));
            return std::min(found, to);
        }
        from = (from & ~63u) + 64;
    }
    return to;
}

void TimerWheel::expire_bucket(uint32_t bucket, uint64_t target, std::vector<uint32_t> &due) {
    uint64_t kept_min = UINT64_MAX;
    for (uint32_t id = heads_[bucket]; id != none;) {
        const uint32_t next = links_[id].next;
        if (links_[id].tick <= target) {
            unlink(id);
            due.push_back(id);
        } else {
            kept_min = std::min(kept_min, links_[id].tick);  // a later round
        }
        id = next;
    }
    if (heads_[bucket] != none)
        bucket_min_[bucket] = kept_min;
}

void TimerWheel::expire(uint64_t now_us, std::vector<uint32_t> &due) {
    const uint64_t target = now_us / tick_us;
    if (target < cursor_)
        return;
    if (next_known_ && next_tick_ > target) {
        // Nothing filed comes by then (next_tick_ is the earliest filing):
        // the cursor moves and the answer of next_us() stays.
        cursor_ = target + 1;
        return;
    }
    if (count_) {
        const uint64_t span = target - cursor_ + 1;
        const uint32_t first = uint32_t(cursor_ & (bucket_count - 1));
        // The buckets of ticks cursor_..target: all of them after a long
        // pause, else the range from `first`, wrapping past the end.
        const uint32_t length = span >= bucket_count ? bucket_count : uint32_t(span);
        const uint32_t end = first + length;
        for (uint32_t b = next_occupied(first, std::min(end, bucket_count)); b < std::min(end, bucket_count);
             b = next_occupied(b + 1, std::min(end, bucket_count)))
            expire_bucket(b, target, due);
        if (end > bucket_count) {
            const uint32_t wrapped = end - bucket_count;
            for (uint32_t b = next_occupied(0, wrapped); b < wrapped; b = next_occupied(b + 1, wrapped))
                expire_bucket(b, target, due);
        }
    }
    cursor_ = target + 1;
    next_known_ = false;
}

uint64_t TimerWheel::find_next_tick() const {
    if (!count_)
        return UINT64_MAX;
    // Buckets in the order their ticks come from the cursor: the first whose
    // earliest entry is of this round holds the answer; if none is, every
    // entry is a round or more away and the answer is the least of them.
    const uint32_t first = uint32_t(cursor_ & (bucket_count - 1));
    uint64_t least = UINT64_MAX;
    for (uint32_t pass = 0; pass < 2; ++pass) {
        const uint32_t from = pass == 0 ? first : 0;
        const uint32_t to = pass == 0 ? bucket_count : first;
        for (uint32_t b = next_occupied(from, to); b < to; b = next_occupied(b + 1, to)) {
            const uint64_t this_round = cursor_ + ((b - first) & (bucket_count - 1));
            if (bucket_min_[b] <= this_round)
                return std::min(least, bucket_min_[b]);
            least = std::min(least, bucket_min_[b]);
        }
    }
    return least;
}

uint64_t TimerWheel::next_us() const {
    if (!next_known_) {
        next_tick_ = find_next_tick();
        next_known_ = true;
    }
    return next_tick_ == UINT64_MAX ? 0 : next_tick_ * tick_us;
}

} // namespace sluice::tcp
