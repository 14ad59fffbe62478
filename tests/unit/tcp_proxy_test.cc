// The TCP proxy of proxy services without a NIC: a client endpoint, the
// gateway's endpoint with the proxy, and a backends' endpoint, joined by an
// in-memory wire that routes by destination address. Bytes cross both ways
// intact (with a lossy wire too) and the sessions leave nothing behind; a
// backend that reads slowly holds the client back without loss; a refused
// or absent backend, a reset and idleness reset the other side; the backend
// is the one Maglev (and so an L4 mode) picks; listeners follow snapshots.
#include "lb/tcp_proxy.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>
#include <string>

#include "lb/flow_key.h"
#include "tests/fixtures/balancer_fixture.h"
#include "tests/fixtures/tcp_wire.h"

namespace sluice::lb {
namespace {

using tcp::CloseReason;
using tcp::Connection;
using tcp::ConnectionEvents;
using tcp::FourTuple;
using tcp::Outbox;
using tcp::Packet;
using tcp::TcpEndpoint;
using sluice::testing::addresses;
using sluice::testing::balanced_service;

IpAddress ip(const char *text) { return *parse_ip_address(text); }

const IpAddress client_ip = ip("198.18.0.10");
const IpAddress vip = ip("198.18.10.8");
const IpAddress local_ip = ip("198.18.1.104");
constexpr uint16_t backend_port = 8080;

// One end's application: keeps what it receives (up to `read_limit` at a
// time when set), and closes when the peer does.
struct App : ConnectionEvents {
    std::string received;
    bool established = false, finished = false;
    CloseReason closed = CloseReason::none;
    Connection *connection = nullptr;
    uint64_t *now = nullptr;
    size_t read_limit = SIZE_MAX;
    bool echo = false;

    void on_established() override { established = true; }
    size_t on_data(const uint8_t *data, size_t length) override {
        const size_t taken = std::min(length, read_limit);
        received.append(reinterpret_cast<const char *>(data), taken);
        if (echo) {
            EXPECT_EQ(connection->send(data, taken, *now), taken);
        }
        return taken;
    }
    void on_peer_finished() override {
        finished = true;
        connection->shutdown(*now);
    }
    void on_closed(CloseReason reason) override { closed = reason; }
};

tcp::Settings settings() {
    tcp::Settings s;
    s.send_buffer = 64 * 1024;
    s.receive_buffer = 64 * 1024;
    s.msl_us = 1'000'000;
    return s;
}

std::unique_ptr<Snapshot> proxy_snapshot(const std::vector<const char *> &backends,
                                         uint64_t generation, uint32_t weight = 1) {
    Service service = balanced_service("web-proxy", vip, 6, 80, ForwardingMode::proxy,
                                       addresses(backends), weight);
    service.local_addresses = {local_ip};
    for (Backend &backend : service.backends)
        backend.port_be = sluice::testing::network_order(backend_port);
    std::vector<Service> services;
    services.push_back(std::move(service));
    return std::make_unique<Snapshot>(std::move(services), std::vector<EgressPort>{},
                                      std::vector<std::pair<IpAddress, NextHop>>{}, 7,
                                      generation);
}

class TcpProxyTest : public ::testing::Test {
protected:
    TcpProxyTest()
        : client(settings(), {}, {40000, 40999}, client_out, 1),
          gateway(settings(), {}, {50000, 50999}, gateway_out, 2),
          backends(settings(), {}, {}, backends_out, 3),
          proxy(gateway, ProxySettings{10'000'000}),
          snapshot(proxy_snapshot({"198.18.1.11", "198.18.1.12", "198.18.1.13"}, 1)) {
        client_app.now = &now;
        for (const char *address : {"198.18.1.11", "198.18.1.12", "198.18.1.13"})
            listen_backend(address);
    }

