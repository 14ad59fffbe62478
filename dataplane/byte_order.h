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

// A port kept as a uint16_t in the order a header holds it (the `_be`
// fields), to and from host order: the same swap both ways on the
// little-endian machines sluice runs on.
inline uint16_t port_to_network(uint16_t port) { return uint16_t(port << 8 | port >> 8); }
inline uint16_t port_to_host(uint16_t port_be) { return uint16_t(port_be << 8 | port_be >> 8); }

} // namespace sluice
