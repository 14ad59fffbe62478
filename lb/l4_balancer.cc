#include "lb/l4_balancer.h"

#include <algorithm>
#include <cstring>

#include "dataplane/byte_order.h"
#include "lb/encap.h"
#include "lb/nat.h"

namespace sluice::lb {

namespace {

constexpr unsigned snat_attempts = 32;
constexpr size_t ethernet_header_length = 14;

uint8_t tcp_flags(const uint8_t *frame, const ParsedPacket &packet) {
    return packet.l4_protocol == ip_proto::tcp && packet.has_l4 ? frame[packet.l4_offset + 13]
                                                                 : 0;
}

bool is_new_connection(uint8_t flags) { return (flags & (tcp_flag::syn | tcp_flag::ack)) == tcp_flag::syn; }

// TCP state as a balancer in the middle sees it: it needs only how long to
// keep the flow, not the endpoints' full state machine.
FlowState next_state(FlowState state, uint8_t protocol, uint8_t flags, bool from_backend) {
    if (protocol != ip_proto::tcp)
        return FlowState::udp;
    if (state == FlowState::reset_sent)
        return state;
    if (flags & (tcp_flag::fin | tcp_flag::rst) || state == FlowState::closing)
        return FlowState::closing;
    return from_backend ? FlowState::established : state;
}

void set_ethernet(uint8_t *frame, const MacAddress &destination, const MacAddress &source) {
    std::memcpy(frame, destination.bytes.data(), 6);
    std::memcpy(frame + 6, source.bytes.data(), 6);
}

IpAddress address_of(const std::array<uint8_t, 16> &bytes, uint8_t family) {
    return family == 4 ? IpAddress::from_v4_be([&] {
        uint32_t be;
        std::memcpy(&be, bytes.data(), 4);
        return be;
    }())
                       : IpAddress::from_v6(bytes.data());
}

void copy_address(std::array<uint8_t, 16> &to, const IpAddress &from) {
    // Sizes the compiler can see: a memcpy of a variable size was a libc
    // call, twice per new fullnat flow.
    if (from.is_v4()) {
        to.fill(0);
        std::memcpy(to.data(), from.bytes.data(), 4);
    } else {
        std::memcpy(to.data(), from.bytes.data(), 16);
    }
}

BalanceResult dropped(DropReason reason) { return {BalanceVerdict::drop, reason, 0}; }

// True while the backend a flow's reverse tuple comes from is still one of
// the service's (a linear scan: only services that reset flows ask).
bool has_backend(const Service &service, const FlowKey &reverse) {
    for (const Backend &backend : service.backends) {
        if (std::memcmp(backend.address.bytes.data(), reverse.source.data(),
                        backend.address.is_v4() ? 4 : 16) == 0 &&
            (backend.port_be == 0 || backend.port_be == reverse.source_port))
            return true;
    }
    return false;
}

} // namespace

void L4Balancer::probe(const uint8_t *frame, const ParsedPacket &packet, FlowProbe &probe) const {
    probe.service_known = false;
    probe.candidate = (packet.network == NetworkLayer::ipv4 || packet.network == NetworkLayer::ipv6) &&
                      packet.vlan_count == 0 && packet.has_l4 &&
                      (packet.l4_protocol == ip_proto::tcp || packet.l4_protocol == ip_proto::udp);
    if (!probe.candidate)
        return;
    if (packet.network == NetworkLayer::ipv4) {
        // flow_key_of's result without its generality (a TCP or UDP
        // header is there): written in place, no 40-byte copy.
        const uint8_t *ip = frame + packet.l3_offset;
        const uint8_t *l4 = frame + packet.l4_offset;
        FlowKey &key = probe.key;
        key.source = {};
        key.destination = {};
        std::memcpy(key.source.data(), ip + 12, 4);
        std::memcpy(key.destination.data(), ip + 16, 4);
        std::memcpy(&key.source_port, l4, 2);
        std::memcpy(&key.destination_port, l4 + 2, 2);
        key.protocol = packet.l4_protocol;
        key.family = 4;
        key.reserved = 0;
    } else {
        probe.key = flow_key_of(frame, packet);
    }
    probe.hash = flows_.hash(probe.key);
    probe.hint = no_hint;
}

void L4Balancer::prefetch_buckets(const FlowProbe *probes, uint16_t count) const {
    for (uint16_t i = 0; i < count; ++i)
        if (probes[i].candidate)
            flows_.prefetch(probes[i].hash);
}

void L4Balancer::prefetch_flows(FlowProbe *probes, uint16_t count,
                                const Snapshot &snapshot) const {
    uint32_t new_flows = 0;
    for (uint16_t i = 0; i < count; ++i) {
        FlowProbe &probe = probes[i];
        if (!probe.candidate)
            continue;
        probe.hint = flows_.hint_of(probe.hash);
        if (probe.hint == no_hint)
            prefetch_new_flow(probe, snapshot, new_flows);
    }
    // As with the buckets: the flows' prefetches back to back.
    for (uint16_t i = 0; i < count; ++i)
        if (probes[i].candidate && probes[i].hint != no_hint)
            flows_.prefetch_flow(probes[i].hint, probes[i].key.family == 6);
}

void L4Balancer::prefetch_new_flow(FlowProbe &probe, const Snapshot &snapshot,
                                   uint32_t &new_flows) const {
    if (!probe.service_known) {
        probe.service = snapshot.find_service(probe.key);
        probe.service_known = true;
    }
    if (probe.service == Snapshot::no_service)
        return;
    const Service &service = snapshot.services()[probe.service];
    if (service.mode != ForwardingMode::fullnat)
        return;
    const uint32_t index = service.maglev.lookup(maglev_hash(probe.key, snapshot.maglev_key()));
    if (index == MaglevTable::no_backend)
        return;
    const uint32_t range = uint32_t(snat_.last) - snat_.first + 1;
    // The offset modulo the range without a division, but in a range
    // smaller than a burst.
    uint32_t offset = snat_cursor_ + new_flows++;
    if (offset >= range)
        offset %= range;
    const uint16_t port = uint16_t(snat_.first + offset);
    const IpAddress &local = local_address_of(service, probe.hash);
    flows_.prefetch_for_insert(flows_.hash(snat_tuple(local, service.backends[index], probe.key, port)));
}

FlowKey L4Balancer::snat_tuple(const IpAddress &local, const Backend &backend,
                               const FlowKey &client, uint16_t port) {
    FlowKey tuple;
    copy_address(tuple.source, backend.address);
    copy_address(tuple.destination, local);
    tuple.source_port = backend.port_be ? backend.port_be : client.destination_port;
    tuple.destination_port = uint16_t(port << 8 | port >> 8);
    tuple.protocol = client.protocol;
    tuple.family = client.family;
    return tuple;
}

BalanceResult L4Balancer::balance(FrameBuffer &frame, const ParsedPacket &packet,
                                  const FlowProbe &probe, uint16_t ingress_port,
                                  const Snapshot &snapshot, uint32_t now,
                                  BalancerCounters &counters) {
    if (!probe.candidate) {
        // Tagged traffic is left to the kernel: the balancer sends untagged
        // frames.
        if (packet.vlan_count != 0 ||
            (packet.network != NetworkLayer::ipv4 && packet.network != NetworkLayer::ipv6))
            return {};
        if (packet.fragment && !packet.has_l4)
            return later_fragment(frame, packet, ingress_port, snapshot, now, counters);
        if (packet.has_l4 && (packet.l4_protocol == ip_proto::icmp ||
                              packet.l4_protocol == ip_proto::icmpv6))
            return icmp_error(frame, packet, snapshot, now, counters);
        return {};
    }
    BalanceResult result;
    const uint32_t service =
        probe.service_known ? probe.service : snapshot.find_service(probe.key);
    if (service != Snapshot::no_service) {
        if (snapshot.services()[service].mode == ForwardingMode::proxy)
            return {packet.fragment ? BalanceVerdict::drop : BalanceVerdict::to_stack,
                    packet.fragment ? DropReason::fragment_to_stack : DropReason::none, 0};
        result = to_backend(frame, packet, ingress_port, snapshot, snapshot.services()[service],
                            probe.key, probe.hash, probe.hint, now, counters);
    } else {
        // Not for a VIP: perhaps a backend's answer.
        const FlowLookup found = flows_.lookup(probe.key, probe.hash, now, probe.hint);
        if (found.id == no_flow || !found.reverse)
            return {};
        result = to_client(frame, packet, snapshot, flows_.flow(found.id), now, counters);
    }
    // A first fragment: the rest of its datagram follows the same way.
    if (packet.fragment && (result.verdict == BalanceVerdict::forward ||
                            result.verdict == BalanceVerdict::await_next_hop))
        fragments_.remember(probe.key, packet.fragment_id, now);
    return result;
}

BalanceResult L4Balancer::later_fragment(FrameBuffer &frame, const ParsedPacket &packet,
                                         uint16_t ingress_port, const Snapshot &snapshot,
                                         uint32_t now, BalancerCounters &counters) {
    const FlowKey addresses = flow_key_of(frame.data, packet);  // no ports
    const FlowKey *datagram =
        fragments_.find(FragmentTable::identity(addresses, packet.fragment_id), now);
    if (!datagram) {
        // Its first fragment went to another worker, or never came by. Ours
        // (to a VIP or SNAT address) are never handed to the kernel.
        const bool balanced_protocol =
            addresses.protocol == ip_proto::tcp || addresses.protocol == ip_proto::udp;
        const bool ours = balanced_protocol &&
                          (snapshot.is_vip(addresses.destination, addresses.family) ||
                           snapshot.is_local_address(addresses.destination.data(),
                                                     addresses.family));
        return {BalanceVerdict::unknown_flow,
                ours ? DropReason::fragment_without_first : DropReason::none, 0};
    }
    counters.later_fragments.increment();
    const FlowKey key = *datagram;
    const uint64_t hash = flows_.hash(key);
    const uint32_t service = snapshot.find_service(key);
    if (service != Snapshot::no_service && snapshot.services()[service].mode == ForwardingMode::proxy)
        return dropped(DropReason::fragment_to_stack);
    if (service != Snapshot::no_service)
        return to_backend(frame, packet, ingress_port, snapshot, snapshot.services()[service],
                          key, hash, no_hint, now, counters);
    const FlowLookup found = flows_.lookup(key, hash, now);
    if (found.id == no_flow || !found.reverse)
        return dropped(DropReason::fragment_without_first);
    return to_client(frame, packet, snapshot, flows_.flow(found.id), now, counters);
}

bool L4Balancer::pick_snat_port(const IpAddress &local, const Backend &backend,
                                const FlowKey &client, uint32_t now, FlowKey &reverse,
                                uint64_t &reverse_hash) {
    // The backend answers to (local, port): any port of ours that no live
    // flow uses toward the same backend address and port will do. Ports are
    // taken in turn, not at random: a port comes round again only after the
    // whole slice has, long after the backend's TIME_WAIT for its last use
    // (DPVS's SNAT pools do the same), so a new connection never meets the
    // remains of an old one.
    const uint32_t range = uint32_t(snat_.last) - snat_.first + 1;
    for (unsigned attempt = 0; attempt < snat_attempts && attempt < range; ++attempt) {
        const uint16_t port = uint16_t(snat_.first + snat_cursor_);
        snat_cursor_ = snat_cursor_ + 1 == range ? 0 : snat_cursor_ + 1;
        reverse = snat_tuple(local, backend, client, port);
        reverse_hash = flows_.hash(reverse);
        if (flows_.lookup(reverse, reverse_hash, now).id == no_flow)
            return true;
    }
    return false;
}

BalanceResult L4Balancer::settle_flow(FrameBuffer &frame, const ParsedPacket &packet,
                                      uint16_t ingress_port, const Snapshot &snapshot,
                                      const Service &service, const FlowKey &key, uint64_t hash,
                                      FlowLookup found, uint8_t flags, uint32_t now,
                                      BalancerCounters &counters, FlowKey &reverse,
                                      BackendSlot &slot, RewriteSums &sums) {
    FlowEntry *flow = found.id != no_flow && !found.reverse ? &flows_.flow(found.id) : nullptr;
    // A SYN on a flow that was closing, or whose backend left a `reset`
    // service, opens a new connection with a reused source port: it is
    // balanced afresh (as IPVS's conn_reuse_mode does), else it would
    // inherit the old backend, which may have left, and the old SNAT port,
    // which the backend may still hold in TIME_WAIT.
    FlowId replaced = no_flow;
    const bool backend_gone =
        flow && (flow->state == FlowState::reset_sent ||
                 (service.removed_backend_flows == RemovedBackendFlows::reset &&
                  !has_backend(service, flow->reverse())));
    if (flow && key.protocol == ip_proto::tcp && is_new_connection(flags) &&
        (flow->state == FlowState::closing || backend_gone)) {
        replaced = found.id;
        flow = nullptr;
    }

    if (flow && backend_gone) {
        // The service says flows end with their backend: tell a TCP client
        // at once, so its retry finds a backend that is still there. The
        // flow stays until closing's timeout so that each later segment of
        // the client gets a RST too: a RST whose sequence is not exactly
        // the client's next expected one only earns a challenge ACK
        // (RFC 5961), and that ACK carries the exact sequence. Other
        // protocols just forget the flow.
        const uint32_t length =
            packet.has_l4 ? turn_into_reset(frame.data, packet,
                                            snapshot.ports()[ingress_port].mac.bytes.data())
                          : 0;
        if (length == 0) {
            if (key.protocol != ip_proto::tcp)
                flows_.remove(found.id);
            return dropped(DropReason::backend_removed);
        }
        if (flow->state != FlowState::reset_sent) {
            flow->state = FlowState::reset_sent;
            flow->last_seen = now;
        }
        frame.length = length;
        counters.resets_sent.increment();
        return {BalanceVerdict::forward, DropReason::none, ingress_port};
    }
    // A fullnat flow needs its SNAT port from the first segment on; in the
    // other modes Maglev alone picks the backend any instance would pick,
    // so a connection that moved here from another gateway carries on.
    if (service.mode == ForwardingMode::fullnat && key.protocol == ip_proto::tcp &&
        !is_new_connection(flags))
        return dropped(DropReason::no_flow_for_segment);
    // A later fragment whose flow is gone: only dsr may pick again, by
    // the same Maglev lookup its first fragment had.
    if (!packet.has_l4 && service.mode != ForwardingMode::dsr)
        return dropped(DropReason::fragment_without_first);
    const uint32_t index = service.maglev.lookup(maglev_hash(key, snapshot.maglev_key()));
    if (index == MaglevTable::no_backend)
        return dropped(DropReason::no_backend);
    const Backend &backend = service.backends[index];
    slot = backend.slot;
    uint64_t reverse_hash;
    if (service.mode == ForwardingMode::fullnat) {
        const IpAddress &local = local_address_of(service, hash);
        if (!pick_snat_port(local, backend, key, now, reverse, reverse_hash))
            return dropped(DropReason::snat_ports_exhausted);
    } else {
        // The backend's answer as it would come back: to the client.
        // Its family is the backend's: a GUE backend may be of the other
        // family than the client (dsr only, where this tuple is never
        // indexed).
        reverse = key.reversed();
        copy_address(reverse.source, backend.address);
        reverse.family = backend.address.is_v4() ? 4 : 6;
        if (backend.port_be)
            reverse.source_port = backend.port_be;
        reverse_hash = flows_.hash(reverse);
    }
    // Only now, so that the SNAT port chosen above is another one.
    if (replaced != no_flow)
        flows_.remove(replaced);
    Flow fresh;
    fresh.forward = key;
    fresh.reverse = reverse;
    fresh.state = next_state(FlowState::syn_seen, key.protocol, flags, false);
    fresh.client_port = uint8_t(ingress_port);
    std::memcpy(fresh.client_mac.bytes.data(), frame.data + 6, 6);
    // dsr answers bypass the gateway: the reverse tuple only says where
    // the flow goes.
    fresh.reverse_indexed = service.mode != ForwardingMode::dsr;
    fresh.backend = slot;
    // A profile never changes once given out: setting it again with each
    // new flow costs five stores and keeps the table in step with every
    // snapshot without a hook of its own.
    if (service.timeout_profile != 0)
        flows_.set_timeouts(service.timeout_profile, service.timeouts);
    fresh.timeout_profile = service.timeout_profile;
    const FlowId id = flows_.insert(fresh, hash, reverse_hash, now);
    if (id == no_flow) {
        if (service.mode != ForwardingMode::dsr)
            return dropped(flows_.reverse_in_use(reverse, reverse_hash, now)
                               ? DropReason::reverse_tuple_in_use
                               : DropReason::flow_table_full);
        counters.stateless_packets.increment();  // dsr: nothing to rewrite
    } else {
        sums = flows_.flow(id).sums[0];
        counters.new_flows.increment();
        if (slot < max_backend_slots)
            backends_[slot].new_flows.increment();
    }
    return {};
}

inline BalanceResult L4Balancer::to_backend(FrameBuffer &frame, const ParsedPacket &packet,
                                            uint16_t ingress_port, const Snapshot &snapshot,
                                            const Service &service, const FlowKey &key,
                                            uint64_t hash, FlowHint hint, uint32_t now,
                                            BalancerCounters &counters) {
    const uint8_t flags = tcp_flags(frame.data, packet);
    const FlowLookup found = flows_.lookup(key, hash, now, hint);
    FlowEntry *flow = found.id != no_flow && !found.reverse ? &flows_.flow(found.id) : nullptr;
    // Nearly every packet: one of a live flow that simply goes on. The rest
    // (new flows, flows to end or to begin again) are out of line, so that
    // this path pays neither their code nor their registers.
    const bool goes_on =
        flow && flow->state != FlowState::reset_sent &&
        (service.removed_backend_flows != RemovedBackendFlows::reset ||
         has_backend(service, flow->reverse())) &&
        !(key.protocol == ip_proto::tcp && is_new_connection(flags) &&
          flow->state == FlowState::closing);
    FlowKey reverse;
    BackendSlot slot;
    RewriteSums sums;
    if (goes_on) {
        flows_.refresh(*flow, next_state(flow->state, key.protocol, flags, false), now);
        reverse = flow->reverse();
        slot = flow->backend;
        sums = flow->sums[0];
    } else {
        const BalanceResult settled = settle_flow(frame, packet, ingress_port, snapshot, service,
                                                  key, hash, found, flags, now, counters, reverse,
                                                  slot, sums);
        if (settled.verdict != BalanceVerdict::not_balanced)
            return settled;
    }

    const NextHop *next_hop = snapshot.next_hop_of(slot, reverse.source, reverse.family);
    if (!next_hop)
        return dropped(DropReason::next_hop_unresolved);
    if (!next_hop->resolved)  // the flow is kept: the retry finds it
        return {BalanceVerdict::await_next_hop, DropReason::next_hop_unresolved, 0};
    const EgressPort &egress = snapshot.ports()[next_hop->egress_port];
    const uint16_t inner_length = uint16_t(packet.l3_end - packet.l3_offset);
    if (service.mode != ForwardingMode::dsr) {
        // Too big for the link: the client must learn its MTU (path MTU
        // discovery), as from any router on its path.
        if (inner_length > egress.mtu)
            return too_big(frame, packet, ingress_port, snapshot, egress.mtu, now, counters);
        // Toward the backend the packet carries the reverse tuple, turned round.
        if (!forward_rewrite(frame.data, packet, reverse, sums))
            return dropped(DropReason::ttl_exceeded);
    } else {
        const IpAddress backend = address_of(reverse.source, reverse.family);
        const bool gue = service.encapsulation == DsrEncapsulation::gue;
        const size_t overhead = gue ? (backend.is_v4() ? gue_overhead_v4 : gue_overhead_v6)
                                    : (backend.is_v4() ? ipip_overhead_v4 : ipip_overhead_v6);
        // Encapsulated, it would not fit the link: the same, with the
        // smaller MTU the tunnel leaves.
        if (inner_length + overhead > egress.mtu)
            return too_big(frame, packet, ingress_port, snapshot,
                           uint16_t(egress.mtu - overhead), now, counters);
        if (!decrement_hop_limit(frame.data, packet))
            return dropped(DropReason::ttl_exceeded);
        // The packet travels unchanged inside an outer header to the backend.
        const IpAddress &source = backend.is_v4() ? egress.ipv4 : egress.ipv6;
        if ((backend.is_v4() ? !egress.has_ipv4 : !egress.has_ipv6) || frame.headroom < overhead)
            return dropped(DropReason::no_room_for_encapsulation);
        uint8_t *inner = frame.data + packet.l3_offset;
        uint8_t *start = frame.data - overhead;
        std::memmove(start, frame.data, ethernet_header_length);
        const size_t written =
            gue ? encapsulate_gue(start + ethernet_header_length, inner, inner_length, source,
                                  backend, uint16_t(0xc000 | (hash & 0x3fff)), service.gue_port)
                : encapsulate_ipip(start + ethernet_header_length, inner, inner_length, source,
                                   backend);
        if (written != overhead)
            return dropped(DropReason::no_room_for_encapsulation);
        const uint16_t ether_type = backend.is_v4() ? ether_type::ipv4 : ether_type::ipv6;
        write_be16(start + 12, ether_type);
        frame.data = start;
        frame.headroom -= uint32_t(overhead);
        frame.length = uint32_t(ethernet_header_length + overhead + inner_length);
    }
    set_ethernet(frame.data, next_hop->mac, egress.mac);
    counters.to_backend_packets.increment();
    count(slot, frame.length);
    return {BalanceVerdict::forward, DropReason::none, next_hop->egress_port};
}

BalanceResult L4Balancer::too_big(FrameBuffer &frame, const ParsedPacket &packet,
                                  uint16_t ingress_port, const Snapshot &snapshot, uint16_t mtu,
                                  uint32_t now, BalancerCounters &counters) {
    const bool ipv6 = packet.network == NetworkLayer::ipv6;
    // IPv4 without DF may be fragmented on the way; we do not fragment.
    const bool dont_fragment = ipv6 || (frame.data[packet.l3_offset + 6] & 0x40);
    const EgressPort &port = snapshot.ports()[ingress_port];
    if (!dont_fragment || !(ipv6 ? port.has_ipv6 : port.has_ipv4) || !icmp_budget(now))
        return dropped(DropReason::too_big_to_encapsulate);
    const uint32_t length = turn_into_too_big(frame.data, frame.length, packet,
                                              ipv6 ? port.ipv6 : port.ipv4, port.mac.bytes.data(),
                                              mtu);
    if (length == 0)
        return dropped(DropReason::too_big_to_encapsulate);
    frame.length = length;
    counters.icmp_too_big_sent.increment();
    return {BalanceVerdict::forward, DropReason::none, ingress_port};
}

bool L4Balancer::icmp_budget(uint32_t now) {
    // A token bucket: 1 per ms up to a burst of icmp_burst (RFC 1812 4.3.2.8).
    icmp_tokens_ = std::min<uint32_t>(icmp_burst, icmp_tokens_ + (now - icmp_refilled_));
    icmp_refilled_ = now;
    if (icmp_tokens_ == 0)
        return false;
    --icmp_tokens_;
    return true;
}

BalanceResult L4Balancer::to_client(FrameBuffer &frame, const ParsedPacket &packet,
                                    const Snapshot &snapshot, FlowEntry &flow, uint32_t now,
                                    BalancerCounters &counters) {
    // The client was told the connection is gone: more data from the
    // backend would only move the client's sequence past that RST.
    if (flow.state == FlowState::reset_sent)
        return dropped(DropReason::backend_removed);
    flows_.refresh(flow, next_state(flow.state, flow.protocol(), tcp_flags(frame.data, packet), true),
                   now);
    if (flow.client_port >= snapshot.ports().size())
        return dropped(DropReason::next_hop_unresolved);
    // Back to the client from the VIP: the flow's forward tuple, turned round,
    // to the MAC the client's packets came from.
    if (!forward_rewrite(frame.data, packet, flow.forward(), flow.sums[1]))
        return dropped(DropReason::ttl_exceeded);
    set_ethernet(frame.data, flow.client_mac, snapshot.ports()[flow.client_port].mac);
    counters.to_client_packets.increment();
    count(flow.backend, frame.length);
    return {BalanceVerdict::forward, DropReason::none, flow.client_port};
}

BalanceResult L4Balancer::icmp_error(FrameBuffer &frame, const ParsedPacket &packet,
                                     const Snapshot &snapshot, uint32_t now,
                                     BalancerCounters &counters) {
    // The packet an ICMP error quotes is one the gateway sent: turned round,
    // it is the key of the flow the error is about.
    FlowKey quoted;
    if (!quoted_flow_key(frame.data, packet, quoted))
        return {};
    const FlowKey key = quoted.reversed();
    const FlowLookup found = flows_.lookup(key, flows_.hash(key), now);
    if (found.id == no_flow)
        return {BalanceVerdict::unknown_flow, DropReason::none, 0};
    const FlowEntry &flow = flows_.flow(found.id);
    const FlowKey forward = flow.forward(), reverse = flow.reverse();
    if (found.reverse) {
        // From the backend's side, about a packet toward the backend: the
        // client gets it from the VIP, quoting what it sent itself.
        if (flow.client_port >= snapshot.ports().size())
            return dropped(DropReason::next_hop_unresolved);
        if (!decrement_hop_limit(frame.data, packet))
            return dropped(DropReason::ttl_exceeded);
        if (!rewrite_icmp_error(frame.data, packet, forward.reversed(), forward))
            return {};
        set_ethernet(frame.data, flow.client_mac, snapshot.ports()[flow.client_port].mac);
        counters.icmp_errors.increment();
        return {BalanceVerdict::forward, DropReason::none, flow.client_port};
    }
    // From the client's side, about a packet toward the client: the backend
    // gets it from the address it answers to, quoting what it sent itself.
    // dsr backends answer clients directly and see such errors themselves.
    const uint32_t service = snapshot.find_service(forward);
    if (service == Snapshot::no_service ||
        snapshot.services()[service].mode == ForwardingMode::dsr)
        return {};
    const NextHop *next_hop = snapshot.find_next_hop(reverse.source, reverse.family);
    if (!next_hop || !next_hop->resolved)
        return dropped(DropReason::next_hop_unresolved);
    if (!decrement_hop_limit(frame.data, packet))
        return dropped(DropReason::ttl_exceeded);
    if (!rewrite_icmp_error(frame.data, packet, reverse.reversed(), reverse))
        return {};
    set_ethernet(frame.data, next_hop->mac, snapshot.ports()[next_hop->egress_port].mac);
    counters.icmp_errors.increment();
    return {BalanceVerdict::forward, DropReason::none, next_hop->egress_port};
}

} // namespace sluice::lb
