// A segment of the userspace TCP as an IP packet: the worker and the TUN
// peer of the interop tests write what the endpoint sends with this, and read
// what arrives. Plain bytes, no EAL.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/tcp_connection.h"
#include "dataplane/tcp_endpoint.h"

namespace sluice::tcp {

// The most a segment's IP packet takes: an IPv6 header, a TCP header with
// options, and `payload` bytes.
constexpr size_t ip_segment_size(size_t payload) { return 40 + 60 + payload; }

// Writes the IPv4 (or IPv6, by the tuple's family) header from tuple.local to
// tuple.remote, then `header` and the payload, with both checksums; returns
// the packet's length. `out` has room for ip_segment_size(payload.length()).
// IPv4 packets go with DF set (the TCP keeps to the MSS) and TTL 64, and
// `ip_id` as their identification.
size_t write_ip_segment(const FourTuple &tuple, const TcpHeader &header, const Payload &payload,
                        uint16_t ip_id, uint8_t *out);

} // namespace sluice::tcp
