#include "dataplane/tcp_sack_scoreboard.h"

#include <algorithm>

#include "dataplane/tcp_connection.h"

namespace sluice::tcp {

void SackScoreboard::update(uint32_t una, uint32_t snd_max, const SackBlock *blocks,
                            size_t count) {
    // What the cumulative ACK now covers leaves the board.
    size_t gone = 0;
    while (gone < count_ && seq_le(ranges_[gone].right, una))
        ++gone;
    if (gone > 0) {
        std::move(ranges_ + gone, ranges_ + count_, ranges_);
        count_ -= gone;
    }
    if (count_ > 0 && seq_lt(ranges_[0].left, una))
        ranges_[0].left = una;
    for (size_t i = 0; i < count; ++i) {
        const SackBlock &block = blocks[i];
        if (!seq_lt(block.left, block.right) || seq_le(block.right, una) ||
            seq_gt(block.right, snd_max))
            continue;
        insert(seq_lt(block.left, una) ? una : block.left, block.right);
    }
    bytes_ = 0;
    for (size_t i = 0; i < count_; ++i)
        bytes_ += ranges_[i].right - ranges_[i].left;
}

void SackScoreboard::insert(uint32_t left, uint32_t right) {
    // Merge with every range it touches; keep them sorted by left edge.
    size_t first = 0;
    while (first < count_ && seq_lt(ranges_[first].right, left))
        ++first;
    size_t last = first;
    while (last < count_ && seq_le(ranges_[last].left, right)) {
        left = seq_lt(ranges_[last].left, left) ? ranges_[last].left : left;
        right = seq_gt(ranges_[last].right, right) ? ranges_[last].right : right;
        ++last;
    }
    const size_t merged = last - first;
    if (merged == 0 && count_ == max_ranges)
        return;
    if (merged == 0) {
        std::move_backward(ranges_ + first, ranges_ + count_, ranges_ + count_ + 1);
        ++count_;
    } else if (merged > 1) {
        std::move(ranges_ + last, ranges_ + count_, ranges_ + first + 1);
        count_ -= merged - 1;
    }
    ranges_[first] = {left, right};
}

void SackScoreboard::clear() {
    count_ = 0;
    bytes_ = 0;
}

bool SackScoreboard::next_hole(uint32_t una, uint32_t from, uint32_t &seq,
                               uint32_t &end) const {
    uint32_t at = seq_gt(from, una) ? from : una;
    for (size_t i = 0; i < count_; ++i) {
        if (seq_lt(at, ranges_[i].left)) {
            seq = at;
            end = ranges_[i].left;
            return true;
        }
        if (seq_lt(at, ranges_[i].right))
            at = ranges_[i].right;
    }
    return false;
}

uint32_t SackScoreboard::unsacked_between(uint32_t from, uint32_t to) const {
    if (!seq_lt(from, to))
        return 0;
    uint32_t bytes = to - from;
    for (size_t i = 0; i < count_; ++i) {
        const uint32_t left = seq_gt(ranges_[i].left, from) ? ranges_[i].left : from;
        const uint32_t right = seq_lt(ranges_[i].right, to) ? ranges_[i].right : to;
        if (seq_lt(left, right))
            bytes -= right - left;
    }
    return bytes;
}

} // namespace sluice::tcp
