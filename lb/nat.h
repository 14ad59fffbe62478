// Address and port rewrites for FullNAT and NAT, in place in a parsed frame,
// with checksums updated incrementally (RFC 1624) instead of recomputed, and
// the translation of ICMP errors about a flow. No EAL.
#pragma once

#include <array>
#include <cstdint>

#include "dataplane/net_addr.h"
#include "dataplane/packet_parse.h"
#include "lb/flow_key.h"

namespace sluice::lb {

// The tuple the packet carries now, read from the frame (family, addresses,
// protocol, and ports for TCP/UDP when the L4 header is present).
FlowKey flow_key_of(const uint8_t *frame, const ParsedPacket &packet);

// Gives the IPv4/IPv6 packet the addresses and ports of `to` (same family and
// protocol as the packet). Updates the IPv4 header checksum and the TCP or UDP
// checksum (a zero UDP checksum over IPv4 means none and stays zero; over IPv6
// it is invalid and is left alone). Fragments without an L4 header get only
// their addresses changed. Does not touch TTL or hop limit.
void rewrite_tuple(uint8_t *frame, const ParsedPacket &packet, const FlowKey &to);

// Decrements the IPv4 TTL (fixing the checksum) or the IPv6 hop limit.
// Returns false, changing nothing, when it is already 1 or 0 and the packet
// must not be forwarded.
bool decrement_hop_limit(uint8_t *frame, const ParsedPacket &packet);

// The changes forward_rewrite() makes to the checksums of a flow's IPv4
// packets: [0] for packets of `forward` (rewritten for `reverse`), [1] for
// packets of `reverse` (rewritten for `forward`). One's-complement sums of
// ~m + m' over every word m that becomes m' (RFC 1624 eqn 3), folded to 16
// bits: the header's covers both addresses and the TTL's decrement, the L4
// checksum's the addresses (its pseudo-header) and the ports. All packets of
// a flow's side carry the same tuple, so the flow table computes them once
// per flow and each packet adds two numbers. Zero when either tuple is
// IPv6, which the general path rewrites.
std::array<RewriteSums, 2> rewrite_sums(const FlowKey &forward, const FlowKey &reverse);

// What a balanced packet needs before it leaves: decrement_hop_limit(), then
// rewrite_tuple() to `answer.reversed()` (a flow's packets in one direction
// carry the tuple its answers carry, turned round). Returns false, changing
// nothing, when the hop limit is spent. The bytes written are exactly those
// of the two calls; IPv4 TCP and UDP with their header take a fast path that
// writes each changed field once and updates each checksum by `sums`, which
// must be rewrite_sums() of the flow, for the side whose tuple the packet
// carries.
bool forward_rewrite(uint8_t *frame, const ParsedPacket &packet, const FlowKey &answer,
                     RewriteSums sums);

// ICMP errors (destination unreachable, time exceeded, parameter problem;
// for IPv6 also packet too big) quote the start of the packet that caused
// them. `quoted_flow_key` reads that quoted packet's tuple, as it was sent
// (so from the error's sender's point of view, reversed from the flow's
// direction of travel back to us). Returns false when the packet is not an
// ICMP error or the quote is too short (fewer than 8 bytes of L4 header).
bool quoted_flow_key(const uint8_t *frame, const ParsedPacket &packet, FlowKey &quoted);

// Rewrites an ICMP error: the outer header gets `outer` (addresses only, as
// an ICMP error has no ports), the quoted packet gets `quoted` (addresses and
// ports), and the IPv4 header, quoted IPv4 header, quoted L4 and ICMP
// checksums are kept correct. Returns false, changing nothing, when
// quoted_flow_key() would.
bool rewrite_icmp_error(uint8_t *frame, const ParsedPacket &packet, const FlowKey &outer,
                        const FlowKey &quoted);

// Turns a TCP segment (untagged Ethernet, IPv4 or IPv6, L4 header present)
// into the RST that answers it (RFC 9293 3.10.7.1): addresses and ports
// swapped, from `source_mac` to the MAC the segment came from, no IP options
// or extension headers, no payload, checksums computed afresh. Returns the
// new frame length, or 0, changing nothing, for a segment that is itself a
// RST (never answered) or not TCP.
uint32_t turn_into_reset(uint8_t *frame, const ParsedPacket &packet, const uint8_t source_mac[6]);

// Turns a packet (untagged Ethernet, IPv4 or IPv6) that is too big for the
// next link into the ICMP error that says so, back to its sender: IPv4
// "fragmentation needed" (RFC 1191) quoting up to 548 bytes, IPv6 "packet
// too big" (RFC 8201) quoting up to 1232, from `from` (an address of the
// packet's family) and `source_mac`, to the MAC the packet came from.
// `capacity` is the room the frame's buffer has. Returns the new frame
// length, or 0, changing nothing, when it cannot.
uint32_t turn_into_too_big(uint8_t *frame, uint32_t capacity, const ParsedPacket &packet,
                           const IpAddress &from, const uint8_t source_mac[6], uint16_t mtu);

} // namespace sluice::lb
