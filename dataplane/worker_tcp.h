// The worker's userspace TCP: its endpoint (dataplane/tcp_endpoint.h) and
// the proxy of proxy services on it (lb/tcp_proxy.h), fed from the worker's
// packet path and sending through its TX buffers. One per worker, like the
// flow table.
//
//   in   a TCP segment to a proxy VIP (the balancer says to_stack), or to a
//        local address on a port of this worker's TCP slice (a backend's
//        answer to one of the proxy's connections); its checksum verified
//        unless the NIC did, and its sender's MAC and port remembered
//   out  each segment the endpoint sends becomes one mbuf: Ethernet, IP and
//        TCP headers with checksums, the payload copied in once. It leaves
//        where the peer's last segment came from (its MAC), or, for a peer
//        not heard from yet (a backend being connected to), by the
//        snapshot's next hop; a peer with neither is counted (tcp_no_route)
//        and the TCP's retransmission tries again.
//   time the TSC in microseconds; the endpoint's timers run once per poll.
#pragma once

#include <array>
#include <cstdint>

#include "dataplane/counter.h"
#include "dataplane/drop_reason.h"
#include "dataplane/net_addr.h"
#include "dataplane/packet_parse.h"
#include "dataplane/tcp_endpoint.h"
#include "lb/tcp_proxy.h"

struct rte_mbuf;
struct rte_mempool;

namespace sluice::lb {
class Snapshot;
}

namespace sluice::dataplane {

struct WorkerContext;

struct WorkerTcpSettings {
    tcp::Settings connection;
    tcp::EndpointLimits limits;
    tcp::LocalPorts ports;  // this worker's slice for the proxy's backend connections
    lb::ProxySettings proxy;
    uint64_t secret = 0;    // ISNs and SYN cookies (RFC 6528)
};

// Where the peers that sent us segments are: the port and MAC their last
// segment came from, by address. Direct-mapped: an entry a collision
// overwrote is learnt again from the peer's next segment.
class PeerCache {
public:
    struct Peer {
        uint16_t port_index = 0;
        MacAddress mac;
    };
    void learn(const IpAddress &address, uint16_t port_index, const uint8_t *mac);
    const Peer *find(const IpAddress &address) const;

private:
    static constexpr size_t size = 4096;
    struct Entry {
        IpAddress address;
        bool used = false;
        Peer peer;
    };
    static size_t index_of(const IpAddress &address);
    std::array<Entry, size> entries_{};
};

// The endpoint's figures as the control plane reads them: the endpoint keeps
// plain integers, and the worker copies them here once a millisecond.
struct TcpFigures {
    Counter connections, time_wait, half_open, sessions;  // gauges
    Counter accepted, connected, closed, resets_sent, refused_full;
    Counter syn_cookies_sent, syn_cookies_accepted, syn_cookies_refused;
    Counter time_wait_evicted;
    Counter segments_in, segments_out;
};

class WorkerTcp final : public tcp::PacketSink {
public:
    WorkerTcp(const WorkerTcpSettings &settings, WorkerContext &worker, rte_mempool *pool);

    // True when a segment to `destination` port `port` (host order) belongs
    // to this worker's TCP rather than to the flow table: a local address's
    // port in the TCP's slice.
    bool owns_port(uint16_t port) const {
        return port >= settings_.ports.first && port <= settings_.ports.last;
    }

    // Once per poll, before any packet: the snapshot and the time.
    void begin_poll(const lb::Snapshot *snapshot, uint64_t now_us);
    // Takes (and frees) a TCP segment for the stack, parsed as `parsed`,
    // from the snapshot port `port_index`.
    void receive(rte_mbuf *packet, const ParsedPacket &parsed, uint16_t port_index);
    // After the poll's packets: the due timers, then the proxy's cleanup.
    void end_poll();

    void send_packet(const tcp::FourTuple &tuple, const tcp::TcpHeader &header,
                     const tcp::Payload &payload) override;

    // Read by the control plane: the proxy's counters are its own
    // (written only here), the endpoint's are copied into figures().
    const lb::ProxyCounters &proxy_counters() const { return proxy_.counters(); }
    const TcpFigures &figures() const { return figures_; }
    // The worker's own thread only (tests).
    const tcp::TcpEndpoint &endpoint() const { return endpoint_; }

private:
    WorkerTcpSettings settings_;
    WorkerContext &worker_;
    rte_mempool *pool_;
    tcp::TcpEndpoint endpoint_;
    lb::TcpProxy proxy_;
    PeerCache peers_;
    const lb::Snapshot *snapshot_ = nullptr;
    uint64_t now_us_ = 0;
    uint16_t ip_id_ = 0;
    uint64_t published_us_ = 0;
    uint64_t segments_in_ = 0, segments_out_ = 0;
    TcpFigures figures_;

    void publish();
};

} // namespace sluice::dataplane
