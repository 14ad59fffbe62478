// The Internet checksum (RFC 1071) over plain bytes, and the IPv6 pseudo-header
// sum (RFC 8200 8.1). Header-only so the compiler can inline it in the burst
// loop; no EAL needed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice {

// One's-complement sum of `length` bytes, not yet folded, added to `sum`.
inline uint64_t checksum_add(uint64_t sum, const uint8_t *data, size_t length) {
    while (length >= 4) {
        uint32_t word;
        std::memcpy(&word, data, 4);
        sum += word;
        data += 4;
        length -= 4;
    }
    if (length >= 2) {
        uint16_t half;
        std::memcpy(&half, data, 2);
        sum += half;
        data += 2;
        length -= 2;
    }
    if (length) {
        // The odd byte is the high-order byte of a 16-bit word in network order.
        uint16_t last = 0;
        std::memcpy(&last, data, 1);
        sum += last;
    }
    return sum;
}

// Folds a sum into the 16-bit checksum field value (network byte order).
// Folds by adding each value to itself rotated by half its width (as Linux's
// csum_fold): the upper half then holds the end-around-carry sum of both
// halves. A fixed 7 instructions, where a loop on the value took a
// data-dependent branch for every parsed IPv4 header. Same bits as folding
// until nothing is left above 16 bits.
inline uint16_t checksum_finish(uint64_t sum) {
    sum += (sum >> 32) | (sum << 32);
    uint32_t folded = uint32_t(sum >> 32);
    folded += (folded >> 16) | (folded << 16);
    return uint16_t(~(folded >> 16));
}

inline uint16_t internet_checksum(const uint8_t *data, size_t length) {
    return checksum_finish(checksum_add(0, data, length));
}

// Sum of the IPv6 pseudo-header for an upper-layer packet.
inline uint64_t ipv6_pseudo_header_sum(const uint8_t source[16], const uint8_t destination[16],
                                       uint32_t upper_length, uint8_t next_header) {
    uint64_t sum = checksum_add(0, source, 16);
    sum = checksum_add(sum, destination, 16);
    const uint8_t tail[8] = {uint8_t(upper_length >> 24), uint8_t(upper_length >> 16),
                             uint8_t(upper_length >> 8),  uint8_t(upper_length),
                             0, 0, 0, next_header};
    return checksum_add(sum, tail, sizeof tail);
}

} // namespace sluice
