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
//
// Made to run in a worker's poll loop, which calls next_timer_us() and
// on_timer() on every turn:
//   - Everything is sized from EndpointLimits when the endpoint is made: a
//     pool of `max_connections` slots (a connection's buffers are still
//     its own, allocated when it opens), a pool of `max_time_wait` entries,
//     and for each an open-addressing index keyed by SipHash under the
//     worker's secret (dataplane/tuple_index.h). Nothing is allocated per
//     segment or per lookup.
//   - Connections' timers sit in a hashed timing wheel of 1 ms ticks
//     (dataplane/timer_wheel.h), each at its Connection::next_timer_us()
//     as last seen. Filings are lazy: a connection whose tick comes but
//     whose deadline moved later is filed again at its deadline; one whose
//     deadline moved earlier is seen when the endpoint acts on it (receive,
//     connect, its own timers), when it sends a segment, or when the layer
//     above calls touch(). Timers fire at the first tick at or after their
//     deadline: late by less than 1 ms.
//   - TIME-WAIT entries are kept in the order of their deadlines (a FIN
//     that restarts one moves it to the back), so they expire from the
//     front without a scan.
// next_timer_us() and on_timer() cost O(1) amortized, not O(connections).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "dataplane/net_addr.h"
#include "dataplane/siphash.h"
#include "dataplane/tcp_connection.h"
#include "dataplane/timer_wheel.h"
#include "dataplane/tuple_index.h"

namespace sluice::tcp {

struct FourTuple {
    IpAddress local;
    uint16_t local_port = 0;
    IpAddress remote;
    uint16_t remote_port = 0;

    bool operator==(const FourTuple &) const = default;
};

// Not keyed: for tables of tuples an outsider cannot choose. The endpoint's
// own tables hash with SipHash under its secret (TcpEndpoint::tuple_hash).
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

    // When on_timer() next has something to do: the earliest TIME-WAIT
    // deadline, or the tick (at most 1 ms late) of the earliest connection
    // deadline, which may be early when a deadline moved later since it
    // was filed; 0 when nothing waits. O(1) amortized.
    uint64_t next_timer_us() const;
    // Runs the timers due by now_us; frees the connections that closed and
    // the TIME-WAIT entries whose wait ended. O(due timers) amortized.
    void on_timer(uint64_t now_us);

    // For the layer above: call it after acting on one of this endpoint's
    // connections (send, shutdown, abort, a timer of its own) outside the
    // endpoint's calls, so that a timer that moved earlier is filed in the
    // wheel. Without it the endpoint still sees what happens inside its
    // own calls (receive, connect, on_timer and the events they raise) and
    // any connection that sent a segment; it would miss a timer armed with
    // no segment going out (the persist timer on a zero window), which then
    // waits for the connection's next filing. O(1): call it after every
    // such act. A connection that is not this endpoint's is ignored.
    void touch(Connection &connection);

    struct Counters {
        uint64_t accepted = 0, connected = 0, closed = 0;
        uint64_t syn_cookies_sent = 0, syn_cookies_accepted = 0, syn_cookies_refused = 0;
        uint64_t resets_sent = 0, refused_full = 0;
        uint64_t time_wait_entered = 0, time_wait_recycled = 0, time_wait_evicted = 0;
        // Connections whose tick came and whose timer ran, and those whose
        // tick came but whose deadline had moved later (filed again): the
        // cost of filing lazily.
        uint64_t timer_wheel_fired = 0, timer_wheel_refiled = 0;
    };
    const Counters &counters() const { return counters_; }
    size_t connections() const { return connection_count_; }
    size_t time_wait_entries() const { return time_wait_count_; }
    size_t half_open() const { return half_open_; }

    // Memory the endpoint holds per connection (besides the connection's
    // buffers) and per TIME-WAIT entry, from the pools and the indexes:
    // for the docs and for sizing limits.
    static size_t bytes_per_connection();
    static size_t bytes_per_time_wait_entry();

