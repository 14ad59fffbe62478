// Big-endian (network order) 16-bit fields at any alignment, as headers hold
// them.
#pragma once

#include <cstdint>

namespace sluice {

inline uint16_t read_be16(const uint8_t *p) { return uint16_t(p[0] << 8 | p[1]); }

inline void write_be16(uint8_t *p, uint16_t value) {
    p[0] = uint8_t(value >> 8);
    p[1] = uint8_t(value);
}

} // namespace sluice
