#include "dataplane/tcp_frame.h"

#include <cstring>

#include "dataplane/checksum.h"

namespace sluice::tcp {

size_t write_ip_segment(const FourTuple &tuple, const TcpHeader &header, const Payload &payload,
                        uint16_t ip_id, uint8_t *out) {
    const bool ipv6 = !tuple.local.is_v4();
    const size_t ip_header = ipv6 ? 40 : 20;
    uint8_t *tcp = out + ip_header;
    const size_t header_length = write_header(header, tcp);
    std::memcpy(tcp + header_length, payload.first, payload.first_length);
    std::memcpy(tcp + header_length + payload.first_length, payload.second,
                payload.second_length);
    const size_t tcp_length = header_length + payload.length();
    const uint16_t sum = segment_checksum(tuple.local.bytes.data(), tuple.remote.bytes.data(),
                                          ipv6, tcp, tcp_length);
    std::memcpy(tcp + 16, &sum, 2);

    if (ipv6) {
        out[0] = 0x60;
        out[1] = out[2] = out[3] = 0;
        out[4] = uint8_t(tcp_length >> 8);
        out[5] = uint8_t(tcp_length);
        out[6] = 6;    // next header: TCP
        out[7] = 64;   // hop limit
        std::memcpy(out + 8, tuple.local.bytes.data(), 16);
        std::memcpy(out + 24, tuple.remote.bytes.data(), 16);
        return 40 + tcp_length;
    }
    const size_t total = 20 + tcp_length;
    out[0] = 0x45;
    out[1] = 0;
    out[2] = uint8_t(total >> 8);
    out[3] = uint8_t(total);
    out[4] = uint8_t(ip_id >> 8);
    out[5] = uint8_t(ip_id);
    out[6] = 0x40;  // don't fragment
    out[7] = 0;
    out[8] = 64;
    out[9] = 6;
    out[10] = out[11] = 0;
    std::memcpy(out + 12, tuple.local.bytes.data(), 4);
    std::memcpy(out + 16, tuple.remote.bytes.data(), 4);
    const uint16_t ip_sum = internet_checksum(out, 20);
    std::memcpy(out + 10, &ip_sum, 2);
    return total;
}

} // namespace sluice::tcp