    // The hash the endpoint's tables file `tuple` under: SipHash-2-4 under
    // a key drawn from the secret. For tests.
    uint64_t tuple_hash(const FourTuple &tuple) const;
    // How many entries past its home the connection of `tuple` sits in its
    // index, or -1 when there is none. For tests.
    long probe_distance(const FourTuple &tuple) const;

private:
    struct Slot;
    struct SlotStorage;
    // A TIME-WAIT entry in the pool, linked in the order of the deadlines.
    struct TimeWaitEntry {
        FourTuple tuple;
        uint32_t snd_nxt = 0, rcv_nxt = 0;
        uint64_t until_us = 0;
        uint32_t prev = TupleIndex::none, next = TupleIndex::none;  // next: the free list too
    };
    struct ListenKey {
        IpAddress address;
        uint16_t port;
        bool operator==(const ListenKey &) const = default;
    };
    struct ListenKeyHash {
        size_t operator()(const ListenKey &key) const;
    };

    Slot &slot(uint32_t id) const;
    Slot *find_slot(uint64_t hash, const FourTuple &tuple) const;
    Slot *make_slot(const FourTuple &tuple, uint64_t hash, ConnectionEvents *events);
    void free_slot(Slot &slot);
    // The wheel hears of the slot's next timer if it moved earlier.
    void refile(Slot &slot);
    // A slot to refile at the next settle(): it sent, or was touched.
    void mark(uint32_t id);
    void settle();
    uint32_t find_time_wait(uint64_t hash, const FourTuple &tuple) const;
    void unlink_time_wait(uint32_t index);
    void link_time_wait_last(uint32_t index);
    void erase_time_wait(uint32_t index);
    // A slot whose events the listener's owner gave, or null: then the
    // segment was answered with a RST (no room, or refused).
    Slot *admit(const FourTuple &tuple, const AcceptHandler &accept, const TcpSegment &segment);
    void on_listener_segment(const FourTuple &tuple, const AcceptHandler &accept,
                             const TcpSegment &segment, const uint8_t *payload, uint64_t now_us);
    bool on_time_wait_segment(const FourTuple &tuple, const TcpSegment &segment, uint64_t now_us);
    void send_reset(const FourTuple &tuple, const TcpSegment &segment);
    void reap();
    void enter_time_wait(Slot &waiting, uint64_t now_us);

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
    SipKey table_key_;
    uint32_t next_port_ = 0;  // the next local port to try, as an offset in ports_

    // Control-plane sized: a few listeners, changed by configuration.
    std::unordered_map<ListenKey, AcceptHandler, ListenKeyHash> listeners_;

    // Connections: slots constructed in place in storage that is reserved
    // whole but touched only as slots are used.
    std::unique_ptr<SlotStorage[]> slot_storage_;
    uint32_t slot_capacity_ = 0;
    std::vector<uint32_t> free_slots_;   // a stack of ids
    std::vector<uint8_t> slot_flags_;    // per id: in_use, marked
    TupleIndex slot_index_;
    TimerWheel wheel_;
    std::vector<uint32_t> marked_;       // slots to refile at settle()
    std::vector<uint32_t> closed_;       // slots to free at reap()
    std::vector<uint32_t> due_;          // on_timer()'s; all three keep their capacity
    size_t connection_count_ = 0;

    // TIME-WAIT: the pool, its index and its list, oldest deadline first.
    std::unique_ptr<TimeWaitEntry[]> time_wait_;
    TupleIndex time_wait_index_;
    uint32_t time_wait_first_ = TupleIndex::none, time_wait_last_ = TupleIndex::none;
    uint32_t time_wait_free_ = TupleIndex::none;
    size_t time_wait_count_ = 0;

    size_t half_open_ = 0;
    Counters counters_;
};

} // namespace sluice::tcp
