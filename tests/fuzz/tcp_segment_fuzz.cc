// libFuzzer target: the TCP segment parser over a buffer exactly as long as
// the input (so ASan catches any read past it), then, for what it accepts,
// write_header and parse again: the header must come back the same, except
// for SACK blocks left out from the end because they did not fit.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "dataplane/tcp_segment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace sluice::tcp;
    std::unique_ptr<uint8_t[]> bytes(new uint8_t[size]);
    if (size)
        std::memcpy(bytes.get(), data, size);

    // The checksum reads every byte; its value is checked by the unit tests.
    static const uint8_t address[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    volatile uint16_t sum = segment_checksum(address, address, size % 2 == 0, bytes.get(), size);
    (void)sum;

    TcpSegment first;
    if (parse_segment(bytes.get(), size, first) != SegmentError::none)
        return 0;
    if (first.header_length < 20 || first.header_length > 60 || first.header_length % 4 ||
        first.payload_offset != first.header_length ||
        size_t(first.payload_offset) + first.payload_length != size ||
        first.header.options.sack_count > max_sack_blocks)
        __builtin_trap();

    uint8_t written[60];
    const size_t length = write_header(first.header, written);
    if (length != 20 + options_length(first.header.options) || length % 4 || length > 60)
        __builtin_trap();

    // Parsed again from a buffer of exactly the written length.
    std::unique_ptr<uint8_t[]> again(new uint8_t[length]);
    std::memcpy(again.get(), written, length);
    TcpSegment second;
    if (parse_segment(again.get(), length, second) != SegmentError::none ||
        second.header_length != length || second.payload_length != 0)
        __builtin_trap();

    // Only SACK blocks may be lost, from the end, and only when one more
    // would not have fit in 40 option bytes.
    const TcpOptions &was = first.header.options, &now = second.header.options;
    if (now.sack_count > was.sack_count ||
        !std::equal(now.sack.begin(), now.sack.begin() + now.sack_count, was.sack.begin()))
        __builtin_trap();
    if (now.sack_count < was.sack_count &&
        options_length(now) + (now.sack_count ? 8 : 12) <= 40)
        __builtin_trap();
    TcpHeader expected = first.header;
    expected.options.sack_count = now.sack_count;
    std::fill(expected.options.sack.begin() + now.sack_count, expected.options.sack.end(),
              SackBlock{});
    if (!(second.header == expected))
        __builtin_trap();
    return 0;
}