    void listen_backend(const char *address) {
        backends.listen(ip(address), backend_port,
                        [this, address](Connection &connection, const FourTuple &) {
                            App &app = backend_apps[address];
                            app.connection = &connection;
                            app.now = &now;
                            app.echo = echo;
                            app.read_limit = backend_read_limit;
                            return &app;
                        });
    }

    // Moves packets until the wire is quiet, firing timers when it is. The
    // gateway runs one "poll" per packet, as the worker does per burst.
    void run(uint64_t until, double loss = 0) {
        std::uniform_real_distribution<double> odds(0, 1);
        while (now < until) {
            bool moved = false;
            const auto pass = [&](Outbox &from, auto route) {
                while (!from.packets.empty()) {
                    Packet packet = from.packets.front();
                    from.packets.pop_front();
                    moved = true;
                    now += 10;
                    if (odds(random) < loss)
                        continue;
                    TcpEndpoint &to = route(packet);
                    if (&to == &gateway) {
                        proxy.begin(snapshot.get(), now);
                        deliver(to, packet, now);
                        proxy.end();
                    } else {
                        deliver(to, packet, now);
                    }
                }
            };
            pass(client_out, [&](const Packet &) -> TcpEndpoint & { return gateway; });
            pass(backends_out, [&](const Packet &) -> TcpEndpoint & { return gateway; });
            pass(gateway_out, [&](const Packet &p) -> TcpEndpoint & {
                return p.tuple.remote == client_ip ? client : backends;
            });
            if (moved)
                continue;
            uint64_t next = UINT64_MAX;
            for (TcpEndpoint *endpoint : {&client, &gateway, &backends})
                if (const uint64_t at = endpoint->next_timer_us())
                    next = std::min(next, at);
            if (next == UINT64_MAX || next > until) {
                now = until;
                break;
            }
            now = std::max(now, next);
            proxy.begin(snapshot.get(), now);
            for (TcpEndpoint *endpoint : {&client, &gateway, &backends})
                endpoint->on_timer(now);
            proxy.end();
        }
    }

