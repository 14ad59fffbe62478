// Big-endian (network order) 16- and 32-bit fields at any alignment, as headers hold
// them.
#pragma once

#include <cstdint>

namespace sluice {

inline uint16_t read_be16(const uint8_t *p) { return uint16_t(p[0] << 8 | p[1]); }

inline uint32_t read_be32(const uint8_t *p) { return uint32_t(read_be16(p)) << 16 | read_be16(p + 2); }

inline void write_be16(uint8_t *p, uint16_t value) {
    p[0] = uint8_t(value >> 8);
    p[1] = uint8_t(value);
}

inline void write_be32(uint8_t *p, uint32_t value) {
    write_be16(p, uint16_t(value >> 16));
    write_be16(p + 2, uint16_t(value));
}

} // namespace sluice
