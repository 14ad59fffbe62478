// The sender's SACK scoreboard (RFC 6675 3): blocks merged and kept in
// order, what the cumulative ACK covers dropped, old and bogus blocks
// ignored, and the holes between the blocks found in order.
#include "dataplane/tcp_sack_scoreboard.h"

#include <gtest/gtest.h>

namespace sluice::tcp {
namespace {

constexpr uint32_t una = 0xfffff000;  // near the wrap, on purpose

void update(SackScoreboard &board, uint32_t ack, std::initializer_list<SackBlock> blocks) {
    board.update(ack, una + 100'000, blocks.begin(), blocks.size());
}

TEST(TcpSackScoreboard, BlocksMergeAndTheHolesBetweenThemShow) {
    SackScoreboard board;
    update(board, una, {{una + 1000, una + 2000}});
    update(board, una, {{una + 3000, una + 4000}, {una + 1000, una + 2000}});
    update(board, una, {{una + 2000, una + 2500}});  // joins the first
    EXPECT_EQ(board.sacked_bytes(), 2500u);
    EXPECT_EQ(board.highest(una), una + 4000);
    uint32_t seq = 0, end = 0;
    ASSERT_TRUE(board.next_hole(una, una, seq, end));
    EXPECT_EQ(seq, una);
    EXPECT_EQ(end, una + 1000);
    ASSERT_TRUE(board.next_hole(una, una + 1000, seq, end));
    EXPECT_EQ(seq, una + 2500);
    EXPECT_EQ(end, una + 3000);
    EXPECT_FALSE(board.next_hole(una, una + 3000, seq, end));  // nothing above the last block
    EXPECT_EQ(board.unsacked_between(una, una + 4000), 1500u);
    EXPECT_EQ(board.unsacked_between(una + 500, una + 3500), 1000u);
}

TEST(TcpSackScoreboard, TheCumulativeAckTrimsAndOldOrBogusBlocksAreIgnored) {
    SackScoreboard board;
    update(board, una, {{una + 1000, una + 2000}, {una + 3000, una + 4000}});
    // The hole filled up to 1500: the first block is cut, not dropped.
    update(board, una + 1500, {});
    EXPECT_EQ(board.sacked_bytes(), 1500u);
    uint32_t seq = 0, end = 0;
    ASSERT_TRUE(board.next_hole(una + 1500, una + 1500, seq, end));
    EXPECT_EQ(seq, una + 2000);
    // A D-SACK below the ACK (RFC 2883), a block past what was sent, a
    // block with its edges swapped: none counts.
    update(board, una + 1500, {{una, una + 1000}, {una + 200'000, una + 201'000},
                               {una + 6000, una + 5000}});
    EXPECT_EQ(board.sacked_bytes(), 1500u);
    update(board, una + 4000, {});
    EXPECT_TRUE(board.empty());
    EXPECT_EQ(board.highest(una + 4000), una + 4000);
}

TEST(TcpSackScoreboard, AFullBoardKeepsWhatItHas) {
    SackScoreboard board;
    for (uint32_t i = 0; i < SackScoreboard::max_ranges + 4; ++i)
        update(board, una, {{una + 1000 * (2 * i + 1), una + 1000 * (2 * i + 2)}});
    EXPECT_EQ(board.sacked_bytes(), 1000u * SackScoreboard::max_ranges);
    // Joining ranges still works when full.
    update(board, una, {{una + 1000, una + 5000}});
    EXPECT_EQ(board.sacked_bytes(), 1000u * (SackScoreboard::max_ranges - 2) + 4000u);
}

} // namespace
} // namespace sluice::tcp
