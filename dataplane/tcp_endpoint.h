// A worker's userspace TCP: its listeners, its connections by four-tuple,
// its TIME-WAIT entries and its SYN cookies (RFC 4987 3.6). Pure logic like
// the connection (dataplane/tcp_connection.h): the worker hands it each
// TCP segment addressed to an L7 listener or to one of its own connections,
// and sends what comes out of its PacketSink. The layer above (the HTTP
// proxy) listens, connects, and hears each connection's events.
//
//   - A SYN to a listener makes a connection in SYN-RECEIVED, unless the
//     half-open ones reach `syn_backlog`: then the SYN-ACK carries a SYN
//     cookie and no state is kept; an ACK that returns a good cookie makes
//     the connection (with the MSS the cookie encodes; no window scaling,
//     SACK or timestamps, which a cookie cannot carry).
//   - connect() opens from a local port of this worker's slice, so that the
//     answers, steered by port, reach this worker.
//   - A connection that reaches TIME-WAIT is replaced by a small entry
//     (tuple, sequence numbers, deadline) in a table of `max_time_wait`
//     entries; when it is full the oldest entry goes (as Linux's
//     tcp_max_tw_buckets does). A SYN with a higher sequence number than
//     the entry's may reopen the tuple (RFC 6191, without timestamps).
//   - A segment for no connection and no listener is answered with a RST
//     (RFC 9293 3.10.7.1), unless it is a RST itself.
//   - Connections beyond `max_connections` are refused (a SYN is answered
//     with a RST; connect() returns null).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "dataplane/net_addr.h"
#include "dataplane/tcp_connection.h"

namespace sluice::tcp {

struct FourTuple {
    IpAddress local;
    uint16_t local_port = 0;
    IpAddress remote;
    uint16_t remote_port = 0;

    bool operator==(const FourTuple &) const = default;
};

struct FourTupleHash {
    size_t operator()(const FourTuple &tuple) const;
};

// Where the endpoint's segments go: the worker builds the packet (IP header
// from the tuple, TCP header, payload, checksum) and sends it.
class PacketSink {
public:
    virtual ~PacketSink() = default;
    virtual void send_packet(const FourTuple &tuple, const TcpHeader &header,
                             const Payload &payload) = 0;
};

struct EndpointLimits {
    size_t max_connections = 16384;
    size_t syn_backlog = 1024;      // half-open connections before SYN cookies
    size_t max_time_wait = 16384;
};

// The local ports that connect() may use: this worker's slice.
struct LocalPorts {
    uint16_t first = 1024;
    uint16_t last = 65535;
};

class TcpEndpoint;

// A listener's owner: gives each new connection its events, or refuses it
// (null: the connection is reset).
using AcceptHandler = std::function<ConnectionEvents *(Connection &, const FourTuple &)>;

class TcpEndpoint {
public:
    TcpEndpoint(const Settings &settings, const EndpointLimits &limits, LocalPorts ports,
                PacketSink &sink, uint64_t secret);
    ~TcpEndpoint();
    TcpEndpoint(const TcpEndpoint &) = delete;
    TcpEndpoint &operator=(const TcpEndpoint &) = delete;

    // Accepts connections to address:port. False when one listens there already.
    bool listen(const IpAddress &address, uint16_t port, AcceptHandler accept);
    void stop_listening(const IpAddress &address, uint16_t port);

    // Opens a connection from `local` (a port of this worker's slice) to
    // remote:port; null when no port or connection is free.
    Connection *connect(const IpAddress &local, const IpAddress &remote, uint16_t remote_port,
                        ConnectionEvents &events, uint64_t now_us);

    // A segment that arrived, from `source` to `destination`, its checksum
    // verified. `payload` points at the segment's first byte (its header), as
    // parse_segment() read it: the data is at segment.payload_offset.
    void receive(const IpAddress &source, const IpAddress &destination, const TcpSegment &segment,
                 const uint8_t *payload, uint64_t now_us);

    // O(connections) for now: a timer wheel comes with the worker's use of it.
    uint64_t next_timer_us() const;
    // Runs the due timers; frees the connections that closed.
    void on_timer(uint64_t now_us);

    struct Counters {
        uint64_t accepted = 0, connected = 0, closed = 0;
        uint64_t syn_cookies_sent = 0, syn_cookies_accepted = 0, syn_cookies_refused = 0;
        uint64_t resets_sent = 0, refused_full = 0;
        uint64_t time_wait_entered = 0, time_wait_recycled = 0, time_wait_evicted = 0;
    };
    const Counters &counters() const { return counters_; }
    size_t connections() const { return slots_.size(); }
    size_t time_wait_entries() const { return time_wait_.size(); }
    size_t half_open() const { return half_open_; }

private:
    struct Slot;
    struct TimeWaitEntry {
        uint32_t snd_nxt = 0, rcv_nxt = 0;
        uint64_t until_us = 0;
    };
    struct ListenKey {
        IpAddress address;
        uint16_t port;
        bool operator==(const ListenKey &) const = default;
    };
    struct ListenKeyHash {
        size_t operator()(const ListenKey &key) const;
    };

    Slot *make_slot(const FourTuple &tuple, ConnectionEvents *events);
    // A slot whose events the listener's owner gave, or null: then the
    // segment was answered with a RST (no room, or refused).
    Slot *admit(const FourTuple &tuple, const AcceptHandler &accept, const TcpSegment &segment);
    void on_listener_segment(const FourTuple &tuple, const AcceptHandler &accept,
                             const TcpSegment &segment, const uint8_t *payload, uint64_t now_us);
    bool on_time_wait_segment(const FourTuple &tuple, const TcpSegment &segment, uint64_t now_us);
    void send_reset(const FourTuple &tuple, const TcpSegment &segment);
    void reap(uint64_t now_us);
    void enter_time_wait(const FourTuple &tuple, const Connection &connection, uint64_t now_us);

    uint32_t initial_sequence(const FourTuple &tuple, uint64_t now_us) const;
    uint32_t make_cookie(const FourTuple &tuple, uint32_t peer_seq, uint16_t mss,
                         uint64_t now_us) const;
    // The MSS a good cookie encodes, or 0.
    uint16_t check_cookie(const FourTuple &tuple, uint32_t peer_seq, uint32_t cookie,
                          uint64_t now_us) const;

    Settings settings_;
    EndpointLimits limits_;
    LocalPorts ports_;
    PacketSink &sink_;
    uint64_t secret_;
    uint32_t next_port_ = 0;  // the next local port to try, as an offset in ports_

    std::unordered_map<ListenKey, AcceptHandler, ListenKeyHash> listeners_;
    std::unordered_map<FourTuple, std::unique_ptr<Slot>, FourTupleHash> slots_;
    std::unordered_map<FourTuple, TimeWaitEntry, FourTupleHash> time_wait_;
    std::deque<std::pair<FourTuple, uint64_t>> time_wait_order_;  // oldest first
    std::vector<Slot *> due_;  // on_timer()'s, kept for its capacity
    size_t half_open_ = 0;
    bool reap_due_ = false;
    Counters counters_;
};

} // namespace sluice::tcp
