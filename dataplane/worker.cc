#include "dataplane/worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

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

// Gives the balancer its go at a frame. True when the frame was consumed
// (forwarded or dropped).
bool balance(WorkerContext &worker, uint16_t port_index, const lb::Snapshot &snapshot,
             uint32_t now, rte_mbuf *packet, const ParsedPacket &parsed,
             const lb::FlowProbe &probe) {
    WorkerBalancing &balancing = *worker.balancing;
    uint8_t *frame = rte_pktmbuf_mtod(packet, uint8_t *);
    lb::FrameBuffer buffer{frame, rte_pktmbuf_data_len(packet), rte_pktmbuf_headroom(packet)};
    const lb::BalanceResult result = balancing.balancer->balance(
        buffer, parsed, probe, port_index, snapshot, now, balancing.counters);
    switch (result.verdict) {
    case lb::BalanceVerdict::not_balanced:
        return false;
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
void handle_from_wire(WorkerContext &worker, uint16_t port_index, const lb::Snapshot *snapshot,
                      uint32_t now, rte_mbuf *packet, const ParsedPacket &parsed,
                      const lb::FlowProbe &probe) {
    WorkerPort &port = worker.ports[port_index];
    WorkerCounters &counters = worker.counters;
    uint8_t *frame = rte_pktmbuf_mtod(packet, uint8_t *);
    uint32_t length = rte_pktmbuf_data_len(packet);
    DropReason reason = DropReason::none;

    const uint32_t capacity = rte_pktmbuf_data_len(packet) + rte_pktmbuf_tailroom(packet);
    const LocalAddresses &local = snapshot ? snapshot->ports()[port_index].local : *port.local;
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

    if (snapshot && balance(worker, port_index, *snapshot, now, packet, parsed, probe))
        return;

    if (!port.has_exception_path) {
        drop(packet, DropReason::no_exception_path, counters);
        return;
    }
    counters.to_kernel.increment();
    send(port.to_kernel, packet, counters);
}

void handle_burst(WorkerContext &worker, uint16_t port_index, const lb::Snapshot *snapshot,
                  uint32_t now, rte_mbuf **packets, uint16_t received);

unsigned poll_port(WorkerContext &worker, uint16_t port_index, const lb::Snapshot *snapshot,
                   uint32_t now) {
    WorkerPort &port = worker.ports[port_index];
    rte_mbuf *packets[max_burst];
    const uint16_t burst = uint16_t(worker.settings.burst_size);
    WorkerCounters &counters = worker.counters;

    const uint16_t received = rte_eth_rx_burst(port.port_id, port.queue_id, packets, burst);
    if (received)
        handle_burst(worker, port_index, snapshot, now, packets, received);

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

void handle_burst(WorkerContext &worker, uint16_t port_index, const lb::Snapshot *snapshot,
                  uint32_t now, rte_mbuf **packets, uint16_t received) {
    WorkerCounters &counters = worker.counters;
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < received && i < prefetch_ahead; ++i)
        rte_prefetch0(rte_pktmbuf_mtod(packets[i], void *));

    // Stage one, over the whole burst: parse each frame (drop the malformed)
    // and probe the flow table, so its buckets load while the others parse.
    ParsedPacket parsed[max_burst];
    lb::FlowProbe probes[max_burst];
    rte_mbuf *valid[max_burst];
    uint16_t count = 0;
    lb::L4Balancer *balancer = snapshot ? worker.balancing->balancer.get() : nullptr;
    for (uint16_t i = 0; i < received; ++i) {
        if (i + prefetch_ahead < received)
            rte_prefetch0(rte_pktmbuf_mtod(packets[i + prefetch_ahead], void *));
        rte_mbuf *packet = packets[i];
        bytes += rte_pktmbuf_pkt_len(packet);
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
        if (balancer)
            balancer->probe(frame, parsed[count], probes[count]);
        valid[count++] = packet;
    }
    // Stage two: the buckets have had the burst's parsing to arrive; now
    // the flows they point at load while stage three starts.
    if (balancer)
        for (uint16_t i = 0; i < count; ++i)
            balancer->prefetch_flows(probes[i]);
    // Stage three: run each to completion.
    for (uint16_t i = 0; i < count; ++i)
        handle_from_wire(worker, port_index, snapshot, now, valid[i], parsed[i], probes[i]);
    counters.rx_packets.add(received);
    counters.rx_bytes.add(bytes);
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
    worker.tx_drain_tsc = (rte_get_tsc_hz() + 999'999) / 1'000'000 * worker.settings.tx_drain_us;
    worker.tsc_per_ms = std::max<uint64_t>(rte_get_tsc_hz() / 1000, 1);
    worker.last_drain_tsc = rte_rdtsc();
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
    const uint32_t now_ms = uint32_t(rte_rdtsc() / worker.tsc_per_ms);
    unsigned received = 0;
    for (uint16_t index = 0; index < worker.ports.size(); ++index)
        received += poll_port(worker, index, snapshot, now_ms);
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
    if (snapshot)
        snapshot->offline(worker.id);
    return 0;
}

} // namespace sluice::dataplane
