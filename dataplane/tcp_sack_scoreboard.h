// The sender's record of what the peer holds above SND.UNA, from the SACK
// blocks of its ACKs (RFC 6675 3): sorted, merged ranges of sequence
// numbers, a fixed number of them and nothing allocated. Loss recovery
// reads the holes between them to retransmit what is missing rather than
// only the first unacknowledged segment.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/tcp_ranges.h"
#include "dataplane/tcp_segment.h"

namespace sluice::tcp {

class SackScoreboard {
public:
    // Holes beyond this many ranges are not remembered: what a missing
    // range covers is only sent again needlessly.
    static constexpr size_t max_ranges = 16;
    using Ranges = SequenceRanges<max_ranges>;

    // One ACK's blocks: `una` is its cumulative ACK (what it covers is
    // dropped), `snd_max` the highest sequence number sent; blocks outside
    // (una, snd_max] are old (D-SACK, RFC 2883) or bogus and ignored.
    void update(uint32_t una, uint32_t snd_max, const SackBlock *blocks, size_t count);
    void clear() { ranges_.clear(); }

    bool empty() const { return ranges_.empty(); }
    uint32_t sacked_bytes() const { return ranges_.bytes(); }
    // The right edge of the highest range; `una` when empty.
    uint32_t highest(uint32_t una) const {
        return ranges_.empty() ? una : ranges_[ranges_.size() - 1].right;
    }
    // The first hole at or after `from` (and `una`) below the highest range:
    // [seq, end). False when there is none.
    bool next_hole(uint32_t una, uint32_t from, uint32_t &seq, uint32_t &end) const;
    // Bytes in [from, to) that no range covers.
    uint32_t unsacked_between(uint32_t from, uint32_t to) const;

private:
    Ranges ranges_;
};

} // namespace sluice::tcp
