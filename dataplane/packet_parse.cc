#include "dataplane/packet_parse.h"

#include <cstring>

#include "dataplane/byte_order.h"
#include "dataplane/checksum.h"

namespace sluice {

namespace {

constexpr uint32_t ethernet_header_length = 14;
constexpr uint32_t vlan_tag_length = 4;
constexpr uint32_t max_vlan_tags = 2;
constexpr uint32_t arp_ipv4_length = 28;
constexpr uint32_t ipv4_min_header = 20;
constexpr uint32_t ipv6_header_length = 40;
constexpr uint32_t max_ipv6_extensions = 8;
constexpr uint32_t tcp_min_header = 20;
constexpr uint32_t udp_header_length = 8;
constexpr uint32_t icmp_min_header = 8;
constexpr uint32_t icmpv6_min_header = 4;


DropReason parse_arp(const uint8_t *frame, uint32_t length, ParsedPacket &out) {
    const uint8_t *arp = frame + out.l3_offset;
    if (length - out.l3_offset < arp_ipv4_length)
        return DropReason::truncated_arp;
    // Hardware type Ethernet (1), protocol IPv4, address lengths 6 and 4.
    if (read_be16(arp) != 1 || read_be16(arp + 2) != ether_type::ipv4 || arp[4] != 6 ||
        arp[5] != 4)
        return DropReason::unsupported_arp;
    out.network = NetworkLayer::arp;
    out.l3_header_length = arp_ipv4_length;
    out.l3_end = uint16_t(out.l3_offset + arp_ipv4_length);
    return DropReason::none;
}

// The IPv4 header checksum, with the common 20-byte header summed as five
// words straight (the loop of internet_checksum costs twice as much). Word
// by word, not through a local array: an array would cost parse_packet a
// stack canary.
inline uint16_t ipv4_header_sum(const uint8_t *ip, uint32_t header_length) {
    if (header_length != ipv4_min_header)
        return internet_checksum(ip, header_length);
    auto word = [ip](size_t i) {
        uint32_t w;
        std::memcpy(&w, ip + 4 * i, 4);
        return uint64_t(w);
    };
    return checksum_finish(word(0) + word(1) + word(2) + word(3) + word(4));
}

DropReason parse_ipv4(const uint8_t *frame, uint32_t length, ParsedPacket &out,
                      bool checksum_verified) {
    const uint8_t *ip = frame + out.l3_offset;
    const uint32_t available = length - out.l3_offset;
    if (available < ipv4_min_header)
        return DropReason::truncated_ipv4;
    if ((ip[0] >> 4) != 4)
        return DropReason::bad_ipv4_version;
    const uint32_t header_length = uint32_t(ip[0] & 0x0f) * 4;
    if (header_length < ipv4_min_header)
        return DropReason::bad_ipv4_ihl;
    if (header_length > available)
        return DropReason::truncated_ipv4_options;
    const uint32_t total_length = read_be16(ip + 2);
    if (total_length < header_length)
        return DropReason::ipv4_total_length_below_header;
    if (total_length > available)
        return DropReason::ipv4_total_length_beyond_frame;
    if (!checksum_verified && ipv4_header_sum(ip, header_length) != 0)
        return DropReason::bad_ipv4_checksum;
    // RFC 1812 5.3.7: a multicast or limited-broadcast source is never valid.
    if ((ip[12] & 0xf0) == 0xe0 || (ip[12] == 0xff && ip[13] == 0xff && ip[14] == 0xff &&
                                    ip[15] == 0xff))
        return DropReason::bad_ipv4_source;

    const uint16_t fragment_field = read_be16(ip + 6);
    const bool more_fragments = fragment_field & 0x2000;
    const uint16_t fragment_offset = fragment_field & 0x1fff;
    out.network = NetworkLayer::ipv4;
    out.l3_header_length = uint16_t(header_length);
    out.l3_end = uint16_t(out.l3_offset + total_length);
    out.l4_protocol = ip[9];
    out.l4_offset = uint16_t(out.l3_offset + header_length);
    out.l4_length = uint16_t(total_length - header_length);
    out.fragment = more_fragments || fragment_offset != 0;
    out.fragment_id = read_be16(ip + 4);
    // Only the first fragment carries the L4 header.
    out.has_l4 = fragment_offset == 0;
    return DropReason::none;
}

DropReason parse_ipv6(const uint8_t *frame, uint32_t length, ParsedPacket &out) {
    const uint8_t *ip = frame + out.l3_offset;
    const uint32_t available = length - out.l3_offset;
    if (available < ipv6_header_length)
        return DropReason::truncated_ipv6;
    if ((ip[0] >> 4) != 6)
        return DropReason::bad_ipv6_version;
    const uint32_t payload_length = read_be16(ip + 4);
    if (payload_length > available - ipv6_header_length)
        return DropReason::ipv6_payload_beyond_frame;
    if (ip[8] == 0xff)
        return DropReason::bad_ipv6_source;

    const uint32_t end = out.l3_offset + ipv6_header_length + payload_length;
    uint32_t offset = out.l3_offset + ipv6_header_length;
    uint8_t next_header = ip[6];
    bool fragment_with_l4 = true;
    out.fragment = false;
    // RFC 8200 4: follow extension headers to the upper-layer header. Hop-by-hop
    // may only come first.
    for (uint32_t n = 0;; ++n) {
        const bool is_extension = next_header == ip_proto::hop_by_hop ||
                                  next_header == ip_proto::ipv6_routing ||
                                  next_header == ip_proto::ipv6_fragment ||
                                  next_header == ip_proto::ipv6_dest_options ||
                                  next_header == ip_proto::ah;
        if (!is_extension)
            break;
        if (n == max_ipv6_extensions)
            return DropReason::too_many_ipv6_extensions;
        if (next_header == ip_proto::hop_by_hop && n != 0)
            return DropReason::misplaced_ipv6_hop_by_hop;
        if (end - offset < 8)
            return DropReason::truncated_ipv6_extension;
        const uint8_t *extension = frame + offset;
        uint32_t extension_length;
        if (next_header == ip_proto::ipv6_fragment) {
            extension_length = 8;
            const uint16_t fragment_offset = read_be16(extension + 2) >> 3;
            out.fragment = true;
            out.fragment_id = read_be32(extension + 4);
            fragment_with_l4 = fragment_offset == 0;
        } else if (next_header == ip_proto::ah) {
            extension_length = (uint32_t(extension[1]) + 2) * 4;  // RFC 4302 2.2
        } else {
            extension_length = (uint32_t(extension[1]) + 1) * 8;
        }
        if (extension_length > end - offset)
            return DropReason::truncated_ipv6_extension;
        next_header = extension[0];
        offset += extension_length;
    }
    out.network = NetworkLayer::ipv6;
    out.l3_header_length = uint16_t(offset - out.l3_offset);
    out.l3_end = uint16_t(end);
    out.l4_protocol = next_header;
    out.l4_offset = uint16_t(offset);
    out.l4_length = uint16_t(end - offset);
    out.has_l4 = fragment_with_l4 && next_header != ip_proto::ipv6_no_next;
    return DropReason::none;
}

DropReason parse_transport(const uint8_t *frame, ParsedPacket &out) {
    if (!out.has_l4)
        return DropReason::none;
    const uint8_t *l4 = frame + out.l4_offset;
    const uint32_t available = out.l4_length;
    switch (out.l4_protocol) {
    case ip_proto::tcp: {
        if (available < tcp_min_header)
            return DropReason::truncated_tcp;
        const uint32_t data_offset = uint32_t(l4[12] >> 4) * 4;
        if (data_offset < tcp_min_header)
            return DropReason::bad_tcp_data_offset;
        // Also refuses RFC 1858's tiny first fragments.
        if (data_offset > available)
            return DropReason::tcp_options_beyond_packet;
        return DropReason::none;
    }
    case ip_proto::udp: {
        if (available < udp_header_length)
            return DropReason::truncated_udp;
        const uint32_t udp_length = read_be16(l4 + 4);
        // A first fragment holds only part of the datagram the length covers.
        if (udp_length < udp_header_length || (!out.fragment && udp_length > available))
            return DropReason::bad_udp_length;
        return DropReason::none;
    }
    case ip_proto::icmp:
        if (out.network != NetworkLayer::ipv4)
            break;
        return available < icmp_min_header ? DropReason::truncated_icmp : DropReason::none;
    case ip_proto::icmpv6:
        if (out.network != NetworkLayer::ipv6)
            break;
        return available < icmpv6_min_header ? DropReason::truncated_icmpv6
                                              : DropReason::none;
    default:
        break;
    }
    // Other protocols pass through unparsed.
    out.has_l4 = false;
    return DropReason::none;
}

} // namespace

DropReason parse_packet(const uint8_t *frame, uint32_t length, ParsedPacket &out,
                        bool ipv4_checksum_verified) {
    out = ParsedPacket{};
    if (length > 0xffff)
        length = 0xffff;  // offsets are 16 bits; no Ethernet frame is longer
    if (length < ethernet_header_length)
        return DropReason::truncated_ethernet;
    uint32_t offset = ethernet_header_length;
    uint16_t type = read_be16(frame + 12);
    while (type == ether_type::vlan || type == ether_type::qinq) {
        if (out.vlan_count == max_vlan_tags)
            return DropReason::too_many_vlan_tags;
        if (length - offset < vlan_tag_length)
            return DropReason::truncated_vlan;
        type = read_be16(frame + offset + 2);
        offset += vlan_tag_length;
        ++out.vlan_count;
    }
    out.ether_type = type;
    out.l3_offset = uint16_t(offset);

    DropReason reason;
    switch (type) {
    case ether_type::arp:
        return parse_arp(frame, length, out);
    case ether_type::ipv4:
        reason = parse_ipv4(frame, length, out, ipv4_checksum_verified);
        break;
    case ether_type::ipv6:
        reason = parse_ipv6(frame, length, out);
        break;
    default:
        return DropReason::none;  // not ours to judge: the kernel may want it
    }
    if (reason != DropReason::none)
        return reason;
    return parse_transport(frame, out);
}

} // namespace sluice
