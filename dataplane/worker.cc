#include "dataplane/worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "dataplane/byte_order.h"
#include "dataplane/packet_parse.h"
#include "dataplane/published_snapshot.h"

namespace sluice::dataplane {

namespace {

constexpr unsigned prefetch_ahead = 3;
// Empty polls in a row before an idle worker starts to sleep.
constexpr unsigned idle_polls_before_sleep = 64;
// Flows examined for expiry per idle poll.
constexpr uint32_t expiry_budget = 256;

void flush(TxBuffer &buffer, WorkerCounters &counters) {
    if (buffer.count == 0)
        return;
    const uint16_t sent = rte_eth_tx_burst(buffer.port_id, buffer.queue_id, buffer.packets,
                                           buffer.count);
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < sent; ++i)
        bytes += rte_pktmbuf_pkt_len(buffer.packets[i]);
    counters.tx_packets.add(sent);
    counters.tx_bytes.add(bytes);
    if (sent < buffer.count) {
        counters.drop(buffer.overflow).add(buffer.count - sent);
        rte_pktmbuf_free_bulk(buffer.packets + sent, buffer.count - sent);
    }
    buffer.count = 0;
}

inline void send(TxBuffer &buffer, rte_mbuf *packet, WorkerCounters &counters) {
    buffer.packets[buffer.count++] = packet;
    if (buffer.count == max_burst)
        flush(buffer, counters);
}

inline void drop(rte_mbuf *packet, DropReason reason, WorkerCounters &counters) {
    counters.drop(reason).increment();
    rte_pktmbuf_free(packet);
}

void count_reply(LocalReply reply, WorkerCounters &counters) {
    switch (reply) {
    case LocalReply::arp_reply: counters.arp_replies.increment(); break;
    case LocalReply::icmp_echo_reply: counters.icmp_echo_replies.increment(); break;
    case LocalReply::icmpv6_echo_reply: counters.icmpv6_echo_replies.increment(); break;
    case LocalReply::neighbor_advertisement: counters.neighbor_advertisements.increment(); break;
    case LocalReply::not_local:
    case LocalReply::drop: break;
    }
}

// Holds a packet for another worker; the burst's end sends it.
inline void steer(WorkerContext &worker, uint16_t owner, const SteeredPacket &item) {
    SteerBuffer &outbox = worker.outboxes[owner];
    outbox.packets[outbox.count++] = item;
}

void flush_outboxes(WorkerContext &worker) {
    for (uint16_t owner = 0; owner < worker.outboxes.size(); ++owner) {
        SteerBuffer &outbox = worker.outboxes[owner];
        if (outbox.count == 0)
            continue;
        const unsigned sent = rte_ring_mp_enqueue_burst_elem(
            worker.steering->inboxes[owner], outbox.packets, sizeof(SteeredPacket), outbox.count,
            nullptr);
        worker.counters.steered_out.add(sent);
        for (unsigned i = sent; i < outbox.count; ++i)
            drop(outbox.packets[i].packet, DropReason::steering_full, worker.counters);
        outbox.count = 0;
    }
}

// Holds a packet until the control plane learns its next hop's MAC (a
// new snapshot) or the wait times out.
void wait_for_neighbour(WorkerContext &worker, const SteeredPacket &item, uint32_t now) {
    NeighbourWait &waiting = worker.waiting;
    if (waiting.count == NeighbourWait::capacity) {
        drop(item.packet, DropReason::neighbour_queue_full, worker.counters);
        return;
    }
    SteeredPacket &held =
        waiting.packets[(waiting.head + waiting.count++) % NeighbourWait::capacity];
    held = item;
    if (held.waiting_since == 0) {
        held.waiting_since = now ? now : 1;
        worker.counters.neighbour_waits.increment();
    }
}

// Gives the balancer its go at a frame. True when the frame was consumed
// (forwarded, dropped or passed to another worker).
bool balance(WorkerContext &worker, const SteeredPacket &item, const lb::Snapshot &snapshot,
             uint32_t now, const ParsedPacket &parsed, const lb::FlowProbe &probe) {
    WorkerBalancing &balancing = *worker.balancing;
    rte_mbuf *packet = item.packet;
    uint8_t *frame = rte_pktmbuf_mtod(packet, uint8_t *);
    lb::FrameBuffer buffer{frame, rte_pktmbuf_data_len(packet), rte_pktmbuf_headroom(packet)};
    const lb::BalanceResult result = balancing.balancer->balance(
        buffer, parsed, probe, item.port_index, snapshot, now, balancing.counters);
    switch (result.verdict) {
    case lb::BalanceVerdict::not_balanced:
        // Perhaps a backend's answer to one of the proxy's connections.
        if (worker.tcp && probe.candidate && probe.key.protocol == ip_proto::tcp &&
            !parsed.fragment &&
            worker.tcp->owns_port(port_to_host(probe.key.destination_port)) &&
            snapshot.is_local_address(probe.key.destination.data(), probe.key.family)) {
            worker.tcp->receive(packet, parsed, item.port_index);
            return true;
        }
        return false;
    case lb::BalanceVerdict::to_stack:
        if (!worker.tcp) {
            drop(packet, DropReason::no_exception_path, worker.counters);
            return true;
        }
        worker.tcp->receive(packet, parsed, item.port_index);
        return true;
    case lb::BalanceVerdict::unknown_flow:
        // The flow of an ICMP error or a later fragment may live with any
        // worker: each looks once, in turn, before the last one gives up.
        if (!worker.steering || item.hops + 1u >= worker.steering->steering.workers()) {
            if (result.reason == DropReason::none)
                return false;
            drop(packet, result.reason, worker.counters);
            return true;
        }
        steer(worker, uint16_t((worker.id + 1) % worker.steering->steering.workers()),
              {packet, item.port_index, uint8_t(item.hops + 1)});
        return true;
    case lb::BalanceVerdict::await_next_hop:
        wait_for_neighbour(worker, item, now);
        return true;
    case lb::BalanceVerdict::drop:
        drop(packet, result.reason, worker.counters);
        return true;
    case lb::BalanceVerdict::forward:
        break;
    }
    // An encapsulation moved the start of the frame back into the headroom.
    packet->data_off = uint16_t(packet->data_off - (frame - buffer.data));
    rte_pktmbuf_data_len(packet) = uint16_t(buffer.length);
    rte_pktmbuf_pkt_len(packet) = buffer.length;
    send(worker.ports[result.egress_port].to_wire, packet, worker.counters);
    return true;
}

// A frame from the wire, parsed and probed: answer it, balance it, or hand
// it to the kernel.
void handle_from_wire(WorkerContext &worker, const lb::Snapshot *snapshot, uint32_t now,
                      const SteeredPacket &item, const ParsedPacket &parsed,
                      const lb::FlowProbe &probe) {
    rte_mbuf *packet = item.packet;
    WorkerPort &port = worker.ports[item.port_index];
    WorkerCounters &counters = worker.counters;
    // Only ARP, ICMP and ICMPv6 get local answers: TCP and UDP, nearly all
    // the traffic, skip the look.
    const bool maybe_local = !parsed.has_l4 || (parsed.l4_protocol != ip_proto::tcp &&
                                                 parsed.l4_protocol != ip_proto::udp);
    if (maybe_local) {
        uint8_t *frame = rte_pktmbuf_mtod(packet, uint8_t *);
        uint32_t length = rte_pktmbuf_data_len(packet);
        DropReason reason = DropReason::none;
        const uint32_t capacity = rte_pktmbuf_data_len(packet) + rte_pktmbuf_tailroom(packet);
        const LocalAddresses &local =
            snapshot ? snapshot->ports()[item.port_index].local : *port.local;
        const LocalReply reply = answer_local(frame, length, capacity, parsed, local, reason);
        if (reply == LocalReply::drop) {
            drop(packet, reason, counters);
            return;
        }
        if (reply != LocalReply::not_local) {
            count_reply(reply, counters);
            rte_pktmbuf_data_len(packet) = uint16_t(length);
            rte_pktmbuf_pkt_len(packet) = length;
            send(port.to_wire, packet, counters);
            return;
        }
    }

    if (snapshot && balance(worker, item, *snapshot, now, parsed, probe))
        return;

    if (!port.has_exception_path) {
        drop(packet, DropReason::no_exception_path, counters);
        return;
    }
    counters.to_kernel.increment();
    send(port.to_kernel, packet, counters);
}

// Runs a burst through the worker's stages. `steered` packets came from
// another worker, which already chose this one: they are not steered again.
void handle_burst(WorkerContext &worker, const lb::Snapshot *snapshot, uint32_t now,
                  const SteeredPacket *items, uint16_t received, bool steered) {
    WorkerCounters &counters = worker.counters;
    for (uint16_t i = 0; i < received && i < prefetch_ahead; ++i)
        rte_prefetch0(rte_pktmbuf_mtod(items[i].packet, void *));

    // Stage one, over the whole burst: parse each frame (drop the malformed),
    // probe the flow table (key and hash), pass on what another worker owns,
    // then prefetch the buckets of the rest all at once.
    ParsedPacket *parsed = worker.stages.parsed;
    lb::FlowProbe *probes = worker.stages.probes;
    SteeredPacket *valid = worker.stages.valid;
    uint16_t count = 0;
    lb::L4Balancer *balancer = snapshot ? worker.balancing->balancer.get() : nullptr;
    const lb::Steering *steering =
        snapshot && worker.steering && !steered ? &worker.steering->steering : nullptr;
    for (uint16_t i = 0; i < received; ++i) {
        if (i + prefetch_ahead < received)
            rte_prefetch0(rte_pktmbuf_mtod(items[i + prefetch_ahead].packet, void *));
        rte_mbuf *packet = items[i].packet;
        const uint8_t *frame = rte_pktmbuf_mtod(packet, const uint8_t *);
        const bool ipv4_checksum_verified =
            (packet->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD;
        // Scatter is off, so every header sits in the first segment.
        const DropReason reason = parse_packet(frame, rte_pktmbuf_data_len(packet),
                                               parsed[count], ipv4_checksum_verified);
        if (reason != DropReason::none) {
            drop(packet, reason, counters);
            continue;
        }
        if (balancer) {
            balancer->probe(frame, parsed[count], probes[count]);
            if (steering && probes[count].candidate) {
                const uint16_t owner = steering->owner(probes[count], *snapshot);
                if (owner != lb::any_worker && owner != worker.id) {
                    steer(worker, owner, items[i]);
                    continue;
                }
            }
        }
        valid[count++] = items[i];
    }
    // The end of stage one, the buckets; then stage two: the flows the
    // buckets point at are prefetched, to load while stage three starts.
    if (balancer) {
        balancer->prefetch_buckets(probes, count);
        balancer->prefetch_flows(probes, count, *snapshot);
    }
    // Stage three: run each to completion.
    for (uint16_t i = 0; i < count; ++i)
        handle_from_wire(worker, snapshot, now, valid[i], parsed[i], probes[i]);
    if (worker.steering)
        flush_outboxes(worker);
}

unsigned poll_port(WorkerContext &worker, uint16_t port_index, const lb::Snapshot *snapshot,
                   uint32_t now) {
    WorkerPort &port = worker.ports[port_index];
    rte_mbuf *packets[max_burst];
    const uint16_t burst = uint16_t(worker.settings.burst_size);
    WorkerCounters &counters = worker.counters;

    const uint16_t received = rte_eth_rx_burst(port.port_id, port.queue_id, packets, burst);
    if (received) {
        SteeredPacket *items = worker.stages.received;
        uint64_t bytes = 0;
        for (uint16_t i = 0; i < received; ++i) {
            items[i] = {packets[i], port_index, 0};
            bytes += rte_pktmbuf_pkt_len(packets[i]);
        }
        counters.rx_packets.add(received);
        counters.rx_bytes.add(bytes);
        handle_burst(worker, snapshot, now, items, received, false);
    }

    if (!port.has_exception_path)
        return received;
    // What the kernel sends on the TAP leaves through the port unchanged.
    const uint16_t from_kernel =
        rte_eth_rx_burst(port.exception_port_id, port.queue_id, packets, burst);
    for (uint16_t i = 0; i < from_kernel; ++i)
        send(port.to_wire, packets[i], counters);
    counters.from_kernel.add(from_kernel);
    return received + from_kernel;
}

// The packets waiting for neighbours: the ones past their time are dropped;
// the others are balanced again when the snapshot has changed (those still
// unresolved come back to the end of the queue, keeping their age).
void retry_waiting(WorkerContext &worker, const lb::Snapshot *snapshot, uint32_t now) {
    NeighbourWait &waiting = worker.waiting;
    while (waiting.count &&
           now - waiting.packets[waiting.head].waiting_since > waiting.timeout_ms) {
        drop(waiting.packets[waiting.head].packet, DropReason::next_hop_unresolved,
             worker.counters);
        waiting.head = (waiting.head + 1) % NeighbourWait::capacity;
        --waiting.count;
    }
    if (!waiting.count || !snapshot || snapshot->generation() == waiting.generation)
        return;
    waiting.generation = snapshot->generation();
    unsigned left = waiting.count;
    while (left) {
        SteeredPacket burst[max_burst];
        const uint16_t n = uint16_t(std::min(left, max_burst));
        for (uint16_t i = 0; i < n; ++i) {
            burst[i] = waiting.packets[waiting.head];
            waiting.head = (waiting.head + 1) % NeighbourWait::capacity;
        }
        waiting.count -= n;
        left -= n;
        handle_burst(worker, snapshot, now, burst, n, true);
    }
}

// What other workers passed to this one.
unsigned poll_inbox(WorkerContext &worker, const lb::Snapshot *snapshot, uint32_t now) {
    SteeredPacket items[max_burst];
    const unsigned taken = rte_ring_sc_dequeue_burst_elem(
        worker.steering->inboxes[worker.id], items, sizeof(SteeredPacket),
        worker.settings.burst_size, nullptr);
    if (taken) {
        worker.counters.steered_in.add(taken);
        handle_burst(worker, snapshot, now, items, uint16_t(taken), true);
    }
    return taken;
}

} // namespace

void prepare_worker(WorkerContext &worker) {
    for (WorkerPort &port : worker.ports) {
        port.to_wire.port_id = port.port_id;
        port.to_wire.queue_id = port.queue_id;
        port.to_wire.overflow = DropReason::tx_full;
        port.to_kernel.port_id = port.exception_port_id;
        port.to_kernel.queue_id = port.queue_id;
        port.to_kernel.overflow = DropReason::exception_path_full;
    }
    if (worker.settings.burst_size == 0 || worker.settings.burst_size > max_burst)
        worker.settings.burst_size = max_burst;
    if (worker.steering)
        worker.outboxes.assign(worker.steering->inboxes.size(), SteerBuffer{});
    worker.tx_drain_tsc = (rte_get_tsc_hz() + 999'999) / 1'000'000 * worker.settings.tx_drain_us;
    worker.tsc_per_ms = std::max<uint64_t>(rte_get_tsc_hz() / 1000, 1);
    worker.tsc_per_us = std::max<uint64_t>(rte_get_tsc_hz() / 1'000'000, 1);
    worker.last_drain_tsc = rte_rdtsc();
}

void send_to_wire(WorkerContext &worker, uint16_t port_index, rte_mbuf *packet) {
    send(worker.ports[port_index].to_wire, packet, worker.counters);
}

void flush_worker(WorkerContext &worker) {
    for (WorkerPort &port : worker.ports) {
        flush(port.to_wire, worker.counters);
        flush(port.to_kernel, worker.counters);
    }
}

unsigned poll_worker(WorkerContext &worker) {
    // One snapshot for the whole poll: the grace period ends after it.
    const lb::Snapshot *snapshot = worker.balancing ? worker.balancing->snapshot->current() : nullptr;
    const uint64_t start = rte_rdtsc();
    const uint32_t now_ms = uint32_t(start / worker.tsc_per_ms);
    if (worker.tcp)
        worker.tcp->begin_poll(snapshot, start / worker.tsc_per_us);
    unsigned received = 0;
    for (uint16_t index = 0; index < worker.ports.size(); ++index)
        received += poll_port(worker, index, snapshot, now_ms);
    if (worker.steering)
        received += poll_inbox(worker, snapshot, now_ms);
    if (worker.waiting.count)
        retry_waiting(worker, snapshot, now_ms);
    if (worker.tcp)
        worker.tcp->end_poll();
    const uint64_t now = rte_rdtsc();
    if (now - worker.last_drain_tsc >= worker.tx_drain_tsc) {
        flush_worker(worker);
        worker.last_drain_tsc = now;
    }
    return received;
}

int run_worker(void *arg) {
    WorkerContext &worker = *static_cast<WorkerContext *>(arg);
    prepare_worker(worker);
    PublishedSnapshot *snapshot = worker.balancing ? worker.balancing->snapshot : nullptr;
    if (snapshot)
        snapshot->online(worker.id);
    unsigned empty_polls = 0;
    unsigned sleep_us = 0;
    uint64_t last = rte_rdtsc();
    while (!worker.stop->load(std::memory_order_relaxed)) {
        const unsigned received = poll_worker(worker);
        if (snapshot)
            snapshot->quiescent(worker.id);
        const uint64_t now = rte_rdtsc();
        (received ? worker.counters.busy_cycles : worker.counters.idle_cycles).add(now - last);
        last = now;
        if (received || worker.settings.idle_sleep_max_us == 0) {
            empty_polls = 0;
            sleep_us = 0;
            continue;
        }
        if (++empty_polls < idle_polls_before_sleep)
            continue;
        // Idle time pays for flow expiry, a bounded slice at a time.
        if (worker.balancing)
            worker.balancing->flows->expire(uint32_t(now / worker.tsc_per_ms), expiry_budget);
        // Idle: nothing may wait in a buffer while we sleep. The sleep doubles
        // up to the configured ceiling and resets at the first packet.
        flush_worker(worker);
        sleep_us = sleep_us ? std::min(sleep_us * 2, worker.settings.idle_sleep_max_us) : 1;
        worker.counters.idle_sleeps.increment();
        // A sleeping worker holds no snapshot: publishing need not wait for it.
        if (snapshot)
            snapshot->offline(worker.id);
        rte_delay_us_sleep(sleep_us);
        if (snapshot)
            snapshot->online(worker.id);
    }
    flush_worker(worker);
    for (; worker.waiting.count; --worker.waiting.count) {
        rte_pktmbuf_free(worker.waiting.packets[worker.waiting.head].packet);
        worker.waiting.head = (worker.waiting.head + 1) % NeighbourWait::capacity;
    }
    if (snapshot)
        snapshot->offline(worker.id);
    return 0;
}

} // namespace sluice::dataplane
