// The L4 balancer of one worker: a packet for a VIP is matched to its flow (or
// given a new one by Maglev), rewritten for its forwarding mode and addressed
// to its next hop; a packet from a backend is matched to its flow and
// rewritten back to the client. Works on plain bytes with a per-worker flow
// table and the current snapshot: no EAL, no locks, no allocation.
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/counter.h"
#include "dataplane/drop_reason.h"
#include "dataplane/packet_parse.h"
#include "lb/flow_table.h"
#include "lb/fragment_table.h"
#include "lb/snapshot.h"

namespace sluice::lb {

struct BalancerCounters {
    Counter new_flows;
    Counter to_backend_packets;
    Counter to_client_packets;
    Counter stateless_packets;  // balanced by Maglev alone: the flow table was full
    Counter icmp_errors;        // ICMP errors about a flow, translated and passed on
    Counter later_fragments;    // fragments after the first, balanced as their datagram
    Counter resets_sent;        // RSTs to clients whose backend left a `reset` service
    Counter icmp_too_big_sent;  // to clients whose packets would not fit once encapsulated
};

// What one worker has sent to and from one backend (by its BackendSlot).
// Its open flows: new_flows here less FlowTable::ended_flows.
struct BackendCounters {
    Counter packets, bytes;  // both directions
    Counter new_flows;
};

// A frame in its buffer: `headroom` bytes before `data` may be claimed by an
// encapsulation, which moves `data` back.
struct FrameBuffer {
    uint8_t *data;
    uint32_t length;
    uint32_t headroom;
};

enum class BalanceVerdict : uint8_t {
    not_balanced,  // not for a VIP nor from a backend: someone else's
    forward,       // rewritten, with its Ethernet header set: send on egress_port
    drop,          // `reason` says why
    await_next_hop,  // untouched, its backend's MAC unknown yet: hold it and
                     // balance it again when the snapshot changes
    to_stack,      // for a proxy service's VIP: the worker's TCP takes it
    unknown_flow,  // an ICMP error or a later fragment whose flow this
                   // worker lacks: another worker's perhaps; if none has it,
                   // dropped for `reason`, or someone else's when that is none
};

struct BalanceResult {
    BalanceVerdict verdict = BalanceVerdict::not_balanced;
    DropReason reason = DropReason::none;
    uint16_t egress_port = 0;
};

// The SNAT ports (host byte order, inclusive) this worker owns: return
// traffic to them must come back to it.
struct SnatPortRange {
    uint16_t first = 1024;
    uint16_t last = 65535;
};

// A packet's flow key and hash, computed in stage one, before any packet of
// the burst is balanced, so that its bucket and flow can be prefetched.
struct FlowProbe {
    FlowKey key;
    uint64_t hash = 0;
    bool candidate = false;  // IP, untagged, TCP or UDP with its header: worth balancing
    bool service_known = false;  // steering or prefetch_flows() already looked the service up
    uint32_t service = 0;        // then: its index, or Snapshot::no_service
    FlowHint hint = no_hint;     // from prefetch_flows(): where lookup() tries first
};

class L4Balancer {
public:
    // How many datagrams' first fragments are remembered, and for how long.
    static constexpr uint32_t fragment_capacity = 4096;
    static constexpr uint32_t fragment_lifetime_ms = 2000;

    // SNAT ports are taken in turn from `snat_start` (an offset into the
    // range): sluiced starts at a random one, so that a restarted gateway
    // does not reuse the ports its predecessor just left in the backends'
    // TIME_WAIT.
    L4Balancer(FlowTable &flows, SnatPortRange snat_ports, uint32_t snat_start = 0)
        : flows_(flows), snat_(snat_ports),
          snat_cursor_(snat_start % (uint32_t(snat_ports.last) - snat_ports.first + 1)),
          fragments_(fragment_capacity, HashKey::random(), fragment_lifetime_ms) {}

    // The first stage of a burst: fills `probe` (its key and hash).
    void probe(const uint8_t *frame, const ParsedPacket &packet, FlowProbe &probe) const;
    // Then, once the whole burst is probed: prefetches each candidate's
    // primary bucket, in a loop of their own. A random line of a large
    // table needs a page walk (in a VM, a nested one), and a prefetch seems
    // to hold its place in the reorder buffer until the walk is done: in a
    // tight loop the burst's walks overlap, whereas one prefetch per probe,
    // among the parsing, left each packet waiting for its own
    // (docs/performance.md, session 7).
    void prefetch_buckets(const FlowProbe *probes, uint16_t count) const;
    // The second, right after: notes in each probe the flow its primary
    // bucket points at (FlowProbe::hint), then
    // prefetches those flows, again back to back. A packet whose key is not
    // in the table and that is for a fullnat VIP will take a SNAT port: the
    // buckets of the tuple it will most likely get are prefetched too, so
    // that the port search and the insert find them loaded.
    void prefetch_flows(FlowProbe *probes, uint16_t count, const Snapshot &snapshot) const;

