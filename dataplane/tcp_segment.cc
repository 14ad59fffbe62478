// The TCP segment codec: header and options in, header and options out, and
// the checksum over the pseudo-header. See tcp_segment.h for the contract.
#include "dataplane/tcp_segment.h"

#include <algorithm>

#include "dataplane/byte_order.h"
#include "dataplane/checksum.h"

namespace sluice::tcp {

namespace {

constexpr size_t min_header_length = 20;
constexpr size_t max_options_length = 40;
constexpr size_t max_segment_length = 0xffff;
constexpr uint8_t ip_protocol_tcp = 6;

// Option kinds (IANA "TCP Option Kind Numbers") and their fixed lengths.
namespace kind {
constexpr uint8_t eol = 0;
constexpr uint8_t nop = 1;
constexpr uint8_t mss = 2;
constexpr uint8_t window_scale = 3;
constexpr uint8_t sack_permitted = 4;
constexpr uint8_t sack = 5;
constexpr uint8_t timestamp = 8;
} // namespace kind

constexpr uint8_t mss_length = 4;
constexpr uint8_t window_scale_length = 3;
constexpr uint8_t sack_permitted_length = 2;
constexpr uint8_t timestamp_length = 10;
constexpr size_t sack_block_length = 8;

// Reads the options area, `length` bytes that the caller has checked are
// there. Every option's length byte is checked against what is left before
// anything after it is read (RFC 9293 3.1: an option-length counts its kind
// and length bytes, so below 2 is malformed).
SegmentError parse_options(const uint8_t *p, size_t length, TcpOptions &options) {
    bool sack_seen = false;
    size_t at = 0;
    while (at < length) {
        const uint8_t option = p[at];
        if (option == kind::eol)
            break;
        if (option == kind::nop) {
            ++at;
            continue;
        }
        if (length - at < 2)
            return SegmentError::bad_option;
        const uint8_t option_length = p[at + 1];
        if (option_length < 2 || option_length > length - at)
            return SegmentError::bad_option;
        const uint8_t *value = p + at + 2;
        switch (option) {
        case kind::mss:
            if (option_length != mss_length)
                return SegmentError::bad_option;
            if (!options.mss)
                options.mss = read_be16(value);
            break;
        case kind::window_scale:
            if (option_length != window_scale_length)
                return SegmentError::bad_option;
            if (!options.window_scale)
                options.window_scale = value[0];
            break;
        case kind::sack_permitted:
            if (option_length != sack_permitted_length)
                return SegmentError::bad_option;
            options.sack_permitted = true;
            break;
        case kind::sack: {
            const size_t blocks = (option_length - 2u) / sack_block_length;
            if ((option_length - 2u) % sack_block_length != 0 || blocks < 1 ||
                blocks > max_sack_blocks)
                return SegmentError::bad_option;
            if (!sack_seen) {
                sack_seen = true;
                options.sack_count = uint8_t(blocks);
                for (size_t i = 0; i < blocks; ++i)
                    options.sack[i] = {read_be32(value + i * sack_block_length),
                                       read_be32(value + i * sack_block_length + 4)};
            }
            break;
        }
        case kind::timestamp:
            if (option_length != timestamp_length)
                return SegmentError::bad_option;
            if (!options.timestamp)
                options.timestamp = std::pair{read_be32(value), read_be32(value + 4)};
            break;
        default:
            break;  // unknown: skipped by its length (RFC 9293 3.2)
        }
        at += option_length;
    }
    return SegmentError::none;
}

// The options before the SACK blocks: MSS, SACK-permitted/TS, WS. Each piece
// is a whole number of 32-bit words, so the total needs no padding.
size_t fixed_options_length(const TcpOptions &options) {
    size_t length = 0;
    if (options.mss)
        length += 4;
    if (options.timestamp)
        length += 12;  // kind 4, len 2 or two NOPs; then TS
    else if (options.sack_permitted)
        length += 4;   // two NOPs, SACK-permitted
    if (options.window_scale)
        length += 4;   // NOP, WS
    return length;
}

// How many of the SACK blocks fit after the fixed options.
size_t sack_blocks_that_fit(const TcpOptions &options) {
    const size_t wanted = std::min<size_t>(options.sack_count, max_sack_blocks);
    const size_t room = max_options_length - fixed_options_length(options);
    if (wanted == 0 || room < 4 + sack_block_length)
        return 0;
    return std::min(wanted, (room - 4) / sack_block_length);
}

uint8_t *write_option_word(uint8_t *p, uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    p[0] = a;
    p[1] = b;
    p[2] = c;
    p[3] = d;
    return p + 4;
}

} // namespace

const char *to_string(SegmentError error) {
    switch (error) {
    case SegmentError::none:
        return "none";
    case SegmentError::truncated:
        return "truncated";
    case SegmentError::bad_data_offset:
        return "bad data offset";
    case SegmentError::bad_option:
        return "bad option";
    case SegmentError::too_long:
        return "too long";
    }
    return "unknown";
}

SegmentError parse_segment(const uint8_t *bytes, size_t length, TcpSegment &out) {
    if (length > max_segment_length)
        return SegmentError::too_long;
    if (length < min_header_length)
        return SegmentError::truncated;
    const size_t header_length = size_t(bytes[12] >> 4) * 4;
    if (header_length < min_header_length)
        return SegmentError::bad_data_offset;
    if (header_length > length)
        return SegmentError::truncated;

    TcpSegment segment;
    TcpHeader &h = segment.header;
    h.source_port = read_be16(bytes);
    h.destination_port = read_be16(bytes + 2);
    h.seq = read_be32(bytes + 4);
    h.ack = read_be32(bytes + 8);
    h.flags = bytes[13];
    h.window = read_be16(bytes + 14);
    h.urgent = read_be16(bytes + 18);
    const SegmentError error = parse_options(bytes + min_header_length,
                                             header_length - min_header_length, h.options);
    if (error != SegmentError::none)
        return error;
    segment.header_length = uint16_t(header_length);
    segment.payload_offset = uint16_t(header_length);
    segment.payload_length = uint16_t(length - header_length);
    out = segment;
    return SegmentError::none;
}

size_t options_length(const TcpOptions &options) {
    const size_t blocks = sack_blocks_that_fit(options);
    return fixed_options_length(options) + (blocks ? 4 + blocks * sack_block_length : 0);
}

size_t write_header(const TcpHeader &header, uint8_t *out) {
    const TcpOptions &o = header.options;
    const size_t length = min_header_length + options_length(o);
    write_be16(out, header.source_port);
    write_be16(out + 2, header.destination_port);
    write_be32(out + 4, header.seq);
    write_be32(out + 8, header.ack);
    out[12] = uint8_t(length / 4 << 4);
    out[13] = header.flags;
    write_be16(out + 14, header.window);
    write_be16(out + 16, 0);
    write_be16(out + 18, header.urgent);

    uint8_t *p = out + min_header_length;
    if (o.mss) {
        p = write_option_word(p, kind::mss, mss_length, 0, 0);
        write_be16(p - 2, *o.mss);
    }
    if (o.timestamp) {
        if (o.sack_permitted)
            p = write_option_word(p, kind::sack_permitted, sack_permitted_length,
                                  kind::timestamp, timestamp_length);
        else
            p = write_option_word(p, kind::nop, kind::nop, kind::timestamp, timestamp_length);
        write_be32(p, o.timestamp->first);
        write_be32(p + 4, o.timestamp->second);
        p += 8;
    } else if (o.sack_permitted) {
        p = write_option_word(p, kind::nop, kind::nop, kind::sack_permitted,
                              sack_permitted_length);
    }
    if (o.window_scale)
        p = write_option_word(p, kind::nop, kind::window_scale, window_scale_length,
                              *o.window_scale);
    if (const size_t blocks = sack_blocks_that_fit(o)) {
        p = write_option_word(p, kind::nop, kind::nop, kind::sack,
                              uint8_t(2 + blocks * sack_block_length));
        for (size_t i = 0; i < blocks; ++i) {
            write_be32(p, o.sack[i].left);
            write_be32(p + 4, o.sack[i].right);
            p += sack_block_length;
        }
    }
    // Every piece above is whole words, so p lands on `length` with no EOL
    // padding; the tests hold write_header to options_length.
    return length;
}

uint16_t segment_checksum(const uint8_t *source, const uint8_t *destination, bool ipv6,
                          const uint8_t *segment, size_t length) {
    uint64_t sum;
    if (ipv6) {
        sum = ipv6_pseudo_header_sum(source, destination, uint32_t(length), ip_protocol_tcp);
    } else {
        // RFC 9293 3.1: source, destination, zero, PTCL, TCP length.
        const uint8_t tail[4] = {0, ip_protocol_tcp, uint8_t(length >> 8), uint8_t(length)};
        sum = checksum_add(0, source, 4);
        sum = checksum_add(sum, destination, 4);
        sum = checksum_add(sum, tail, sizeof tail);
    }
    return checksum_finish(checksum_add(sum, segment, length));
}

} // namespace sluice::tcp
