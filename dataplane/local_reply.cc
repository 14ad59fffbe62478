#include "dataplane/local_reply.h"

#include <cstring>

#include "dataplane/byte_order.h"
#include "dataplane/checksum.h"

namespace sluice {

namespace {

constexpr uint16_t arp_op_request = 1;
constexpr uint16_t arp_op_reply = 2;
constexpr uint8_t icmp_echo_reply = 0;
constexpr uint8_t icmp_echo_request = 8;
constexpr uint8_t icmpv6_echo_request = 128;
constexpr uint8_t icmpv6_echo_reply = 129;
constexpr uint8_t icmpv6_neighbor_solicitation = 135;
constexpr uint8_t icmpv6_neighbor_advertisement = 136;
constexpr uint8_t nd_option_source_link_layer = 1;
constexpr uint8_t nd_option_target_link_layer = 2;
constexpr uint32_t neighbor_solicitation_length = 24;
constexpr uint32_t neighbor_advertisement_length = 32;  // with a target link-layer option
constexpr uint8_t reply_ttl = 64;

inline void store_checksum(uint8_t *field, uint16_t checksum) {
    std::memcpy(field, &checksum, 2);  // already in network byte order
}

// Replies go back where the request came from.
void reply_ethernet(uint8_t *frame, const MacAddress &destination, const MacAddress &own) {
    std::memcpy(frame, destination.bytes.data(), 6);
    std::memcpy(frame + 6, own.bytes.data(), 6);
}

MacAddress ethernet_source(const uint8_t *frame) {
    MacAddress mac;
    std::memcpy(mac.bytes.data(), frame + 6, 6);
    return mac;
}

LocalReply answer_arp(uint8_t *frame, const ParsedPacket &packet, const LocalAddresses &local) {
    uint8_t *arp = frame + packet.l3_offset;
    uint8_t *sender_mac = arp + 8, *sender_ip = arp + 14;
    uint8_t *target_mac = arp + 18, *target_ip = arp + 24;
    if (read_be16(arp + 6) != arp_op_request || !local.owns_ipv4(target_ip))
        return LocalReply::not_local;

    uint8_t asked[4], requester_ip[4];
    MacAddress requester;
    std::memcpy(asked, target_ip, 4);
    std::memcpy(requester_ip, sender_ip, 4);
    std::memcpy(requester.bytes.data(), sender_mac, 6);

    write_be16(arp + 6, arp_op_reply);
    std::memcpy(sender_mac, local.mac.bytes.data(), 6);
    std::memcpy(sender_ip, asked, 4);
    std::memcpy(target_mac, requester.bytes.data(), 6);
    std::memcpy(target_ip, requester_ip, 4);
    reply_ethernet(frame, requester, local.mac);
    return LocalReply::arp_reply;
}

LocalReply answer_ipv4(uint8_t *frame, const ParsedPacket &packet, const LocalAddresses &local,
                       DropReason &drop_reason) {
    uint8_t *ip = frame + packet.l3_offset;
    // Fragmented echo requests go to the kernel, which reassembles them.
    if (packet.l4_protocol != ip_proto::icmp || !packet.has_l4 || packet.fragment ||
        !local.owns_ipv4(ip + 16))
        return LocalReply::not_local;
    uint8_t *icmp = frame + packet.l4_offset;
    if (icmp[0] != icmp_echo_request || icmp[1] != 0)
        return LocalReply::not_local;
    if (internet_checksum(icmp, packet.l4_length) != 0) {
        drop_reason = DropReason::bad_icmp_checksum;
        return LocalReply::drop;
    }

    uint8_t address[4];
    std::memcpy(address, ip + 12, 4);
    std::memcpy(ip + 12, ip + 16, 4);
    std::memcpy(ip + 16, address, 4);
    ip[8] = reply_ttl;
    store_checksum(ip + 10, 0);
    store_checksum(ip + 10, internet_checksum(ip, packet.l3_header_length));

    icmp[0] = icmp_echo_reply;
    store_checksum(icmp + 2, 0);
    store_checksum(icmp + 2, internet_checksum(icmp, packet.l4_length));
    reply_ethernet(frame, ethernet_source(frame), local.mac);
    return LocalReply::icmp_echo_reply;
}

uint16_t icmpv6_checksum(const uint8_t *ip, const uint8_t *message, uint32_t length) {
    uint64_t sum = ipv6_pseudo_header_sum(ip + 8, ip + 24, length, ip_proto::icmpv6);
    return checksum_finish(checksum_add(sum, message, length));
}

bool is_solicited_node_multicast(const uint8_t *address) {
    static constexpr uint8_t prefix[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
    return std::memcmp(address, prefix, sizeof prefix) == 0;
}

bool is_unspecified_v6(const uint8_t *address) {
    static constexpr uint8_t zero[16] = {};
    return std::memcmp(address, zero, 16) == 0;
}

// RFC 4861 7.1.1 checks beyond the ones the caller already made; on success
// `source_link_layer` points at the option's address, or stays null.
bool valid_neighbor_solicitation(const uint8_t *ip, const uint8_t *icmp, uint32_t length,
                                 const uint8_t *&source_link_layer) {
    if (ip[7] != 255 || icmp[1] != 0 || icmp[8] == 0xff)
        return false;
    if (icmpv6_checksum(ip, icmp, length) != 0)
        return false;
    source_link_layer = nullptr;
    for (uint32_t offset = neighbor_solicitation_length; offset < length;) {
        if (length - offset < 2)
            return false;
        const uint32_t option_length = uint32_t(icmp[offset + 1]) * 8;
        if (option_length == 0 || option_length > length - offset)
            return false;
        if (icmp[offset] == nd_option_source_link_layer && option_length >= 8)
            source_link_layer = icmp + offset + 2;
        offset += option_length;
    }
    const bool from_unspecified = is_unspecified_v6(ip + 8);
    if (from_unspecified && (!is_solicited_node_multicast(ip + 24) || source_link_layer))
        return false;
    return true;
}

LocalReply answer_neighbor_solicitation(uint8_t *frame, uint32_t &length, uint32_t capacity,
                                        const ParsedPacket &packet,
                                        const LocalAddresses &local, DropReason &drop_reason) {
    uint8_t *ip = frame + packet.l3_offset;
    const uint8_t *icmp = frame + packet.l4_offset;
    if (packet.l4_length < neighbor_solicitation_length) {
        drop_reason = DropReason::bad_neighbor_discovery;
        return LocalReply::drop;
    }
    if (!local.owns_ipv6(icmp + 8))
        return LocalReply::not_local;  // someone else's address: the kernel may know it
    const uint8_t *source_link_layer;
    if (!valid_neighbor_solicitation(ip, icmp, packet.l4_length, source_link_layer)) {
        drop_reason = DropReason::bad_neighbor_discovery;
        return LocalReply::drop;
    }
    const uint32_t reply_length =
        packet.l3_offset + 40 + neighbor_advertisement_length;
    if (reply_length > capacity) {
        drop_reason = DropReason::no_room_for_reply;
        return LocalReply::drop;
    }

    // Everything the answer needs, before it is overwritten.
    uint8_t target[16], solicitor[16];
    std::memcpy(target, icmp + 8, 16);
    std::memcpy(solicitor, ip + 8, 16);
    MacAddress destination = ethernet_source(frame);
    if (source_link_layer)
        std::memcpy(destination.bytes.data(), source_link_layer, 6);
    const bool duplicate_address_detection = is_unspecified_v6(solicitor);

    // A fresh IPv6 header: extension headers of the solicitation are not echoed.
    ip[0] = 0x60;
    ip[1] = ip[2] = ip[3] = 0;
    write_be16(ip + 4, neighbor_advertisement_length);
    ip[6] = ip_proto::icmpv6;
    ip[7] = 255;
    std::memcpy(ip + 8, target, 16);
    if (duplicate_address_detection) {
        // RFC 4861 7.2.4: answer a DAD probe to all-nodes, without the S flag.
        static constexpr uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0,
                                                  0,    0,    0, 0, 0, 0, 0, 1};
        std::memcpy(ip + 24, all_nodes, 16);
        static constexpr uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
        std::memcpy(destination.bytes.data(), all_nodes_mac, 6);
    } else {
        std::memcpy(ip + 24, solicitor, 16);
    }

    uint8_t *advert = ip + 40;
    std::memset(advert, 0, neighbor_advertisement_length);
    advert[0] = icmpv6_neighbor_advertisement;
    advert[4] = duplicate_address_detection ? 0x20 : 0x60;  // (S)olicited, (O)verride
    std::memcpy(advert + 8, target, 16);
    advert[24] = nd_option_target_link_layer;
    advert[25] = 1;  // in units of 8 bytes
    std::memcpy(advert + 26, local.mac.bytes.data(), 6);
    store_checksum(advert + 2, icmpv6_checksum(ip, advert, neighbor_advertisement_length));

    reply_ethernet(frame, destination, local.mac);
    length = reply_length;
    return LocalReply::neighbor_advertisement;
}

LocalReply answer_ipv6(uint8_t *frame, uint32_t &length, uint32_t capacity,
                       const ParsedPacket &packet, const LocalAddresses &local,
                       DropReason &drop_reason) {
    if (packet.l4_protocol != ip_proto::icmpv6 || !packet.has_l4 || packet.fragment)
        return LocalReply::not_local;
    uint8_t *ip = frame + packet.l3_offset;
    uint8_t *icmp = frame + packet.l4_offset;
    if (icmp[0] == icmpv6_neighbor_solicitation)
        return answer_neighbor_solicitation(frame, length, capacity, packet, local,
                                            drop_reason);
    // Echo requests with extension headers (a routing header, say) are the
    // kernel's to answer.
    if (icmp[0] != icmpv6_echo_request || icmp[1] != 0 || packet.l3_header_length != 40 ||
        !local.owns_ipv6(ip + 24))
        return LocalReply::not_local;
    if (packet.l4_length < 8 || icmpv6_checksum(ip, icmp, packet.l4_length) != 0) {
        drop_reason = DropReason::bad_icmpv6_checksum;
        return LocalReply::drop;
    }

    uint8_t address[16];
    std::memcpy(address, ip + 8, 16);
    std::memcpy(ip + 8, ip + 24, 16);
    std::memcpy(ip + 24, address, 16);
    ip[7] = reply_ttl;
    icmp[0] = icmpv6_echo_reply;
    store_checksum(icmp + 2, 0);
    store_checksum(icmp + 2, icmpv6_checksum(ip, icmp, packet.l4_length));
    reply_ethernet(frame, ethernet_source(frame), local.mac);
    return LocalReply::icmpv6_echo_reply;
}

} // namespace

void LocalAddresses::add(const IpAddress &address) {
    if (address.is_v4()) {
        ipv4.push_back(address.v4_be());
    } else {
        std::array<uint8_t, 16> bytes;
        std::memcpy(bytes.data(), address.bytes.data(), 16);
        ipv6.push_back(bytes);
    }
}

bool LocalAddresses::owns_ipv4(const uint8_t *address) const {
    uint32_t be;
    std::memcpy(&be, address, 4);
    for (uint32_t own : ipv4)
        if (own == be)
            return true;
    return false;
}

bool LocalAddresses::owns_ipv6(const uint8_t *address) const {
    for (const auto &own : ipv6)
        if (std::memcmp(own.data(), address, 16) == 0)
            return true;
    return false;
}

LocalReply answer_local(uint8_t *frame, uint32_t &length, uint32_t capacity,
                        const ParsedPacket &packet, const LocalAddresses &local,
                        DropReason &drop_reason) {
    switch (packet.network) {
    case NetworkLayer::arp:
        return answer_arp(frame, packet, local);
    case NetworkLayer::ipv4: {
        const LocalReply reply = answer_ipv4(frame, packet, local, drop_reason);
        if (reply == LocalReply::icmp_echo_reply)
            length = packet.l3_end;  // Ethernet padding is not echoed
        return reply;
    }
    case NetworkLayer::ipv6: {
        const LocalReply reply = answer_ipv6(frame, length, capacity, packet, local, drop_reason);
        if (reply == LocalReply::icmpv6_echo_reply)
            length = packet.l3_end;
        return reply;
    }
    case NetworkLayer::other:
        break;
    }
    return LocalReply::not_local;
}

} // namespace sluice
