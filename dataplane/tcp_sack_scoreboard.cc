#include "dataplane/tcp_sack_scoreboard.h"

namespace sluice::tcp {

void SackScoreboard::update(uint32_t una, uint32_t snd_max, const SackBlock *blocks,
                            size_t count) {
    // What the cumulative ACK now covers leaves the board.
    ranges_.trim_below(una);
    // Holes beyond max_ranges are not remembered (insert() refuses them):
    // what a missing range covers is only sent again needlessly.
    for (size_t i = 0; i < count; ++i) {
        const SackBlock &block = blocks[i];
        if (!seq_lt(block.left, block.right) || seq_le(block.right, una) ||
            seq_gt(block.right, snd_max))
            continue;
        ranges_.insert(seq_lt(block.left, una) ? una : block.left, block.right);
    }
}

bool SackScoreboard::next_hole(uint32_t una, uint32_t from, uint32_t &seq,
                               uint32_t &end) const {
    uint32_t at = seq_gt(from, una) ? from : una;
    for (size_t i = 0; i < ranges_.size(); ++i) {
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
    for (size_t i = 0; i < ranges_.size(); ++i) {
        const uint32_t left = seq_gt(ranges_[i].left, from) ? ranges_[i].left : from;
        const uint32_t right = seq_lt(ranges_[i].right, to) ? ranges_[i].right : to;
        if (seq_lt(left, right))
            bytes -= right - left;
    }
    return bytes;
}

} // namespace sluice::tcp