    // `frame` holds an Ethernet frame that parsed as `packet`, probed as
    // `probe`, and arrived on `ingress_port` (the snapshot's port index).
    // `now` is in milliseconds.
    BalanceResult balance(FrameBuffer &frame, const ParsedPacket &packet, const FlowProbe &probe,
                          uint16_t ingress_port, const Snapshot &snapshot, uint32_t now,
                          BalancerCounters &counters);
    // Both stages at once, for callers that handle one packet at a time.
    BalanceResult balance(FrameBuffer &frame, const ParsedPacket &packet, uint16_t ingress_port,
                          const Snapshot &snapshot, uint32_t now, BalancerCounters &counters) {
        FlowProbe one;
        probe(frame.data, packet, one);
        return balance(frame, packet, one, ingress_port, snapshot, now, counters);
    }

    FlowTable &flows() { return flows_; }
    const BackendCounters &backend_counters(BackendSlot slot) const {
        return backends_[slot < max_backend_slots ? slot : 0];
    }
    const FragmentTable &fragments() const { return fragments_; }

private:
    // Inlined into balance() (and later_fragment()): a call with its
    // prologue and ten arguments cost every packet toward a backend about
    // 30 instructions.
    [[gnu::always_inline]] BalanceResult
    to_backend(FrameBuffer &frame, const ParsedPacket &packet, uint16_t ingress_port,
               const Snapshot &snapshot, const Service &service, const FlowKey &key,
               uint64_t hash, FlowHint hint, uint32_t now, BalancerCounters &counters);
    // prefetch_flows() for a key its primary bucket lacks: the buckets of
    // the SNAT tuple it will most likely take. `new_flows` counts such
    // packets of the burst so far: each takes the next port in turn.
    void prefetch_new_flow(FlowProbe &probe, const Snapshot &snapshot, uint32_t &new_flows) const;
    // to_backend() for a packet whose flow does not simply go on: a new
    // flow (given a backend and its tuples), a flow that ends with its
    // backend, or one a SYN begins again. Either settles the packet (a
    // verdict) or, with not_balanced, fills `reverse`, `slot` and the
    // flow's `sums` for to_backend() to send it on.
    [[gnu::noinline]] BalanceResult settle_flow(FrameBuffer &frame, const ParsedPacket &packet,
                                                uint16_t ingress_port, const Snapshot &snapshot,
                                                const Service &service, const FlowKey &key,
                                                uint64_t hash, FlowLookup found, uint8_t flags,
                                                uint32_t now, BalancerCounters &counters,
                                                FlowKey &reverse, BackendSlot &slot,
                                                RewriteSums &sums);
    BalanceResult to_client(FrameBuffer &frame, const ParsedPacket &packet, const Snapshot &snapshot,
                            FlowEntry &flow, uint32_t now, BalancerCounters &counters);
    // The SNAT tuple a new flow toward `backend` gets with `port` (host order).
    static FlowKey snat_tuple(const IpAddress &local, const Backend &backend,
                              const FlowKey &client, uint16_t port);
    BalanceResult later_fragment(FrameBuffer &frame, const ParsedPacket &packet,
                                 uint16_t ingress_port, const Snapshot &snapshot, uint32_t now,
                                 BalancerCounters &counters);
    BalanceResult too_big(FrameBuffer &frame, const ParsedPacket &packet, uint16_t ingress_port,
                          const Snapshot &snapshot, uint16_t mtu, uint32_t now,
                          BalancerCounters &counters);
    bool icmp_budget(uint32_t now);
    BalanceResult icmp_error(FrameBuffer &frame, const ParsedPacket &packet,
                             const Snapshot &snapshot, uint32_t now, BalancerCounters &counters);
    // A free SNAT tuple toward `backend`, in `reverse`, with its hash.
    bool pick_snat_port(const IpAddress &local, const Backend &backend, const FlowKey &client,
                        uint32_t now, FlowKey &reverse, uint64_t &reverse_hash);

    // The packets of a flow or stateless pick toward a backend.
    void count(BackendSlot slot, uint32_t bytes) {
        if (slot < max_backend_slots) {
            backends_[slot].packets.increment();
            backends_[slot].bytes.add(bytes);
        }
    }

    FlowTable &flows_;
    std::unique_ptr<BackendCounters[]> backends_{new BackendCounters[max_backend_slots]};
    SnatPortRange snat_;
    uint32_t snat_cursor_;  // the next SNAT port to try, as an offset in snat_
    FragmentTable fragments_;
    static constexpr uint32_t icmp_burst = 100;
    uint32_t icmp_tokens_ = icmp_burst;
    uint32_t icmp_refilled_ = 0;  // ms
};

} // namespace sluice::lb
