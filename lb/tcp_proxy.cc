#include "lb/tcp_proxy.h"

#include <algorithm>
#include <cstring>

#include "dataplane/byte_order.h"
#include "lb/flow_key.h"

namespace sluice::lb {

namespace {

void copy_address(std::array<uint8_t, 16> &to, const IpAddress &from) {
    to.fill(0);
    std::memcpy(to.data(), from.bytes.data(), from.is_v4() ? 4 : 16);
}

// The client's connection as an L4 mode sees its first packet: the same key
// gives the same Maglev pick.
FlowKey client_key(const tcp::FourTuple &tuple) {
    FlowKey key;
    copy_address(key.source, tuple.remote);
    copy_address(key.destination, tuple.local);
    key.source_port = port_to_network(tuple.remote_port);
    key.destination_port = port_to_network(tuple.local_port);
    key.protocol = 6;
    key.family = tuple.local.is_v4() ? 4 : 6;
    return key;
}

} // namespace

// One client connection and its backend connection. Each side hears its own
// connection's events and acts on the other.
class TcpProxy::Session {
public:
    class Side : public tcp::ConnectionEvents {
    public:
        Side(Session &session, bool client) : session_(session), client_(client) {}
        tcp::Connection *connection = nullptr;
        bool finish_pending = false;  // the other side's FIN, waiting for our handshake

        void on_established() override { session_.established(*this); }
        size_t on_data(const uint8_t *data, size_t length) override {
            return session_.relay(*this, data, length);
        }
        void on_send_space(size_t) override { session_.send_space(*this); }
        void on_peer_finished() override { session_.peer_finished(*this); }
        void on_closed(tcp::CloseReason reason) override { session_.closed(*this, reason); }
        void on_user_timer() override { session_.idle_check(); }

        bool is_client() const { return client_; }

    private:
        Session &session_;
        bool client_;
    };

    explicit Session(TcpProxy &proxy) : proxy_(proxy), client_(*this, true), backend_(*this, false) {}

    // A client connection accepted for `backend` of a service, from `local`.
    void start(tcp::Connection &client, const Backend &backend, uint16_t backend_port,
               const IpAddress &local) {
        client_.connection = &client;
        client_.finish_pending = false;
        backend_.connection = nullptr;
        backend_.finish_pending = false;
        backend_address_ = backend.address;
        backend_port_ = backend_port;
        local_ = local;
        ended_ = false;
        reset_ = false;
        last_activity_us_ = proxy_.now_us_;
        client.set_user_timer(proxy_.now_us_ + proxy_.settings_.idle_timeout_us);
    }

    Side &client_side() { return client_; }

private:
    Side &other(const Side &side) { return side.is_client() ? backend_ : client_; }
    uint64_t now() const { return proxy_.now_us_; }

    void established(Side &side) {
        if (side.is_client()) {
            // Now the backend: a completed handshake is worth its connection.
            backend_.connection = proxy_.endpoint_.connect(local_, backend_address_,
                                                           backend_port_, backend_, now());
            if (!backend_.connection) {
                proxy_.counters_.backend_failed.increment();
                reset_ = true;
                client_.connection->abort(now());
            }
            return;
        }
        proxy_.counters_.backend_connected.increment();
        if (backend_.finish_pending)
            backend_.connection->shutdown(now());
        // What the client sent meanwhile is queued already; this is for what
        // did not fit.
        if (client_.connection) {
            client_.connection->resume_receiving(now());
            touched(*client_.connection);
        }
    }

    // The endpoint files timers of the connection it is acting on; the other
    // side's, which the proxy acts on too, it hears of here.
    void touched(tcp::Connection &connection) { proxy_.endpoint_.touch(connection); }

    // Bytes from `side`'s peer, to send on the other connection. What does
    // not fit stays with `side`'s connection, whose window closes.
    size_t relay(Side &side, const uint8_t *data, size_t length) {
        tcp::Connection *to = other(side).connection;
        if (!to)
            return 0;
        const size_t taken = to->send(data, length, now());
        touched(*to);
        (side.is_client() ? proxy_.counters_.bytes_to_backend
                          : proxy_.counters_.bytes_to_client).add(taken);
        if (taken)
            last_activity_us_ = now();
        return taken;
    }

    // `side`'s send buffer has room: the other side may pass on what it held.
    void send_space(Side &side) {
        last_activity_us_ = now();
        if (tcp::Connection *from = other(side).connection) {
            from->resume_receiving(now());
            touched(*from);
        }
    }