    Connection *connect_client() {
        proxy.begin(snapshot.get(), now);
        Connection *connection = client.connect(client_ip, vip, 80, client_app, now);
        client_app.connection = connection;
        run(now + 100'000);
        return connection;
    }

    // The backend app that got the (only) session.
    App *served() {
        for (auto &[address, app] : backend_apps)
            if (app.established)
                return &app;
        return nullptr;
    }

    void send_all(Connection &connection, const std::string &data, double loss = 0) {
        size_t sent = 0;
        const uint64_t until = now + 120'000'000;
        while (sent < data.size() && now < until) {
            sent += connection.send(reinterpret_cast<const uint8_t *>(data.data()) + sent,
                                    data.size() - sent, now);
            run(now + 1000, loss);
        }
        ASSERT_EQ(sent, data.size());
    }

    uint64_t now = 1'000'000;
    std::mt19937_64 random{11};
    Outbox client_out, gateway_out, backends_out;
    TcpEndpoint client, gateway, backends;
    TcpProxy proxy;
    std::unique_ptr<Snapshot> snapshot;
    App client_app;
    std::map<std::string, App> backend_apps;
    bool echo = false;
    size_t backend_read_limit = SIZE_MAX;
};

std::string pattern(size_t size, unsigned seed) {
    std::string data(size, '\0');
    std::mt19937 random(seed);
    for (char &c : data)
        c = char(random());
    return data;
}

TEST_F(TcpProxyTest, BytesCrossBothWaysAndTheSessionLeavesNothing) {
    echo = true;
    Connection *connection = connect_client();
    ASSERT_NE(connection, nullptr);
    ASSERT_TRUE(client_app.established);
    App *backend = served();
    ASSERT_NE(backend, nullptr);
    EXPECT_EQ(proxy.sessions(), 1u);

    const std::string data = pattern(1 << 20, 1);
    send_all(*connection, data);
    run(now + 1'000'000);
    EXPECT_TRUE(backend->received == data);
    EXPECT_TRUE(client_app.received == data);  // echoed back through the proxy
    EXPECT_EQ(proxy.counters().bytes_to_backend.read(), data.size());
    EXPECT_EQ(proxy.counters().bytes_to_client.read(), data.size());

    // The client closes; the FIN crosses, the backend closes, its FIN
    // crosses back.
    connection->shutdown(now);
    run(now + 500'000);
    EXPECT_TRUE(backend->finished);
    EXPECT_TRUE(client_app.finished);
    EXPECT_EQ(client_app.closed, CloseReason::normal);
    EXPECT_EQ(backend->closed, CloseReason::normal);
    EXPECT_EQ(proxy.sessions(), 0u);
    EXPECT_EQ(gateway.connections(), 0u);
    EXPECT_EQ(backends.connections(), 0u);
    EXPECT_EQ(proxy.counters().sessions.read(), 1u);
    EXPECT_EQ(proxy.counters().backend_connected.read(), 1u);
    EXPECT_EQ(proxy.counters().resets.read(), 0u);
    // TIME-WAIT ends too.
    run(now + 3'000'000);
    EXPECT_EQ(gateway.time_wait_entries(), 0u);
}

TEST_F(TcpProxyTest, ALossyWireStillDeliversEveryByte) {
    Connection *connection = connect_client();
    ASSERT_NE(connection, nullptr);
    const std::string data = pattern(512 * 1024, 2);
    send_all(*connection, data, 0.02);
    run(now + 20'000'000, 0.02);
    App *backend = served();
    ASSERT_NE(backend, nullptr);
    EXPECT_EQ(backend->received.size(), data.size());
    EXPECT_TRUE(backend->received == data);
}

TEST_F(TcpProxyTest, ASlowBackendHoldsTheClientBackWithoutLoss) {
    backend_read_limit = 0;  // reads nothing at first
    Connection *connection = connect_client();
    ASSERT_NE(connection, nullptr);
    const std::string data = pattern(1 << 20, 3);
    size_t sent = 0;
    for (int i = 0; i < 200 && sent < data.size(); ++i) {
        sent += connection->send(reinterpret_cast<const uint8_t *>(data.data()) + sent,
                                 data.size() - sent, now);
        run(now + 10'000);
    }
    // Four buffers of 64 KiB at most lie between the client and the
    // backend's reader: the client's send buffer, the gateway's two, and the
    // backend's receive buffer.
    EXPECT_LT(sent, size_t(4 * 64 * 1024 + 1));
    App *backend = served();
    ASSERT_NE(backend, nullptr);
    EXPECT_TRUE(backend->received.empty());

    // The backend reads again: everything arrives, in order.
    backend->read_limit = SIZE_MAX;
    backend->connection->resume_receiving(now);
    while (sent < data.size() && now < 200'000'000) {
        sent += connection->send(reinterpret_cast<const uint8_t *>(data.data()) + sent,
                                 data.size() - sent, now);
        run(now + 1000);
    }
    run(now + 2'000'000);
    EXPECT_EQ(backend->received.size(), data.size());
    EXPECT_TRUE(backend->received == data);
}

TEST_F(TcpProxyTest, ARefusedBackendResetsTheClient) {
    backends.stop_listening(ip("198.18.1.11"), backend_port);
    backends.stop_listening(ip("198.18.1.12"), backend_port);
    backends.stop_listening(ip("198.18.1.13"), backend_port);
    Connection *connection = connect_client();
    ASSERT_NE(connection, nullptr);
    run(now + 1'000'000);
    EXPECT_EQ(client_app.closed, CloseReason::reset);
    EXPECT_EQ(proxy.counters().backend_failed.read(), 1u);
    EXPECT_EQ(proxy.counters().resets.read(), 1u);
    EXPECT_EQ(proxy.sessions(), 0u);
    EXPECT_EQ(gateway.connections(), 0u);
}

TEST_F(TcpProxyTest, AServiceWithoutBackendsRefusesTheClient) {
    snapshot = proxy_snapshot({"198.18.1.11"}, 2, /*weight=*/0);
    connect_client();
    run(now + 100'000);
    EXPECT_EQ(client_app.closed, CloseReason::refused);
    EXPECT_EQ(proxy.counters().no_backend.read(), 1u);
    EXPECT_EQ(gateway.connections(), 0u);
}

TEST_F(TcpProxyTest, ABackendResetResetsTheClient) {
    Connection *connection = connect_client();
    ASSERT_NE(connection, nullptr);
    App *backend = served();
    ASSERT_NE(backend, nullptr);
    backend->connection->abort(now);
    run(now + 100'000);
    EXPECT_EQ(client_app.closed, CloseReason::reset);
    EXPECT_EQ(proxy.counters().resets.read(), 1u);
    EXPECT_EQ(proxy.sessions(), 0u);
    EXPECT_EQ(gateway.connections(), 0u);
}

TEST_F(TcpProxyTest, AnIdleSessionIsResetOnBothSides) {
    Connection *connection = connect_client();
    ASSERT_NE(connection, nullptr);
    App *backend = served();
    ASSERT_NE(backend, nullptr);
    run(now + 5'000'000);
    EXPECT_EQ(client_app.closed, CloseReason::none);  // not idle long enough yet
    run(now + 6'000'000);
    EXPECT_EQ(client_app.closed, CloseReason::reset);
    EXPECT_EQ(backend->closed, CloseReason::reset);
    EXPECT_EQ(proxy.counters().idle_timeouts.read(), 1u);
    EXPECT_EQ(gateway.connections(), 0u);
}

TEST_F(TcpProxyTest, TheBackendIsTheOneMaglevPicksForTheClientTuple) {
    std::map<std::string, int> picks;
    for (int i = 0; i < 30; ++i) {
        App app;
        app.now = &now;
        proxy.begin(snapshot.get(), now);
        Connection *connection = client.connect(client_ip, vip, 80, app, now);
        ASSERT_NE(connection, nullptr);
        app.connection = connection;
        const uint16_t port = connection->endpoints().local_port;
        run(now + 100'000);
        // The L4 modes' choice for the same first packet.
        FlowKey key;
        std::memcpy(key.source.data(), client_ip.bytes.data(), 4);
        std::memcpy(key.destination.data(), vip.bytes.data(), 4);
        key.source_port = sluice::testing::network_order(port);
        key.destination_port = sluice::testing::network_order(80);
        key.protocol = 6;
        key.family = 4;
        const Service &service = snapshot->services()[0];
        const uint32_t pick = service.maglev.lookup(maglev_hash(key, snapshot->maglev_key()));
        const std::string expected = service.backends[pick].address.to_string();
        EXPECT_TRUE(backend_apps[expected].established) << expected;
        ++picks[expected];
        connection->abort(now);
        run(now + 100'000);
        for (auto &[address, backend] : backend_apps)
            backend.established = false;
    }
    EXPECT_EQ(picks.size(), 3u);  // 30 connections reach all three
}

TEST_F(TcpProxyTest, ListenersFollowTheSnapshot) {
    Connection *connection = connect_client();
    ASSERT_NE(connection, nullptr);
    ASSERT_TRUE(client_app.established);
    // A snapshot without the service: new clients are reset, the session
    // that runs carries on.
    snapshot = std::make_unique<Snapshot>(std::vector<Service>{}, std::vector<EgressPort>{},
                                          std::vector<std::pair<IpAddress, NextHop>>{}, 7, 2);
    App late;
    late.now = &now;
    proxy.begin(snapshot.get(), now);
    late.connection = client.connect(client_ip, vip, 80, late, now);
    run(now + 100'000);
    EXPECT_EQ(late.closed, CloseReason::refused);

    const std::string data = pattern(64 * 1024, 4);
    send_all(*connection, data);
    run(now + 500'000);
    App *backend = served();
    ASSERT_NE(backend, nullptr);
    EXPECT_TRUE(backend->received == data);
}

} // namespace
} // namespace sluice::lb
