// The worker: one per worker lcore. It polls one RX queue on every port (and
// on the port's exception-path TAP), runs each packet to completion and sends
// through buffered TX queues of its own. Nothing here locks or allocates.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "dataplane/counter.h"
#include "dataplane/drop_reason.h"
#include "dataplane/local_reply.h"
#include "dataplane/worker_tcp.h"
#include "lb/flow_table.h"
#include "lb/l4_balancer.h"
#include "lb/steering.h"

struct rte_mbuf;
struct rte_ring;

namespace sluice::dataplane {

class PublishedSnapshot;

constexpr unsigned max_burst = 64;

struct WorkerCounters {
    Counter rx_packets, rx_bytes;
    Counter tx_packets, tx_bytes;
    Counter arp_replies, icmp_echo_replies, icmpv6_echo_replies, neighbor_advertisements;
    Counter to_kernel, from_kernel;
    Counter steered_out, steered_in;  // passed to, taken from, other workers
    Counter neighbour_waits;          // packets held until their next hop resolved
    Counter busy_cycles, idle_cycles, idle_sleeps;
    std::array<Counter, drop_reason_count> drops;

    Counter &drop(DropReason reason) { return drops[size_t(reason)]; }
};

// Packets waiting to go out of one TX queue: flushed when full, or when the
// worker's TSC deadline passes.
struct TxBuffer {
    uint16_t port_id = 0;
    uint16_t queue_id = 0;
    uint16_t count = 0;
    DropReason overflow = DropReason::tx_full;  // counted for what the queue refuses
    rte_mbuf *packets[max_burst];
};

// One port as one worker sees it. Its place in WorkerContext::ports is the
// port's index in the snapshot.
struct WorkerPort {
    uint16_t port_id = 0;
    uint16_t queue_id = 0;
    bool has_exception_path = false;
    uint16_t exception_port_id = 0;   // the TAP; same queue id
    // What the port answers for when no snapshot is published (a worker
    // without balancing); with one, the snapshot's EgressPort::local.
    const LocalAddresses *local = nullptr;
    TxBuffer to_wire, to_kernel;
};

struct WorkerSettings {
    unsigned burst_size = 32;
    unsigned tx_drain_us = 100;
    unsigned idle_sleep_max_us = 500;
};

// A packet passed from one worker to another through the receiver's inbox
// (an rte_ring of these, many producers, one consumer).
struct SteeredPacket {
    rte_mbuf *packet;
    uint16_t port_index;  // where it arrived: the snapshot's port index
    uint8_t hops;         // workers that looked for its flow before (ICMP errors)
    uint32_t waiting_since = 0;  // ms; set while it waits for a neighbour
};
static_assert(sizeof(SteeredPacket) == 16, "ring elements are 16 bytes");

// Packets bound for one other worker, enqueued once per burst.
struct SteerBuffer {
    uint16_t count = 0;
    SteeredPacket packets[max_burst];
};

// Steering between workers: shared by all of them. Absent with one worker.
struct WorkerSteering {
    lb::Steering steering;
    std::vector<rte_ring *> inboxes;  // by worker id

    explicit WorkerSteering(unsigned workers) : steering(workers) {}
};

// Packets whose backend's MAC is not known yet, oldest first: balanced
// again whenever a new snapshot appears, dropped after a while.
struct NeighbourWait {
    static constexpr unsigned capacity = 256;
    uint32_t timeout_ms = 3000;  // as long as the kernel's ARP retries
    SteeredPacket packets[capacity];
    unsigned head = 0, count = 0;
    uint64_t generation = 0;  // of the snapshot they last tried
};

// The L4 balancing of one worker: its own flow table and balancer, and the
// snapshot every worker reads. Absent when no service is configured.
struct WorkerBalancing {
    PublishedSnapshot *snapshot = nullptr;
    std::unique_ptr<lb::FlowTable> flows;
    std::unique_ptr<lb::L4Balancer> balancer;
    lb::BalancerCounters counters;
};

// What a burst's stages pass on, per packet. Kept in the worker rather than
// on the stack: ParsedPacket, FlowProbe and SteeredPacket have member
// initializers, and arrays of max_burst of them, value-initialized afresh
// for every burst, were a 6 KB memset (115 instructions a packet at bursts
// of 32). Every element is written before it is read.
struct BurstStages {
    SteeredPacket received[max_burst];
    ParsedPacket parsed[max_burst];
    lb::FlowProbe probes[max_burst];
    SteeredPacket valid[max_burst];
};

struct alignas(64) WorkerContext {
    unsigned id = 0;
    WorkerSettings settings;
    std::vector<WorkerPort> ports;
    const std::atomic<bool> *stop = nullptr;
    std::unique_ptr<WorkerBalancing> balancing;
    std::unique_ptr<WorkerTcp> tcp;  // with balancing: proxy services' TCP
    const WorkerSteering *steering = nullptr;
    std::vector<SteerBuffer> outboxes;  // by worker id, when steering
    NeighbourWait waiting;

    uint64_t tx_drain_tsc = 0;    // settings.tx_drain_us in TSC ticks
    uint64_t last_drain_tsc = 0;
    uint64_t tsc_per_ms = 1;
    uint64_t tsc_per_us = 1;
    WorkerCounters counters;
    BurstStages stages;
};

// Fills in the TX buffers' identities and TSC figures; call before polling.
void prepare_worker(WorkerContext &worker);

// One pass over every port: receive a burst, handle it, flush TX when the
// deadline passed. Returns the number of packets received.
unsigned poll_worker(WorkerContext &worker);

// Queues a frame on the TX buffer of the snapshot's port `port_index`.
void send_to_wire(WorkerContext &worker, uint16_t port_index, rte_mbuf *packet);

// Sends everything still buffered.
void flush_worker(WorkerContext &worker);

// lcore entry point: polls until *stop, backing off when idle. `arg` is a
// WorkerContext.
int run_worker(void *arg);

} // namespace sluice::dataplane
