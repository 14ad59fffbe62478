#include "lb/nat.h"

#include <bit>
#include <cstring>

#include "dataplane/byte_order.h"
#include "dataplane/checksum.h"

namespace sluice::lb {

namespace {

// Header fields this file rewrites (RFC 791 3.1, RFC 8200 3, RFC 9293 3.1,
// RFC 768, RFC 792, RFC 4443 2.1).
constexpr size_t ipv4_ttl = 8;
constexpr size_t ipv4_header_checksum = 10;
constexpr size_t ipv4_source = 12;
constexpr size_t ipv4_destination = 16;
constexpr size_t ipv4_min_header = 20;
constexpr size_t ipv6_hop_limit = 7;
constexpr size_t ipv6_source = 8;
constexpr size_t ipv6_destination = 24;
constexpr size_t ipv6_header_length = 40;
constexpr size_t tcp_checksum = 16;
constexpr size_t udp_checksum = 6;
constexpr size_t icmp_checksum = 2;
// An ICMP error is type, code, checksum and one 32-bit word, then the quote
// (RFC 792; RFC 4443 3).
constexpr size_t icmp_error_quote = 8;
// RFC 792 quotes "the internet header plus the first 64 bits of the original
// datagram's data": enough for the ports of TCP and UDP.
constexpr size_t quoted_l4_minimum = 8;

inline uint16_t load16(const uint8_t *p) {
    uint16_t value;
    std::memcpy(&value, p, 2);
    return value;
}


// How a rewrite changed the one's-complement sum of the bytes a checksum
// covers: ~m + m' for every 16-bit word m that became m' (RFC 1624 3, eqn 3).
// Words are taken in memory order, as checksum.h takes them; the sum does not
// depend on byte order (RFC 1071 2(B)) as long as every changed range starts
// at an even offset from the start of what the checksum covers. Every field
// rewritten here does: addresses, ports and checksum fields sit at even
// offsets in their headers, and an ICMP error's quote starts 8 bytes in.
class SumChange {
public:
    void add(const uint8_t *before, const uint8_t *after, size_t length) {
        for (size_t i = 0; i < length; i += 2) {
            sum_ += uint16_t(~load16(before + i));
            sum_ += load16(after + i);
        }
    }

    SumChange &operator+=(const SumChange &other) {
        sum_ += other.sum_;
        return *this;
    }
    friend SumChange operator+(SumChange a, const SumChange &b) { return a += b; }

    // A 32-bit field that went from `before` to `after` (both as loaded
    // from memory): its two 16-bit words at once, since 2^16 = 1 modulo
    // 0xffff and the fold below only sees the sum modulo 0xffff (and
    // whether it is 0, which for a nonzero multiple of 0xffff gives the
    // same 0xffff the fold does).
    void add32(uint32_t before, uint32_t after) { sum_ += uint64_t(~before) + after; }
    void add16(uint16_t before, uint16_t after) { sum_ += uint16_t(~before) + after; }

    // The sum folded to 16 bits: 0 only when it is 0, else 1..0xffff, the
    // same modulo 0xffff. applied_to() gives the same result from either.
    uint16_t folded() const {
        uint64_t sum = (sum_ & 0xffffffff) + (sum_ >> 32);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        return uint16_t(sum);
    }
    static SumChange of_folded(uint16_t folded) {
        SumChange change;
        change.sum_ = folded;
        return change;
    }

    // HC' = ~(~HC + ~m + m') (RFC 1624 eqn 3). Folding a nonzero sum gives
    // 1..0xffff, as does a full computation over data that is never all zeros
    // (the IPv4 version nibble, the pseudo-header's protocol), so the result
    // is bit for bit what a full recomputation would write; the tests compare
    // against exactly that. A total of exactly 0 (HC = 0xffff and a change
    // that sums to 0, as a flow's kept sums do when its rewrite changes
    // nothing modulo 0xffff) is taken as 0xffff, as a nonzero multiple of
    // 0xffff folds: the result then depends only on the total modulo 0xffff,
    // which is what lets a folded sum, and ~x for -x, stand in for the full
    // one (rewrite_sums).
    uint16_t applied_to(uint16_t checksum) const {
        // The end-around-carry fold in four fixed steps (the sum is below
        // 2^40: 32 bits, then at most 2^17 + 2^16, 0xffff + 2, 0xffff); a
        // loop ran a data-dependent number of times, each a branch the CPU
        // could not predict.
        uint64_t sum = uint16_t(~checksum) + sum_;
        sum = (sum & 0xffffffff) + (sum >> 32);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        if (sum == 0)
            sum = 0xffff;
        return uint16_t(~sum);
    }

