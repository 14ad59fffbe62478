// Every reason the data plane drops a packet, in one table (VPP's error
// X-macro): it becomes the enum, the counter names and their descriptions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice {

#define SLUICE_DROP_REASONS(X)                                                           \
    /* Ethernet and VLAN */                                                              \
    X(truncated_ethernet, "frame shorter than an Ethernet header")                       \
    X(truncated_vlan, "802.1Q tag cut off by the end of the frame")                      \
    X(too_many_vlan_tags, "more than two stacked VLAN tags")                             \
    /* ARP */                                                                            \
    X(truncated_arp, "ARP packet shorter than 28 bytes")                                 \
    X(unsupported_arp, "ARP not for Ethernet and IPv4 addresses")                        \
    /* IPv4 */                                                                           \
    X(truncated_ipv4, "IPv4 header cut off by the end of the frame")                     \
    X(bad_ipv4_version, "version field is not 4 in an IPv4 EtherType")                  \
    X(bad_ipv4_ihl, "IPv4 header length below 20 bytes")                                 \
    X(truncated_ipv4_options, "IPv4 options run past the end of the frame")              \
    X(ipv4_total_length_below_header, "IPv4 total length smaller than its header")       \
    X(ipv4_total_length_beyond_frame, "IPv4 total length larger than the frame")         \
    X(bad_ipv4_checksum, "IPv4 header checksum does not verify")                         \
    X(bad_ipv4_source, "IPv4 source is multicast or broadcast")                          \
    /* IPv6 */                                                                           \
    X(truncated_ipv6, "IPv6 header cut off by the end of the frame")                     \
    X(bad_ipv6_version, "version field is not 6 in an IPv6 EtherType")                   \
    X(ipv6_payload_beyond_frame, "IPv6 payload length larger than the frame")            \
    X(truncated_ipv6_extension, "IPv6 extension header runs past the payload")           \
    X(too_many_ipv6_extensions, "more IPv6 extension headers than the parser follows")   \
    X(misplaced_ipv6_hop_by_hop, "hop-by-hop options not first (RFC 8200 4.1)")          \
    X(bad_ipv6_source, "IPv6 source is multicast")                                       \
    /* Transport */                                                                      \
    X(truncated_tcp, "TCP header cut off by the end of the IP payload")                  \
    X(bad_tcp_data_offset, "TCP data offset below 5 words")                              \
    X(tcp_options_beyond_packet, "TCP data offset points past the IP payload")           \
    X(truncated_udp, "UDP header cut off by the end of the IP payload")                  \
    X(bad_udp_length, "UDP length below 8 or beyond the IP payload")                     \
    X(truncated_icmp, "ICMP header cut off by the end of the IP payload")                \
    X(truncated_icmpv6, "ICMPv6 header cut off by the end of the IP payload")            \
    /* Local replies */                                                                  \
    X(bad_icmp_checksum, "ICMP echo request to a local address with a bad checksum")     \
    X(bad_icmpv6_checksum, "ICMPv6 message to a local address with a bad checksum")      \
    X(bad_neighbor_discovery, "neighbor discovery message that fails RFC 4861 7.1.1")    \
    X(no_room_for_reply, "reply does not fit in the packet buffer")                      \
    /* Balancing */                                                                      \
    X(fragment_without_first, "a later fragment for a VIP or SNAT address, its first unseen") \
    X(no_flow_for_segment, "a TCP segment other than SYN for a fullnat VIP, no flow")     \
    X(no_backend, "the service has no backend with a non-zero weight")                   \
    X(backend_removed, "the flow's backend left a service whose policy is reset")        \
    X(next_hop_unresolved, "the backend's MAC stayed unknown (or no way there)")         \
    X(neighbour_queue_full, "too many packets already wait for their next hops")         \
    X(snat_ports_exhausted, "no free SNAT port toward the backend")                      \
    X(flow_table_full, "the flow table has no room and the mode needs state")            \
    X(reverse_tuple_in_use, "a nat flow whose answers would look like another flow's")   \
    X(ttl_exceeded, "TTL or hop limit would reach zero")                                 \
    X(no_room_for_encapsulation, "no headroom or address for the DSR outer header")      \
    X(too_big_to_encapsulate, "too big for the link once encapsulated; no ICMP sent")   \
    /* Userspace TCP (proxy services) */                                                 \
    X(fragment_to_stack, "a fragmented TCP segment for the worker's TCP, not reassembled") \
    X(bad_tcp_checksum, "a TCP segment for the worker's TCP with a bad checksum")        \
    X(bad_tcp_option, "a TCP option of the wrong length, for the worker's TCP")          \
    X(tcp_no_route, "a segment of the worker's TCP toward a peer it has no MAC for")     \
    X(tcp_no_mbuf, "no packet buffer for a segment of the worker's TCP")                 \
    /* Forwarding */                                                                     \
    X(no_exception_path, "not for the gateway and the port has no exception path")      \
    X(exception_path_full, "the exception path TAP did not take the packet")            \
    X(steering_full, "the owning worker's inbox did not take the packet")                 \
    X(tx_full, "the port's TX queue did not take the packet")

enum class DropReason : uint8_t {
    none = 0,
#define SLUICE_DROP_ENUM(name, text) name,
    SLUICE_DROP_REASONS(SLUICE_DROP_ENUM)
#undef SLUICE_DROP_ENUM
        count
};

constexpr size_t drop_reason_count = size_t(DropReason::count);

const char *drop_reason_name(DropReason reason);
const char *drop_reason_description(DropReason reason);

} // namespace sluice
