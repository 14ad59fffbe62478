// The TCP segment codec on its promises: what it writes it parses back (with
// only the SACK blocks that do not fit left out), each malformed header is
// refused with its own reason, no prefix of a segment is read past its end,
// and the checksum matches segments that scapy built and summed.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/byte_order.h"
#include "dataplane/tcp_segment.h"

namespace sluice::tcp {
namespace {

using Bytes = std::vector<uint8_t>;

// A Linux-style SYN, 198.18.0.2:40000 → 198.18.0.1:80, [mss 1460, sackOK,
// TS val 2882400001 ecr 0, nop, wscale 7], built and summed by scapy 2.5:
//   IP(src=..., dst=...)/TCP(sport=40000, dport=80, seq=0x12345678, flags="S",
//     window=64240, options=[("MSS",1460),("SAckOK",b""),
//     ("Timestamp",(2882400001,0)),("NOP",None),("WScale",7)])
const uint8_t v4_source[4] = {198, 18, 0, 2};
const uint8_t v4_destination[4] = {198, 18, 0, 1};
const Bytes v4_syn = {
    0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02,
    0xfa, 0xf0, 0x20, 0xdb, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a,
    0xab, 0xcd, 0xef, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07};
constexpr uint16_t v4_syn_checksum = 0x20db;

// PSH|ACK with "hello" (odd length), 2001:db8:0:1::2:40000 → 2001:db8:0:1::1:443,
// [nop, nop, TS val 1 ecr 2, nop, nop, sack 3000-4000 5000-6000], by scapy.
const uint8_t v6_source[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2};
const uint8_t v6_destination[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
const Bytes v6_data = {
    0x9c, 0x40, 0x01, 0xbb, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x07, 0xd0, 0xd0, 0x18, 0x01,
    0xf5, 0x8f, 0x44, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x02, 0x01, 0x01, 0x05, 0x12, 0x00, 0x00, 0x0b, 0xb8, 0x00, 0x00, 0x0f, 0xa0, 0x00,
    0x00, 0x13, 0x88, 0x00, 0x00, 0x17, 0x70, 0x68, 0x65, 0x6c, 0x6c, 0x6f};
constexpr uint16_t v6_data_checksum = 0x8f44;

// The checksum as a number, however segment_checksum lays it out in memory.
uint16_t as_number(uint16_t field) {
    uint8_t bytes[2];
    std::memcpy(bytes, &field, 2);
    return read_be16(bytes);
}

Bytes without_checksum(Bytes b) {
    b[16] = b[17] = 0;
    return b;
}

// The first 20 bytes of a header with `options` (padded by the caller) and
// the data offset that covers them.
Bytes header_with_options(const Bytes &options, const Bytes &payload = {}) {
    EXPECT_TRUE(options.size() % 4 == 0 && options.size() <= 40) << "test's own options";
    Bytes b = {0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0};
    b[12] = uint8_t((20 + options.size()) / 4 << 4);
    b.insert(b.end(), options.begin(), options.end());
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

SegmentError parse(const Bytes &b, TcpSegment &out) {
    // A heap copy of exactly the bytes, so ASan sees any read past them.
    std::unique_ptr<uint8_t[]> copy(new uint8_t[b.size()]);
    if (!b.empty())
        std::memcpy(copy.get(), b.data(), b.size());
    return parse_segment(copy.get(), b.size(), out);
}

Bytes written(const TcpHeader &h) {
    Bytes b(60, 0xee);
    b.resize(write_header(h, b.data()));
    return b;
}

TEST(TcpSegment, ParsesALinuxSyn) {
    TcpSegment s;
    ASSERT_EQ(parse(v4_syn, s), SegmentError::none);
    EXPECT_EQ(s.header.source_port, 40000);
    EXPECT_EQ(s.header.destination_port, 80);
    EXPECT_EQ(s.header.seq, 0x12345678u);
    EXPECT_EQ(s.header.ack, 0u);
    EXPECT_EQ(s.header.flags, flag::syn);
    EXPECT_EQ(s.header.window, 64240);
    EXPECT_EQ(s.header.options.mss, 1460);
    EXPECT_TRUE(s.header.options.sack_permitted);
    EXPECT_EQ(s.header.options.timestamp, std::pair(2882400001u, 0u));
    EXPECT_EQ(s.header.options.window_scale, 7);
    EXPECT_EQ(s.header.options.sack_count, 0);
    EXPECT_EQ(s.header_length, 40);
    EXPECT_EQ(s.payload_offset, 40);
    EXPECT_EQ(s.payload_length, 0);
}

TEST(TcpSegment, WritesTheSynLikeLinux) {
    TcpSegment s;
    ASSERT_EQ(parse(v4_syn, s), SegmentError::none);
    EXPECT_EQ(written(s.header), without_checksum(v4_syn));
}

TEST(TcpSegment, WritesSackAfterTimestampsLikeScapy) {
    TcpSegment s;
    ASSERT_EQ(parse(v6_data, s), SegmentError::none);
    ASSERT_EQ(s.header.options.sack_count, 2);
    EXPECT_EQ(s.header.options.sack[1], (SackBlock{5000, 6000}));
    EXPECT_EQ(s.payload_offset, 52);
    EXPECT_EQ(s.payload_length, 5);
    const Bytes header(v6_data.begin(), v6_data.begin() + 52);
    EXPECT_EQ(written(s.header), without_checksum(header));
}

TEST(TcpSegment, ChecksumIpv4) {
    EXPECT_EQ(segment_checksum(v4_source, v4_destination, false, v4_syn.data(), v4_syn.size()),
              0);
    const Bytes zeroed = without_checksum(v4_syn);
    EXPECT_EQ(as_number(segment_checksum(v4_source, v4_destination, false, zeroed.data(),
                                         zeroed.size())),
              v4_syn_checksum);
}

TEST(TcpSegment, ChecksumIpv6WithOddPayload) {
    EXPECT_EQ(segment_checksum(v6_source, v6_destination, true, v6_data.data(), v6_data.size()),
              0);
    const Bytes zeroed = without_checksum(v6_data);
    const uint16_t sum =
        segment_checksum(v6_source, v6_destination, true, zeroed.data(), zeroed.size());
    EXPECT_EQ(as_number(sum), v6_data_checksum);
    // memcpy'd into the field, it is the bytes scapy wrote.
    Bytes stored = zeroed;
    std::memcpy(stored.data() + 16, &sum, 2);
    EXPECT_EQ(stored, v6_data);
}

TEST(TcpSegment, ChecksumSeesOneFlippedBit) {
    Bytes b = v6_data;
    b.back() ^= 0x01;
    EXPECT_NE(segment_checksum(v6_source, v6_destination, true, b.data(), b.size()), 0);
    EXPECT_NE(segment_checksum(v6_destination, v6_source, false, v4_syn.data(), v4_syn.size()),
              0);
}

// Every combination of MSS, WS, SACK-permitted, TS and 0-4 SACK blocks.
TEST(TcpSegment, RoundTripsEveryOptionCombination) {
    int combinations = 0;
    for (unsigned mask = 0; mask < 16; ++mask) {
        for (uint8_t blocks = 0; blocks <= max_sack_blocks; ++blocks) {
            TcpHeader h;
            h.source_port = 443;
            h.destination_port = 51000;
            h.seq = 0xfedcba98;
            h.ack = 0x01020304;
            h.flags = flag::ack | flag::psh | flag::ece | flag::cwr;
            h.window = 0x1234;
            h.urgent = 0x0a0b;
            if (mask & 1)
                h.options.mss = 8960;
            if (mask & 2)
                h.options.window_scale = 14;
            if (mask & 4)
                h.options.sack_permitted = true;
            if (mask & 8)
                h.options.timestamp = std::pair(0xdeadbeefu, 0x01234567u);
            h.options.sack_count = blocks;
            for (uint8_t i = 0; i < blocks; ++i)
                h.options.sack[i] = {1000u * i + 1, 1000u * i + 500};
            SCOPED_TRACE("mask " + std::to_string(mask) + " blocks " + std::to_string(blocks));

            const Bytes b = written(h);
            EXPECT_EQ(b.size(), 20 + options_length(h.options));
            EXPECT_EQ(b.size() % 4, 0u);
            EXPECT_LE(b.size(), 60u);
            TcpSegment s;
            ASSERT_EQ(parse(b, s), SegmentError::none);
            EXPECT_EQ(s.header_length, b.size());
            EXPECT_EQ(s.payload_length, 0);

            // Only SACK blocks may be lost, and only from the end.
            TcpHeader expected = h;
            const size_t fixed = ((mask & 1) ? 4 : 0) + ((mask & 8) ? 12 : (mask & 4) ? 4 : 0) +
                                 ((mask & 2) ? 4 : 0);
            const size_t fit = std::min<size_t>(blocks, (40 - fixed - 4) / 8);
            expected.options.sack_count = uint8_t(fit);
            for (size_t i = fit; i < max_sack_blocks; ++i)
                expected.options.sack[i] = {};
            EXPECT_EQ(s.header, expected);
            ++combinations;
        }
    }
    EXPECT_EQ(combinations, 80);
}

TEST(TcpSegment, SackBlocksThatDoNotFitAreDroppedFromTheEnd) {
    TcpOptions o;
    o.sack_count = 4;
    o.sack = {SackBlock{1, 2}, SackBlock{3, 4}, SackBlock{5, 6}, SackBlock{7, 8}};
    EXPECT_EQ(options_length(o), 36u);  // all four alone

    o.timestamp = std::pair(1u, 2u);
    EXPECT_EQ(options_length(o), 40u);  // TS 12 + three blocks 28
    TcpHeader h;
    h.options = o;
    TcpSegment s;
    ASSERT_EQ(parse(written(h), s), SegmentError::none);
    ASSERT_EQ(s.header.options.sack_count, 3);
    EXPECT_EQ(s.header.options.sack[2], (SackBlock{5, 6}));
    EXPECT_EQ(s.header.options.sack[3], (SackBlock{}));
    EXPECT_EQ(s.header.options.timestamp, std::pair(1u, 2u));

    // With everything a SYN carries (20 bytes), two blocks still fit.
    h.options.mss = 1460;
    h.options.window_scale = 7;
    h.options.sack_permitted = true;
    EXPECT_EQ(options_length(h.options), 40u);
    ASSERT_EQ(parse(written(h), s), SegmentError::none);
    EXPECT_EQ(s.header.options.sack_count, 2);
    EXPECT_EQ(s.header.options.sack[1], (SackBlock{3, 4}));

    // A count beyond the array is taken as the array.
    TcpHeader many;
    many.options.sack_count = 200;
    EXPECT_EQ(options_length(many.options), 36u);
    ASSERT_EQ(parse(written(many), s), SegmentError::none);
    EXPECT_EQ(s.header.options.sack_count, 4);
}

struct Malformed {
    const char *description;
    Bytes segment;
    SegmentError error;
};

std::vector<Malformed> malformed() {
    Bytes offset4 = header_with_options({});
    offset4[12] = 0x40;
    Bytes offset0 = header_with_options({});
    offset0[12] = 0x0f;  // the low bits are not the offset
    Bytes offset6_short = header_with_options({});
    offset6_short[12] = 0x60;
    Bytes offset15_short = header_with_options(Bytes(36, 1));
    offset15_short[12] = 0xf0;
    Bytes too_long = header_with_options({}, Bytes(65536 - 20, 0));
    Bytes short19 = header_with_options({});
    short19.pop_back();
    return {
        {"empty", {}, SegmentError::truncated},
        {"19 bytes", short19, SegmentError::truncated},
        {"data offset 4", offset4, SegmentError::bad_data_offset},
        {"data offset 0", offset0, SegmentError::bad_data_offset},
        {"data offset 6, 20 bytes", offset6_short, SegmentError::truncated},
        {"data offset 15, 56 bytes", offset15_short, SegmentError::truncated},
        {"more than 65535 bytes", too_long, SegmentError::too_long},
        {"unknown option of length 0", header_with_options({30, 0, 1, 1}), SegmentError::bad_option},
        {"unknown option of length 1", header_with_options({30, 1, 1, 1}), SegmentError::bad_option},
        {"MSS of length 1", header_with_options({2, 1, 1, 1}), SegmentError::bad_option},
        {"kind without a length byte", header_with_options({1, 1, 1, 2}), SegmentError::bad_option},
        {"unknown kind without a length byte", header_with_options({1, 1, 1, 99}),
         SegmentError::bad_option},
        {"MSS running past the header", header_with_options({1, 1, 2, 4}), SegmentError::bad_option},
        {"unknown option running past the header", header_with_options({99, 10, 0, 0}),
         SegmentError::bad_option},
        {"MSS of length 3", header_with_options({2, 3, 5, 1}), SegmentError::bad_option},
        {"MSS of length 6", header_with_options({2, 6, 5, 0xb4, 0, 0, 1, 1}),
         SegmentError::bad_option},
        {"WS of length 2", header_with_options({3, 2, 1, 1}), SegmentError::bad_option},
        {"WS of length 4", header_with_options({3, 4, 7, 0}), SegmentError::bad_option},
        {"SACK-permitted of length 3", header_with_options({4, 3, 0, 1}), SegmentError::bad_option},
        {"SACK-permitted of length 4", header_with_options({4, 4, 0, 0}), SegmentError::bad_option},
        {"TS of length 8", header_with_options({8, 8, 0, 0, 0, 1, 0, 0}), SegmentError::bad_option},
        {"TS of length 12", header_with_options({8, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0}),
         SegmentError::bad_option},
        {"SACK with no block", header_with_options({5, 2, 1, 1}), SegmentError::bad_option},
        {"SACK of length 9", header_with_options({5, 9, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1}),
         SegmentError::bad_option},
        {"SACK of length 11", header_with_options({5, 11, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1}),
         SegmentError::bad_option},
        {"SACK of five blocks running past 40 bytes", header_with_options([] {
             Bytes o = {5, 42};
             o.resize(40, 0);
             return o;
         }()),
         SegmentError::bad_option},
        {"bad option after a good one", header_with_options({2, 4, 5, 0xb4, 3, 4, 7, 0}),
         SegmentError::bad_option},
        {"bad repeat of a known option", header_with_options({2, 4, 5, 0xb4, 2, 3, 0, 1}),
         SegmentError::bad_option},
    };
}

TEST(TcpSegment, RefusesMalformedSegmentsWithTheirReason) {
    for (const Malformed &m : malformed()) {
        SCOPED_TRACE(m.description);
        TcpSegment s;
        s.header.seq = 77;
        EXPECT_EQ(parse(m.segment, s), m.error) << to_string(parse(m.segment, s));
        EXPECT_EQ(s.header.seq, 77u);  // not written on error
    }
}

TEST(TcpSegment, AcceptsOddButValidOptions) {
    TcpSegment s;
    // EOL ends the list; what follows it is not options, even when malformed.
    ASSERT_EQ(parse(header_with_options({2, 4, 5, 0xb4, 0, 2, 0, 99}), s), SegmentError::none);
    EXPECT_EQ(s.header.options.mss, 1460);
    EXPECT_FALSE(s.header.options.window_scale);

    // Unknown kinds are skipped by their length (here 30, MPTCP-like, 6 bytes).
    ASSERT_EQ(parse(header_with_options({30, 6, 9, 9, 9, 9, 3, 3, 5, 1, 0, 0}), s), SegmentError::none);
    EXPECT_EQ(s.header.options.window_scale, 5);

    // A repeated known option keeps its first value.
    ASSERT_EQ(parse(header_with_options({2, 4, 5, 0xb4, 2, 4, 0x23, 0x28, 3, 3, 2, 3, 3, 9, 1, 1}),
                    s),
              SegmentError::none);
    EXPECT_EQ(s.header.options.mss, 1460);
    EXPECT_EQ(s.header.options.window_scale, 2);
    ASSERT_EQ(parse(header_with_options({5, 10, 0, 0, 0, 1, 0, 0, 0, 2,  //
                                         5, 10, 0, 0, 0, 3, 0, 0, 0, 4,  //
                                         8, 10, 0, 0, 0, 7, 0, 0, 0, 8,  //
                                         8, 10, 0, 0, 0, 9, 0, 0, 0, 10}),
                    s),
              SegmentError::none);
    EXPECT_EQ(s.header.options.sack_count, 1);
    EXPECT_EQ(s.header.options.sack[0], (SackBlock{1, 2}));
    EXPECT_EQ(s.header.options.sack[1], (SackBlock{}));
    EXPECT_EQ(s.header.options.timestamp, std::pair(7u, 8u));

    // An option may end exactly at the header's end; all NOPs are fine.
    ASSERT_EQ(parse(header_with_options({1, 1, 1, 1, 1, 1, 4, 2}), s), SegmentError::none);
    EXPECT_TRUE(s.header.options.sack_permitted);

    // A reused TcpSegment does not keep the last segment's options.
    ASSERT_EQ(parse(header_with_options({}, {'x'}), s), SegmentError::none);
    EXPECT_EQ(s.header.options, TcpOptions{});
    EXPECT_EQ(s.payload_offset, 20);
    EXPECT_EQ(s.payload_length, 1);

    // The largest segment there is.
    ASSERT_EQ(parse(header_with_options({}, Bytes(65535 - 20, 0)), s), SegmentError::none);
    EXPECT_EQ(s.payload_length, 65535 - 20);
}

// Each prefix of a segment with options and payload, in a heap buffer of
// exactly its length: refused as truncated while the header is cut, parsed
// (with a shorter payload) once it is whole. Under ASan an over-read fails.
TEST(TcpSegment, EveryPrefixIsParsedOrRefusedWithoutOverreading) {
    for (const Bytes *whole : {&v4_syn, &v6_data}) {
        const size_t header_length = size_t((*whole)[12] >> 4) * 4;
        for (size_t n = 0; n <= whole->size(); ++n) {
            SCOPED_TRACE("prefix " + std::to_string(n));
            const Bytes prefix(whole->begin(), whole->begin() + long(n));
            TcpSegment s;
            const SegmentError error = parse(prefix, s);
            if (n < header_length) {
                EXPECT_EQ(error, SegmentError::truncated);
            } else {
                ASSERT_EQ(error, SegmentError::none);
                EXPECT_EQ(s.payload_length, n - header_length);
            }
        }
    }
}

TEST(TcpSegment, ErrorsHaveDistinctNames) {
    const SegmentError all[] = {SegmentError::none, SegmentError::truncated,
                                SegmentError::bad_data_offset, SegmentError::bad_option,
                                SegmentError::too_long};
    for (SegmentError a : all) {
        for (SegmentError b : all) {
            if (a != b) {
                EXPECT_STRNE(to_string(a), to_string(b));
            }
        }
    }
}

} // namespace
} // namespace sluice::tcp