    // of_folded(folded).applied_to(checksum) in one fold: ~HC + folded is
    // below 2^17, so one end-around carry brings it to 0..0xffff and the
    // other three folds of applied_to() would change nothing.
    static uint16_t applied_folded(uint16_t folded, uint16_t checksum) {
        uint32_t sum = uint32_t(uint16_t(~checksum)) + folded;
        sum = (sum & 0xffff) + (sum >> 16);
        if (sum == 0)
            sum = 0xffff;
        return uint16_t(~sum);
    }

private:
    uint64_t sum_ = 0;
};

// Overwrites `length` (even) bytes at `at` and returns the change to the sum.
SumChange replace(uint8_t *at, const void *with, size_t length) {
    SumChange change;
    change.add(at, static_cast<const uint8_t *>(with), length);
    std::memcpy(at, with, length);
    return change;
}

// Applies `change` to the checksum field at `field`. Returns the change to
// the field's own two bytes, for a checksum that covers this one (an ICMP
// error's covers the quoted headers' checksums).
SumChange update_checksum(uint8_t *field, const SumChange &change) {
    const uint16_t value = change.applied_to(load16(field));
    return replace(field, &value, 2);
}

// RFC 768: a zero UDP checksum means the sender computed none; it stays zero
// over IPv4. Over IPv6 zero is invalid (RFC 8200 8.1): left as it is, for
// the receiver to drop. A checksum that computes to zero is sent as all ones.
SumChange update_udp_checksum(uint8_t *field, const SumChange &change) {
    uint16_t value = load16(field);
    if (value == 0)
        return {};
    value = change.applied_to(value);
    if (value == 0)
        value = 0xffff;
    return replace(field, &value, 2);
}

bool has_ports(uint8_t protocol) {
    return protocol == ip_proto::tcp || protocol == ip_proto::udp;
}

// What rewriting the addresses of one IP header changed.
struct AddressChange {
    // The addresses alone: what a TCP, UDP or ICMPv6 checksum sees through
    // its pseudo-header.
    SumChange pseudo_header;
    // Every byte of the header that changed, the IPv4 header checksum
    // included: what a checksum over the whole header sees (an ICMP error's,
    // over its quote).
    SumChange header;
};

// Gives the IP header at `ip` new addresses and, for IPv4, keeps its header
// checksum right.
AddressChange rewrite_addresses(uint8_t *ip, bool ipv6, const FlowKey &to) {
    AddressChange change;
    if (ipv6) {
        change.pseudo_header = replace(ip + ipv6_source, to.source.data(), 16) +
                               replace(ip + ipv6_destination, to.destination.data(), 16);
        change.header = change.pseudo_header;
    } else {
        change.pseudo_header = replace(ip + ipv4_source, to.source.data(), 4) +
                               replace(ip + ipv4_destination, to.destination.data(), 4);
        change.header = change.pseudo_header +
                        update_checksum(ip + ipv4_header_checksum, change.pseudo_header);
    }
    return change;
}

// Gives a TCP or UDP header its new ports; other protocols have none.
// `l4` holds at least 4 bytes.
SumChange rewrite_ports(uint8_t *l4, uint8_t protocol, const FlowKey &to) {
    if (!has_ports(protocol))
        return {};
    return replace(l4, &to.source_port, 2) + replace(l4 + 2, &to.destination_port, 2);
}

// Updates the checksum of the L4 header at `l4`, of which `available` bytes
// are present, after `pseudo_header` and `ports` changed. A checksum outside
// the bytes present is left alone. ICMPv4's checksum covers neither
// addresses nor ports (RFC 792); ICMPv6's covers the pseudo-header (RFC 4443
// 2.3). Returns the change to the checksum field's own bytes.
SumChange update_l4_checksum(uint8_t *l4, size_t available, uint8_t protocol, bool ipv6,
                             const SumChange &pseudo_header, const SumChange &ports) {
    switch (protocol) {
    case ip_proto::tcp:
        if (available >= tcp_checksum + 2)
            return update_checksum(l4 + tcp_checksum, pseudo_header + ports);
        return {};
    case ip_proto::udp:
        if (available >= udp_checksum + 2)
            return update_udp_checksum(l4 + udp_checksum, pseudo_header + ports);
        return {};
    case ip_proto::icmpv6:
        if (ipv6 && available >= icmp_checksum + 2)
            return update_checksum(l4 + icmp_checksum, pseudo_header);
        return {};
    default:
        return {};
    }
}

bool is_ip(const ParsedPacket &packet) {
    return packet.network == NetworkLayer::ipv4 || packet.network == NetworkLayer::ipv6;
}

uint8_t family_of(const ParsedPacket &packet) {
    return packet.network == NetworkLayer::ipv6 ? 6 : 4;
}

// Where the packet an ICMP error quotes lies in the frame.
struct Quote {
    uint32_t ip_offset = 0;
    uint32_t l4_offset = 0;
    uint32_t l4_available = 0;  // bytes of its L4 header in the quote; >= 8
    uint8_t protocol = 0;
};

bool is_icmp_error(uint8_t type, bool ipv6) {
    if (ipv6)  // RFC 4443 3.1-3.4
        return type == 1 || type == 2 || type == 3 || type == 4;
    // RFC 792: destination unreachable, time exceeded, parameter problem.
    return type == 3 || type == 11 || type == 12;
}

bool is_ipv6_extension(uint8_t next_header) {
    return next_header == ip_proto::hop_by_hop || next_header == ip_proto::ipv6_routing ||
           next_header == ip_proto::ipv6_fragment || next_header == ip_proto::ipv6_dest_options ||
           next_header == ip_proto::ah;
}

// Finds the quoted packet of an ICMP error, reading nothing at or past
// packet.l3_end. Refuses, besides what is not an error or quotes too little:
// - a fragmented error: its checksum covers bytes in other fragments, and an
//   error never needs fragmenting (RFC 1812 4.3.2.3 keeps it within 576
//   bytes, RFC 4443 2.4(c) within the minimum IPv6 MTU);
// - a quote of another family than the error's;
// - a quoted IPv4 fragment other than the first, whose first 64 bits are
//   data, not ports;
// - a quoted IPv6 header followed by extension headers (or by none): finding
//   the ports would mean walking them inside a quote, and a balanced flow's
//   packets carry none.
bool find_quote(const uint8_t *frame, const ParsedPacket &packet, Quote &quote) {
    if (!is_ip(packet) || !packet.has_l4 || packet.fragment)
        return false;
    const bool ipv6 = packet.network == NetworkLayer::ipv6;
    if (packet.l4_protocol != (ipv6 ? ip_proto::icmpv6 : ip_proto::icmp))
        return false;
    // The parser checked that the ICMP header's first 4 (ICMPv6) or 8 bytes
    // are within l3_end.
    if (!is_icmp_error(frame[packet.l4_offset], ipv6))
        return false;
    const uint32_t ip_offset = uint32_t(packet.l4_offset) + icmp_error_quote;
    const uint32_t end = packet.l3_end;
    if (ip_offset > end)
        return false;
    const uint32_t available = end - ip_offset;
    const uint8_t *ip = frame + ip_offset;
    uint32_t header_length;
    uint8_t protocol;
    if (ipv6) {
        if (available < ipv6_header_length || (ip[0] >> 4) != 6)
            return false;
        header_length = ipv6_header_length;
        protocol = ip[6];
        if (is_ipv6_extension(protocol) || protocol == ip_proto::ipv6_no_next)
            return false;
    } else {
        if (available < ipv4_min_header || (ip[0] >> 4) != 4)
            return false;
        header_length = uint32_t(ip[0] & 0x0f) * 4;
        if (header_length < ipv4_min_header)
            return false;
        if (read_be16(ip + 6) & 0x1fff)  // fragment offset
            return false;
        protocol = ip[9];
    }
    if (available < header_length + quoted_l4_minimum)
        return false;
    quote.ip_offset = ip_offset;
    quote.l4_offset = ip_offset + header_length;
    quote.l4_available = available - header_length;
    quote.protocol = protocol;
    return true;
}

// Reads the tuple of the IP header at `ip` and, when it has ports, of the L4
// header at `l4`.
FlowKey read_tuple(const uint8_t *ip, bool ipv6, uint8_t protocol, const uint8_t *l4) {
    FlowKey key;
    key.family = ipv6 ? 6 : 4;
    key.protocol = protocol;
    if (ipv6) {
        std::memcpy(key.source.data(), ip + ipv6_source, 16);
        std::memcpy(key.destination.data(), ip + ipv6_destination, 16);
    } else {
        std::memcpy(key.source.data(), ip + ipv4_source, 4);
        std::memcpy(key.destination.data(), ip + ipv4_destination, 4);
    }
    if (l4 && has_ports(protocol)) {
        std::memcpy(&key.source_port, l4, 2);
        std::memcpy(&key.destination_port, l4 + 2, 2);
    }
    return key;
}

} // namespace

FlowKey flow_key_of(const uint8_t *frame, const ParsedPacket &packet) {
    if (!is_ip(packet))
        return FlowKey{};
    // The parser checked 20 bytes of TCP or 8 of UDP when it set has_l4.
    const uint8_t *l4 = packet.has_l4 ? frame + packet.l4_offset : nullptr;
    return read_tuple(frame + packet.l3_offset, packet.network == NetworkLayer::ipv6,
                      packet.l4_protocol, l4);
}

void rewrite_tuple(uint8_t *frame, const ParsedPacket &packet, const FlowKey &to) {
    if (!is_ip(packet) || to.family != family_of(packet))
        return;  // a caller's mistake; writing 16 bytes into an IPv4 header would be worse
    const bool ipv6 = packet.network == NetworkLayer::ipv6;
    const AddressChange addresses = rewrite_addresses(frame + packet.l3_offset, ipv6, to);
    // A fragment after the first has no L4 header. The first fragment's
    // checksum covers the whole datagram, so updating it for the new
    // pseudo-header (and ports) stays valid once every fragment has the
    // new addresses.
    if (!packet.has_l4)
        return;
    uint8_t *l4 = frame + packet.l4_offset;
    const SumChange ports = rewrite_ports(l4, packet.l4_protocol, to);
    update_l4_checksum(l4, packet.l4_length, packet.l4_protocol, ipv6, addresses.pseudo_header,
                       ports);
}

bool decrement_hop_limit(uint8_t *frame, const ParsedPacket &packet) {
    uint8_t *ip = frame + packet.l3_offset;
    if (packet.network == NetworkLayer::ipv6) {
        if (ip[ipv6_hop_limit] <= 1)
            return false;
        --ip[ipv6_hop_limit];
        return true;
    }
    if (packet.network != NetworkLayer::ipv4 || ip[ipv4_ttl] <= 1)
        return false;
    // TTL shares its 16-bit word with the protocol (RFC 1624 4 works this
    // very example).
    const uint8_t word[2] = {uint8_t(ip[ipv4_ttl] - 1), ip[ipv4_ttl + 1]};
    update_checksum(ip + ipv4_header_checksum, replace(ip + ipv4_ttl, word, 2));
    return true;
}

namespace {

inline uint32_t load32(const uint8_t *p) {
    uint32_t value;
    std::memcpy(&value, p, 4);
    return value;
}

inline void store16(uint8_t *p, uint16_t value) { std::memcpy(p, &value, 2); }
inline void store32(uint8_t *p, uint32_t value) { std::memcpy(p, &value, 4); }

// TTL is the first byte of its word in memory: the word's low byte here,
// its high byte on a big-endian CPU. Forwarded, it is at least 2: no borrow.
constexpr uint16_t ttl_decrement = std::endian::native == std::endian::little ? 1 : 0x100;

// Two ports (network byte order) as they sit in a TCP or UDP header.
uint32_t ports_word(uint16_t source_port, uint16_t destination_port) {
    uint32_t ports;
    std::memcpy(&ports, &source_port, 2);
    std::memcpy(reinterpret_cast<uint8_t *>(&ports) + 2, &destination_port, 2);
    return ports;
}

// forward_rewrite() for IPv4 TCP and UDP with their header: each changed
// field written once, each checksum updated once, by the flow's sums
// (sequential RFC 1624 updates and one combined update give the same bits,
// see SumChange).
bool forward_rewrite_ipv4(uint8_t *frame, const ParsedPacket &packet, const FlowKey &answer,
                          RewriteSums sums) {
    uint8_t *ip = frame + packet.l3_offset;
    if (ip[ipv4_ttl] <= 1)
        return false;
    store16(ip + ipv4_ttl, uint16_t(load16(ip + ipv4_ttl) - ttl_decrement));
    store32(ip + ipv4_source, load32(answer.destination.data()));
    store32(ip + ipv4_destination, load32(answer.source.data()));
    store16(ip + ipv4_header_checksum,
            SumChange::applied_folded(sums.header, load16(ip + ipv4_header_checksum)));

    uint8_t *l4 = frame + packet.l4_offset;
    store32(l4, ports_word(answer.destination_port, answer.source_port));
    // update_udp_checksum's rules, inline: no call, no SumChange in memory.
    const bool udp = packet.l4_protocol == ip_proto::udp;
    uint8_t *field = l4 + (udp ? udp_checksum : tcp_checksum);
    const uint16_t checksum = load16(field);
    uint16_t updated = SumChange::applied_folded(sums.l4, checksum);
    if (udp && checksum == 0)
        updated = 0;  // none computed: stays none
    else if (udp && updated == 0)
        updated = 0xffff;
    store16(field, updated);
    return true;
}

// Out of line: its 40-byte FlowKey would cost the fast path a stack canary.
[[gnu::noinline]] bool forward_rewrite_general(uint8_t *frame, const ParsedPacket &packet,
                                               const FlowKey &answer) {
    if (!decrement_hop_limit(frame, packet))
        return false;
    rewrite_tuple(frame, packet, answer.reversed());
    return true;
}

} // namespace

std::array<RewriteSums, 2> rewrite_sums(const FlowKey &forward, const FlowKey &reverse) {
    if (forward.family != 4 || reverse.family != 4)
        return {};
    // A forward packet's new source is the reverse tuple's destination, and
    // so on. The reverse side's packets undo each change: their sums are the
    // negatives, ~x in one's complement; applied_to() depends only on a sum
    // modulo 0xffff, so ~x serves for -x bit for bit.
    SumChange addresses;
    addresses.add32(load32(forward.source.data()), load32(reverse.destination.data()));
    addresses.add32(load32(forward.destination.data()), load32(reverse.source.data()));
    SumChange l4 = addresses;
    l4.add32(ports_word(forward.source_port, forward.destination_port),
             ports_word(reverse.destination_port, reverse.source_port));
    // The TTL word m becomes m - d on either side: ~m + m - d is ~d
    // whatever m, as if a word d became 0.
    SumChange ttl;
    ttl.add16(ttl_decrement, 0);
    const uint16_t address_sum = addresses.folded(), l4_sum = l4.folded();
    return {{{(SumChange::of_folded(address_sum) + ttl).folded(), l4_sum},
             {(SumChange::of_folded(uint16_t(~address_sum)) + ttl).folded(), uint16_t(~l4_sum)}}};
}

bool forward_rewrite(uint8_t *frame, const ParsedPacket &packet, const FlowKey &answer,
                     RewriteSums sums) {
    // The parser checked 20 bytes of TCP or 8 of UDP when it set has_l4, so
    // the ports and the checksum are inside; later fragments, ICMP and IPv6
    // take the general path.
    if (packet.network == NetworkLayer::ipv4 && answer.family == 4 && packet.has_l4 &&
        (packet.l4_protocol == ip_proto::tcp || packet.l4_protocol == ip_proto::udp))
        return forward_rewrite_ipv4(frame, packet, answer, sums);
    return forward_rewrite_general(frame, packet, answer);
}

bool quoted_flow_key(const uint8_t *frame, const ParsedPacket &packet, FlowKey &quoted) {
    Quote quote;
    if (!find_quote(frame, packet, quote))
        return false;
    quoted = read_tuple(frame + quote.ip_offset, packet.network == NetworkLayer::ipv6,
                        quote.protocol, frame + quote.l4_offset);
    return true;
}

// The ICMP checksum is updated incrementally, like every other: each byte
// this function changes inside the ICMP message (quoted addresses, ports,
// quoted IPv4 header checksum, quoted L4 checksum) and, for ICMPv6, the outer
// addresses in its pseudo-header are accounted for. Recomputing it over the
// message would be as correct for a good packet but would also turn one
// corrupted on the way into a valid-looking one; incremental updates keep
// the corruption detectable by the receiver (RFC 1624 1).
bool rewrite_icmp_error(uint8_t *frame, const ParsedPacket &packet, const FlowKey &outer,
                        const FlowKey &quoted) {
    Quote quote;
    if (!find_quote(frame, packet, quote))
        return false;
    const uint8_t family = family_of(packet);
    if (outer.family != family || quoted.family != family)
        return false;
    const bool ipv6 = family == 6;

    const AddressChange outer_change = rewrite_addresses(frame + packet.l3_offset, ipv6, outer);
    SumChange icmp_change;
    if (ipv6)
        icmp_change += outer_change.pseudo_header;

    const AddressChange quoted_change = rewrite_addresses(frame + quote.ip_offset, ipv6, quoted);
    icmp_change += quoted_change.header;
    uint8_t *l4 = frame + quote.l4_offset;
    const SumChange ports = rewrite_ports(l4, quote.protocol, quoted);
    icmp_change += ports;
    // The quoted L4 checksum covered the whole original segment; an
    // incremental update keeps it matching what the segment now would be.
    icmp_change += update_l4_checksum(l4, quote.l4_available, quote.protocol, ipv6,
                                      quoted_change.pseudo_header, ports);

    update_checksum(frame + packet.l4_offset + icmp_checksum, icmp_change);
    return true;
}

namespace {

// Ethernet of a reply: back to the MAC the packet came from, from ours.
void address_reply(uint8_t *frame, const uint8_t source_mac[6]) {
    std::memmove(frame, frame + 6, 6);
    std::memcpy(frame + 6, source_mac, 6);
}

// Writes a fresh IP header at `ip` (IPv4 without options, its checksum
// included; IPv6 without extensions) for `payload_length` bytes of
// `protocol`, and returns the sum of the pseudo-header such a payload's
// checksum covers. Addresses are 4 or 16 bytes.
uint64_t write_ip_header(uint8_t *ip, bool ipv6, uint8_t protocol, uint16_t payload_length,
                         uint8_t hop_limit, bool dont_fragment, const uint8_t *source,
                         const uint8_t *destination) {
    if (ipv6) {
        ip[0] = 0x60;
        ip[1] = ip[2] = ip[3] = 0;
        write_be16(ip + 4, payload_length);
        ip[6] = protocol;
        ip[ipv6_hop_limit] = hop_limit;
        std::memcpy(ip + ipv6_source, source, 16);
        std::memcpy(ip + ipv6_destination, destination, 16);
        return ipv6_pseudo_header_sum(source, destination, payload_length, protocol);
    }
    ip[0] = 0x45;
    ip[1] = 0;
    write_be16(ip + 2, uint16_t(ipv4_min_header + payload_length));
    write_be16(ip + 4, 0);
    write_be16(ip + 6, dont_fragment ? 0x4000 : 0);
    ip[ipv4_ttl] = hop_limit;
    ip[9] = protocol;
    std::memcpy(ip + ipv4_source, source, 4);
    std::memcpy(ip + ipv4_destination, destination, 4);
    ip[ipv4_header_checksum] = ip[ipv4_header_checksum + 1] = 0;
    const uint16_t header_sum = internet_checksum(ip, ipv4_min_header);
    std::memcpy(ip + ipv4_header_checksum, &header_sum, 2);
    const uint8_t tail[4] = {0, protocol, uint8_t(payload_length >> 8), uint8_t(payload_length)};
    return checksum_add(checksum_add(checksum_add(0, source, 4), destination, 4), tail, 4);
}

} // namespace

uint32_t turn_into_reset(uint8_t *frame, const ParsedPacket &packet, const uint8_t source_mac[6]) {
    constexpr size_t tcp_header = 20;
    if (!is_ip(packet) || !packet.has_l4 || packet.l4_protocol != ip_proto::tcp ||
        packet.vlan_count != 0)
        return 0;
    const uint8_t *in = frame + packet.l4_offset;
    const uint8_t flags = in[13];
    if (flags & tcp_flag::rst)
        return 0;
    const uint32_t seq = read_be32(in + 4), acknowledged = read_be32(in + 8);
    const uint32_t data_offset = uint32_t(in[12] >> 4) * 4;
    const uint32_t segment_length = packet.l4_length - std::min<uint32_t>(data_offset, packet.l4_length) +
                                    ((flags & tcp_flag::syn) ? 1 : 0) + ((flags & tcp_flag::fin) ? 1 : 0);
    const uint8_t ports[4] = {in[2], in[3], in[0], in[1]};

    address_reply(frame, source_mac);
    uint8_t *ip = frame + packet.l3_offset;
    const bool ipv6 = packet.network == NetworkLayer::ipv6;
    uint8_t source[16], destination[16];
    const size_t address_length = ipv6 ? 16 : 4;
    std::memcpy(source, ip + (ipv6 ? ipv6_destination : ipv4_destination), address_length);
    std::memcpy(destination, ip + (ipv6 ? ipv6_source : ipv4_source), address_length);
    const size_t ip_header = ipv6 ? ipv6_header_length : ipv4_min_header;
    uint8_t *tcp = ip + ip_header;

    std::memset(tcp, 0, tcp_header);
    std::memcpy(tcp, ports, 4);
    if (flags & tcp_flag::ack) {
        write_be32(tcp + 4, acknowledged);
        tcp[13] = tcp_flag::rst;
    } else {
        write_be32(tcp + 8, seq + segment_length);
        tcp[13] = tcp_flag::rst | tcp_flag::ack;
    }
    tcp[12] = uint8_t((tcp_header / 4) << 4);

    const uint64_t pseudo = write_ip_header(ip, ipv6, ip_proto::tcp, tcp_header, 64, true,
                                            source, destination);
    const uint16_t tcp_sum = checksum_finish(checksum_add(pseudo, tcp, tcp_header));
    std::memcpy(tcp + tcp_checksum, &tcp_sum, 2);
    return uint32_t(packet.l3_offset + ip_header + tcp_header);
}

uint32_t turn_into_too_big(uint8_t *frame, uint32_t capacity, const ParsedPacket &packet,
                           const IpAddress &from, const uint8_t source_mac[6], uint16_t mtu) {
    constexpr size_t icmp_header = 8;
    constexpr size_t ipv4_quote_limit = 576 - ipv4_min_header - icmp_header;
    constexpr size_t ipv6_quote_limit = 1280 - ipv6_header_length - icmp_header;
    const bool ipv6 = packet.network == NetworkLayer::ipv6;
    if (!is_ip(packet) || packet.vlan_count != 0 || from.is_v4() == ipv6)
        return 0;
    const size_t ip_header = ipv6 ? ipv6_header_length : ipv4_min_header;
    const size_t quote = std::min<size_t>(packet.l3_end - packet.l3_offset,
                                          ipv6 ? ipv6_quote_limit : ipv4_quote_limit);
    const size_t quote_at = packet.l3_offset + ip_header + icmp_header;
    if (quote_at + quote > capacity)
        return 0;
    uint8_t *ip = frame + packet.l3_offset;
    uint8_t destination[16];
    std::memcpy(destination, ip + (ipv6 ? ipv6_source : ipv4_source), ipv6 ? 16 : 4);
    std::memmove(frame + quote_at, ip, quote);

    address_reply(frame, source_mac);
    uint8_t *icmp = ip + ip_header;
    std::memset(icmp, 0, icmp_header);
    const uint16_t icmp_length = uint16_t(icmp_header + quote);
    if (ipv6) {
        icmp[0] = 2;  // packet too big
        write_be32(icmp + 4, mtu);
    } else {
        icmp[0] = 3;  // destination unreachable
        icmp[1] = 4;  // fragmentation needed and DF set
        write_be16(icmp + 6, mtu);
    }
    const uint64_t pseudo =
        write_ip_header(ip, ipv6, ipv6 ? ip_proto::icmpv6 : ip_proto::icmp, icmp_length,
                        ipv6 ? 255 : 64, false, from.bytes.data(), destination);
    // ICMPv4's checksum covers no pseudo-header; ICMPv6's does.
    const uint16_t sum = checksum_finish(checksum_add(ipv6 ? pseudo : 0, icmp, icmp_length));
    std::memcpy(icmp + icmp_checksum, &sum, 2);
    return uint32_t(quote_at + quote);
}

} // namespace sluice::lb
