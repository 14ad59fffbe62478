// Sequence numbers and sets of their ranges, as the userspace TCP keeps
// them. Sequence numbers compare modulo 2^32 (RFC 9293 3.4). A set of
// ranges holds sorted, disjoint [left, right) ranges, at most N of them,
// merged as they are added, with nothing allocated: the receiver's data
// held out of order and the sender's SACK scoreboard are both one.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace sluice::tcp {

inline bool seq_lt(uint32_t a, uint32_t b) { return int32_t(a - b) < 0; }
inline bool seq_le(uint32_t a, uint32_t b) { return int32_t(a - b) <= 0; }
inline bool seq_gt(uint32_t a, uint32_t b) { return int32_t(a - b) > 0; }
inline bool seq_ge(uint32_t a, uint32_t b) { return int32_t(a - b) >= 0; }

template <size_t N>
class SequenceRanges {
public:
    struct Range {
        uint32_t left, right;  // [left, right)
    };
    static constexpr size_t capacity = N;

    // Adds [left, right), merged with every range it touches, and returns
    // the left edge of the range it became part of. Returns nothing changed
    // (false) when it touches none and N ranges are held already.
    bool insert(uint32_t left, uint32_t right, uint32_t *joined = nullptr) {
        size_t first = 0;
        while (first < count_ && seq_lt(ranges_[first].right, left))
            ++first;
        size_t last = first;
        while (last < count_ && seq_le(ranges_[last].left, right)) {
            left = seq_lt(ranges_[last].left, left) ? ranges_[last].left : left;
            right = seq_gt(ranges_[last].right, right) ? ranges_[last].right : right;
            ++last;
        }
        // Ranges [first, last) become the one merged range.
        const size_t merged = last - first;
        if (merged == 0 && count_ == N)
            return false;
        if (merged == 0) {
            std::move_backward(ranges_ + first, ranges_ + count_, ranges_ + count_ + 1);
            ++count_;
        } else if (merged > 1) {
            std::move(ranges_ + last, ranges_ + count_, ranges_ + first + 1);
            count_ -= merged - 1;
        }
        ranges_[first] = {left, right};
        if (joined)
            *joined = left;
        recount();
        return true;
    }

    // Forgets everything below `seq`: whole ranges, and the part of one
    // that straddles it.
    void trim_below(uint32_t seq) {
        size_t gone = 0;
        while (gone < count_ && seq_le(ranges_[gone].right, seq))
            ++gone;
        if (gone > 0) {
            std::move(ranges_ + gone, ranges_ + count_, ranges_);
            count_ -= gone;
        }
        if (count_ > 0 && seq_lt(ranges_[0].left, seq))
            ranges_[0].left = seq;
        recount();
    }

    Range pop_front() {
        const Range front = ranges_[0];
        std::move(ranges_ + 1, ranges_ + count_, ranges_);
        --count_;
        recount();
        return front;
    }

    void clear() {
        count_ = 0;
        bytes_ = 0;
    }

    bool empty() const { return count_ == 0; }
    size_t size() const { return count_; }
    const Range &operator[](size_t i) const { return ranges_[i]; }
    // The bytes the ranges cover.
    uint32_t bytes() const { return bytes_; }

private:
    void recount() {
        bytes_ = 0;
        for (size_t i = 0; i < count_; ++i)
            bytes_ += ranges_[i].right - ranges_[i].left;
    }

    Range ranges_[N]{};
    size_t count_ = 0;
    uint32_t bytes_ = 0;
};

} // namespace sluice::tcp
