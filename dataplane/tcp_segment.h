// A TCP segment's header and options as the userspace TCP reads and writes
// them (RFC 9293 3.1; MSS, window scale, SACK-permitted and SACK blocks from
// RFC 9293 3.2 / RFC 7323 2 / RFC 2018; timestamps from RFC 7323 3). Plain
// bytes, no EAL: the connection logic, the unit tests and the fuzzer use it
// directly. Parsing checks every length before reading and never reads past
// `length`; a malformed segment is refused with its reason.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>

namespace sluice::tcp {

// A SACK block (RFC 2018 3): [left, right) in sequence space.
struct SackBlock {
    uint32_t left = 0;
    uint32_t right = 0;

    bool operator==(const SackBlock &) const = default;
};

constexpr size_t max_sack_blocks = 4;  // 4 fit in 40 option bytes, 3 with timestamps

struct TcpOptions {
    std::optional<uint16_t> mss;
    std::optional<uint8_t> window_scale;  // the shift as sent (RFC 7323 2.3 caps use at 14)
    bool sack_permitted = false;
    std::optional<std::pair<uint32_t, uint32_t>> timestamp;  // TSval, TSecr
    uint8_t sack_count = 0;
    std::array<SackBlock, max_sack_blocks> sack{};

    bool operator==(const TcpOptions &) const = default;
};

struct TcpHeader {
    uint16_t source_port = 0;
    uint16_t destination_port = 0;
    uint32_t seq = 0;
    uint32_t ack = 0;
    uint8_t flags = 0;        // flag:: bits (FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 ECE 0x40 CWR 0x80)
    uint16_t window = 0;      // as on the wire, unscaled
    uint16_t urgent = 0;
    TcpOptions options;

    bool operator==(const TcpHeader &) const = default;
};

namespace flag {
constexpr uint8_t fin = 0x01;
constexpr uint8_t syn = 0x02;
constexpr uint8_t rst = 0x04;
constexpr uint8_t psh = 0x08;
constexpr uint8_t ack = 0x10;
constexpr uint8_t urg = 0x20;
constexpr uint8_t ece = 0x40;  // RFC 3168 6.1
constexpr uint8_t cwr = 0x80;
} // namespace flag

enum class SegmentError : uint8_t {
    none,
    truncated,          // shorter than 20 bytes, or than its data offset says
    bad_data_offset,    // data offset below 5 words
    bad_option,         // an option whose length is 0, 1, runs past the header, or is wrong for its kind
    too_long,           // longer than 65535 bytes, which TcpSegment's offsets cannot hold
};
const char *to_string(SegmentError error);

// A parsed segment: its header, and where its payload is in the bytes given.
struct TcpSegment {
    TcpHeader header;
    uint16_t header_length = 0;  // with options
    uint16_t payload_offset = 0;
    uint16_t payload_length = 0;
};

// Parses `length` bytes that start with a TCP header (the IP payload; the
// checksum is the caller's business). Unknown options are skipped by their
// length; a repeated known option keeps its first value; bytes after an EOL
// are not read. The four bits between data offset and flags (reserved, and
// RFC 9768's AE) are ignored. `out` is written only when the answer is none.
SegmentError parse_segment(const uint8_t *bytes, size_t length, TcpSegment &out);

// The options' length on the wire, a multiple of 4 and at most 40: what
// write_header will write. MSS (4), TS (12, SACK-permitted riding along) or
// SACK-permitted alone (4), and window scale (4) take at most 20 bytes, so
// they always fit; SACK blocks (4 + 8 each) that do not fit after them are
// left out from the end (RFC 2018 4 puts the most recent block first): 4 fit
// alone, 3 with TS.
size_t options_length(const TcpOptions &options);

// Writes the header with its options at `out`, which has room for 60 bytes;
// returns the header length. The checksum field is written as 0, the reserved
// bits as 0. Options go in the order of a Linux SYN: MSS; SACK-permitted and
// TS as one word pair, or each after two NOPs; NOP and window scale; then two
// NOPs and the SACK blocks (the first min(sack_count, 4) that fit).
size_t write_header(const TcpHeader &header, uint8_t *out);

// The TCP checksum over the IPv4 or IPv6 pseudo-header (RFC 9293 3.1, RFC 8200
// 8.1) and `length` bytes of segment (header with its checksum field as it is,
// and payload). `source`/`destination` are 4 or 16 bytes by `ipv6`. Like
// checksum.h, the value is in network byte order, ready to memcpy into bytes
// 16-17: computed with the field at 0 it is what to store; over a segment that
// holds its checksum it is 0 when the checksum verifies.
uint16_t segment_checksum(const uint8_t *source, const uint8_t *destination, bool ipv6,
                          const uint8_t *segment, size_t length);

} // namespace sluice::tcp