    // `side`'s peer sent its FIN, after every byte that `side` has passed on.
    void peer_finished(Side &side) {
        Side &to = other(side);
        if (!to.connection)
            return;
        const tcp::State state = to.connection->state();
        if (state == tcp::State::syn_sent || state == tcp::State::syn_received)
            to.finish_pending = true;  // a FIN cannot go before the handshake
        else
            to.connection->shutdown(now());
        if (to.connection)
            touched(*to.connection);
    }

    void closed(Side &side, tcp::CloseReason reason) {
        side.connection = nullptr;
        Side &peer = other(side);
        if (reason != tcp::CloseReason::normal) {
            if (reason == tcp::CloseReason::refused || reason == tcp::CloseReason::timed_out) {
                if (!side.is_client())
                    proxy_.counters_.backend_failed.increment();
            }
            reset_ = true;
            if (tcp::Connection *still = peer.connection) {
                peer.connection = nullptr;
                still->abort(now());
            }
        }
        if (!client_.connection && !backend_.connection && !ended_) {
            ended_ = true;
            if (reset_)
                proxy_.counters_.resets.increment();
            proxy_.finished(*this);
        }
    }

    void idle_check() {
        if (!client_.connection)
            return;
        const uint64_t deadline = last_activity_us_ + proxy_.settings_.idle_timeout_us;
        if (now() < deadline) {
            client_.connection->set_user_timer(deadline);
            return;
        }
        proxy_.counters_.idle_timeouts.increment();
        client_.connection->abort(now());  // and, through closed(), the backend's
    }

    TcpProxy &proxy_;
    Side client_, backend_;
    IpAddress backend_address_, local_;
    uint16_t backend_port_ = 0;
    uint64_t last_activity_us_ = 0;
    bool ended_ = false;
    bool reset_ = false;
};

TcpProxy::TcpProxy(tcp::TcpEndpoint &endpoint, const ProxySettings &settings)
    : endpoint_(endpoint), settings_(settings) {}

TcpProxy::~TcpProxy() = default;

void TcpProxy::begin(const Snapshot *snapshot, uint64_t now_us) {
    now_us_ = now_us;
    snapshot_ = snapshot;
    if (snapshot && (!listening_ || snapshot->generation() != generation_)) {
        listen_on(*snapshot);
        generation_ = snapshot->generation();
        listening_ = true;
    }
}

void TcpProxy::end() {
    for (Session *session : ended_)
        free_.push_back(session);
    live_ -= ended_.size();
    ended_.clear();
}

void TcpProxy::listen_on(const Snapshot &snapshot) {
    std::vector<Listener> wanted;
    for (const Service &service : snapshot.services())
        if (service.mode == ForwardingMode::proxy)
            wanted.push_back({service.vip, port_to_host(service.port_be)});
    for (const Listener &listener : listeners_)
        if (std::find(wanted.begin(), wanted.end(), listener) == wanted.end())
            endpoint_.stop_listening(listener.address, listener.port);
    for (const Listener &listener : wanted)
        if (std::find(listeners_.begin(), listeners_.end(), listener) == listeners_.end())
            endpoint_.listen(listener.address, listener.port,
                             [this](tcp::Connection &connection, const tcp::FourTuple &tuple) {
                                 return accept(connection, tuple);
                             });
    listeners_ = std::move(wanted);
}

tcp::ConnectionEvents *TcpProxy::accept(tcp::Connection &connection,
                                        const tcp::FourTuple &tuple) {
    if (!snapshot_)
        return nullptr;
    const FlowKey key = client_key(tuple);
    const uint32_t index = snapshot_->find_service(key);
    if (index == Snapshot::no_service ||
        snapshot_->services()[index].mode != ForwardingMode::proxy)
        return nullptr;
    const Service &service = snapshot_->services()[index];
    const uint32_t pick = service.maglev.lookup(maglev_hash(key, snapshot_->maglev_key()));
    if (pick == MaglevTable::no_backend || service.local_addresses.empty()) {
        counters_.no_backend.increment();
        return nullptr;
    }
    const Backend &backend = service.backends[pick];
    Session *session;
    if (free_.empty()) {
        made_.push_back(std::make_unique<Session>(*this));
        session = made_.back().get();
    } else {
        session = free_.back();
        free_.pop_back();
    }
    const uint16_t backend_port = backend.port_be ? port_to_host(backend.port_be) : tuple.local_port;
    session->start(connection, backend, backend_port,
                   local_address_of(service, maglev_hash(key, snapshot_->maglev_key())));
    ++live_;
    counters_.sessions.increment();
    return &session->client_side();
}

void TcpProxy::finished(Session &session) { ended_.push_back(&session); }

} // namespace sluice::lb
