// A worker's TCP proxy, for the services in `proxy` mode: the worker's own
// TCP (dataplane/tcp_endpoint.h) ends each client connection on the VIP, and
// the proxy pairs it with a connection it opens from one of the service's
// local addresses to the backend Maglev picks for the client's tuple (the
// same backend an L4 mode would pick). Bytes are relayed both ways as they
// come, with backpressure: what one side's send buffer cannot take stays in
// the other side's receive buffer, and its window closes, until the ACKs
// make room. This is what the HTTP proxy will be built on.
//
//   - The backend connection opens once the client's handshake completes,
//     so a SYN flood (answered with cookies) opens nothing toward backends.
//     Bytes the client sends meanwhile wait in the backend connection's send
//     buffer; a FIN waits until the backend's handshake is done.
//   - A FIN from one side becomes a FIN to the other after the bytes before
//     it; the session ends when both connections have closed.
//   - A reset, a timeout or a refused backend on one side resets the other.
//   - A session with no byte either way for `idle_timeout_us` is reset.
//   - Listeners follow the snapshot: a new snapshot's proxy services are
//     listened on, a removed service's listener goes, and its sessions run on
//     to their end (as L4 flows do).
//
// One per worker, driven from the worker's poll loop; no EAL, no locks.
// Sessions are kept in a pool: the proxy allocates only when the number of
// live sessions reaches a new high.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/counter.h"
#include "dataplane/tcp_endpoint.h"
#include "lb/snapshot.h"

namespace sluice::lb {

struct ProxySettings {
    uint64_t idle_timeout_us = 300'000'000;
};

struct ProxyCounters {
    Counter sessions;          // client connections accepted
    Counter backend_connected; // backend connections established
    Counter backend_failed;    // refused, timed out, or no local port free
    Counter no_backend;        // client refused: its service had no backend
    Counter idle_timeouts;
    Counter resets;            // sessions ended by a reset on either side
    Counter bytes_to_backend, bytes_to_client;
};

class TcpProxy {
public:
    TcpProxy(tcp::TcpEndpoint &endpoint, const ProxySettings &settings);
    ~TcpProxy();
    TcpProxy(const TcpProxy &) = delete;
    TcpProxy &operator=(const TcpProxy &) = delete;

    // Before the worker hands the endpoint anything in a poll: the snapshot
    // the poll reads (null: none) and the time. A new snapshot's proxy
    // services are listened on.
    void begin(const Snapshot *snapshot, uint64_t now_us);
    // After the poll: sessions that ended in it go back to the pool.
    void end();

    const ProxyCounters &counters() const { return counters_; }
    size_t sessions() const { return live_; }

private:
    class Session;
    struct Listener {
        IpAddress address;
        uint16_t port;
        bool operator==(const Listener &) const = default;
    };

    tcp::ConnectionEvents *accept(tcp::Connection &connection, const tcp::FourTuple &tuple);
    void listen_on(const Snapshot &snapshot);
    void finished(Session &session);

    tcp::TcpEndpoint &endpoint_;
    ProxySettings settings_;
    const Snapshot *snapshot_ = nullptr;
    uint64_t generation_ = 0;
    bool listening_ = false;  // on generation_'s services
    uint64_t now_us_ = 0;
    std::vector<Listener> listeners_;
    std::vector<std::unique_ptr<Session>> made_;  // every session, live or free
    std::vector<Session *> free_;
    std::vector<Session *> ended_;                // this poll's, not yet free
    size_t live_ = 0;
    ProxyCounters counters_;
};

} // namespace sluice::lb
