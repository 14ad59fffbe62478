// A worker's userspace TCP end to end, without a NIC: two endpoints joined
// by an in-memory wire that can lose, reorder and duplicate segments. A
// megabyte crosses intact with and without a lossy wire, both sides close
// and leave nothing behind but one TIME-WAIT entry; SYN cookies take over
// when the backlog is full and a forged cookie is reset; segments for no
// connection are reset; TIME-WAIT answers a lost FIN, yields to a new SYN
// and stays within its bound; local ports come from the worker's slice.
// The timer wheel fires every connection's timer within a tick of what a
// scan of all of them says, sees deadlines that move earlier (by a segment
// sent, or touch()) and later; TIME-WAIT entries leave in the order of
// their deadlines; the fixed tables refuse when full and stay correct
// under churn, and their hash is keyed.
#include "dataplane/tcp_endpoint.h"
#include "dataplane/siphash.h"
#include "tests/fixtures/tcp_wire.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace sluice::tcp {
namespace {

IpAddress ip(const char *text) { return *parse_ip_address(text); }

const IpAddress client_ip = ip("198.18.0.10");
const IpAddress server_ip = ip("198.18.10.1");

// What one side's application sees.
struct App : ConnectionEvents {
    std::string received;
    bool established = false, finished = false;
    CloseReason closed = CloseReason::none;
    Connection *connection = nullptr;
    bool close_when_finished = true;
    uint64_t *now = nullptr;

    void on_established() override { established = true; }
    size_t on_data(const uint8_t *data, size_t length) override {
        received.append(reinterpret_cast<const char *>(data), length);
        return length;
    }
    void on_peer_finished() override {
        finished = true;
        if (close_when_finished && connection)
            connection->shutdown(*now);
    }
    void on_closed(CloseReason reason) override { closed = reason; }
};

Settings settings() {
    Settings s;
    s.send_buffer = 64 * 1024;
    s.receive_buffer = 64 * 1024;
    s.msl_us = 1'000'000;
    return s;
}

// Two endpoints and the wire between them, run in simulated time.
class TcpEndpointTest : public testing::Test {
protected:
    TcpEndpointTest()
        : client(settings(), {}, {40000, 40999}, client_out, 1),
          server(settings(), {}, {}, server_out, 2) {}

    // Moves packets both ways until the wire is quiet, firing timers when
    // it is; `loss`, `duplicate` and `reorder` are per-packet odds.
    void run(uint64_t until, double loss = 0, double duplicate = 0, double reorder = 0) {
        std::uniform_real_distribution<double> odds(0, 1);
        while (now < until) {
            bool moved = false;
            for (auto [from, to] : {std::pair{&client_out, &server}, std::pair{&server_out, &client}}) {
                while (!from->packets.empty()) {
                    Packet packet = from->packets.front();
                    from->packets.pop_front();
                    moved = true;
                    now += 10;  // 10 us a hop
                    if (odds(random_) < loss) {
                        ++dropped;
                        continue;
                    }
                    if (reorder > 0 && odds(random_) < reorder && !from->packets.empty()) {
                        std::swap(packet, from->packets.front());
                    }
                    deliver(*to, packet, now);
                    if (odds(random_) < duplicate)
                        deliver(*to, packet, now);
                }
            }
            if (moved)
                continue;
            const uint64_t next = std::min(nonzero(client.next_timer_us()),
                                           nonzero(server.next_timer_us()));
            if (next == UINT64_MAX || next > until) {
                now = until;  // nothing more happens before then
                break;
            }
            now = std::max(now, next);
            client.on_timer(now);
            server.on_timer(now);
        }
    }
    static uint64_t nonzero(uint64_t t) { return t ? t : UINT64_MAX; }

    void listen_with(App &app) {
        server.listen(server_ip, 80, [&app](Connection &connection, const FourTuple &) {
            app.connection = &connection;
            return &app;
        });
        app.now = &now;
    }

    // The client's connection to the server's port 80, for `app`, which
    // closes only when the test says.
    Connection *connect_client(App &app) {
        app.now = &now;
        app.close_when_finished = false;
        app.connection = client.connect(client_ip, server_ip, 80, app, now);
        return app.connection;
    }

    // Sends `data` from the client as fast as the buffer lets it.
    void send_all(Connection &connection, const std::string &data, uint64_t until, double loss = 0,
                  double duplicate = 0, double reorder = 0) {
        size_t sent = 0;
        while (sent < data.size() && now < until) {
            sent += connection.send(reinterpret_cast<const uint8_t *>(data.data()) + sent,
                                    data.size() - sent, now);
            run(now + 1000, loss, duplicate, reorder);
        }
        ASSERT_EQ(sent, data.size());
    }

    uint64_t now = 1'000'000;
    uint64_t dropped = 0;
    std::mt19937_64 random_{7};  // one sequence for the whole test
    Outbox client_out, server_out;
    TcpEndpoint client, server;
};

FourTuple tuple_of_port(uint16_t client_port) {
    return FourTuple{server_ip, 80, client_ip, client_port};
}

std::string pattern(size_t size) {
    std::string data(size, '\0');
    std::mt19937 random(1);
    for (char &c : data)
        c = char(random());
    return data;
}

TEST_F(TcpEndpointTest, AMegabyteCrossesAndBothSidesClose) {
    App server_app, client_app;
    listen_with(server_app);
    Connection *connection = connect_client(client_app);
    ASSERT_NE(connection, nullptr);
    EXPECT_GE(connection->endpoints().local_port, 40000);
    EXPECT_LE(connection->endpoints().local_port, 40999);
    run(now + 100'000);
    ASSERT_TRUE(client_app.established);
    ASSERT_TRUE(server_app.established);

    const std::string data = pattern(1 << 20);
    send_all(*connection, data, now + 60'000'000);
    connection->shutdown(now);
    run(now + 500'000);  // less than TIME-WAIT's 2 s
    EXPECT_EQ(server_app.received.size(), data.size());
    EXPECT_TRUE(server_app.received == data);
    EXPECT_TRUE(server_app.finished);
    EXPECT_EQ(server_app.closed, CloseReason::normal);  // it closed when told, LAST-ACK
    EXPECT_EQ(client_app.closed, CloseReason::normal);  // TIME-WAIT: done for the app
    EXPECT_EQ(client.connections(), 0u);
    EXPECT_EQ(server.connections(), 0u);
    EXPECT_EQ(client.time_wait_entries(), 1u);
    EXPECT_EQ(server.time_wait_entries(), 0u);
    // TIME-WAIT ends after 2 MSL.
    run(now + 3'000'000);
    EXPECT_EQ(client.time_wait_entries(), 0u);
}

TEST_F(TcpEndpointTest, ALossyWireStillDeliversEveryByteInOrder) {
    App server_app, client_app;
    listen_with(server_app);
    Connection *connection = connect_client(client_app);
    ASSERT_NE(connection, nullptr);
    run(now + 100'000);  // a clean handshake; loss after
    ASSERT_TRUE(server_app.established);
    const std::string data = pattern(1 << 20);
    send_all(*connection, data, now + 600'000'000, 0.03, 0.01, 0.05);
    connection->shutdown(now);
    run(now + 600'000'000, 0.03, 0.01, 0.05);
    EXPECT_EQ(server_app.received.size(), data.size());
    EXPECT_TRUE(server_app.received == data);
    EXPECT_TRUE(server_app.finished);
    EXPECT_EQ(client_app.closed, CloseReason::normal);
    EXPECT_GT(dropped, 10u);  // the wire did lose segments
    EXPECT_GT(server.counters().accepted, 0u);
}

// A reader that takes 8000 bytes every 5 ms, on the connection's timer
// for the layer above, and leaves the rest in the connection meanwhile.
struct SlowReader : App {
    size_t budget = 0;
    bool saw_zero_window = false;

    void on_established() override {
        App::on_established();
        connection->set_user_timer(*now + 5000);
    }
    size_t on_data(const uint8_t *data, size_t length) override {
        const size_t taken = std::min(length, budget);
        budget -= taken;
        received.append(reinterpret_cast<const char *>(data), taken);
        return taken;
    }
    void on_user_timer() override {
        saw_zero_window |= connection->info().rcv_wnd == 0;
        budget = 8000;
        connection->resume_receiving(*now);
        connection->set_user_timer(*now + 5000);
    }
};

TEST_F(TcpEndpointTest, ASlowReaderClosesTheWindowAndNothingIsLost) {
    SlowReader server_app;
    App client_app;
    listen_with(server_app);
    Connection *connection = connect_client(client_app);
    ASSERT_NE(connection, nullptr);
    run(now + 100'000);
    ASSERT_TRUE(server_app.established);
    const std::string data = pattern(1 << 20);
    send_all(*connection, data, now + 600'000'000, 0.02, 0.01, 0.05);
    connection->shutdown(now);
    run(now + 600'000'000, 0.02, 0.01, 0.05);
    EXPECT_TRUE(server_app.saw_zero_window);
    EXPECT_EQ(server_app.received.size(), data.size());
    EXPECT_TRUE(server_app.received == data);
    EXPECT_TRUE(server_app.finished);
    EXPECT_EQ(client_app.closed, CloseReason::normal);
}

TEST_F(TcpEndpointTest, ASegmentForNoConnectionIsReset) {
    TcpSegment syn;
    syn.header.source_port = 5555;
    syn.header.destination_port = 81;
    syn.header.seq = 100;
    syn.header.flags = flag::syn;
    server.receive(client_ip, server_ip, syn, nullptr, now);
    ASSERT_EQ(server_out.packets.size(), 1u);
    const TcpHeader &rst = server_out.packets[0].header;
    EXPECT_EQ(rst.flags, flag::rst | flag::ack);
    EXPECT_EQ(rst.seq, 0u);
    EXPECT_EQ(rst.ack, 101u);
    EXPECT_EQ(rst.destination_port, 5555);

    // An ACK: the RST takes its sequence number from it. A RST: no answer.
    TcpSegment ack = syn;
    ack.header.flags = flag::ack;
    ack.header.ack = 777;
    server.receive(client_ip, server_ip, ack, nullptr, now);
    EXPECT_EQ(server_out.packets[1].header.flags, flag::rst);
    EXPECT_EQ(server_out.packets[1].header.seq, 777u);
    TcpSegment rst_in = syn;
    rst_in.header.flags = flag::rst;
    server.receive(client_ip, server_ip, rst_in, nullptr, now);
    EXPECT_EQ(server_out.packets.size(), 2u);
    EXPECT_EQ(server.counters().resets_sent, 2u);
}

TEST_F(TcpEndpointTest, SynCookiesTakeOverWhenTheBacklogIsFull) {
    TcpEndpoint guarded(settings(), {16, 0, 16}, {}, server_out, 3);
    App app;
    app.now = &now;
    guarded.listen(server_ip, 80, [&app](Connection &connection, const FourTuple &) {
        app.connection = &connection;
        return &app;
    });
    TcpSegment syn;
    syn.header.source_port = 40001;
    syn.header.destination_port = 80;
    syn.header.seq = 9000;
    syn.header.flags = flag::syn;
    syn.header.options.mss = 1460;
    syn.header.options.window_scale = 7;
    guarded.receive(client_ip, server_ip, syn, nullptr, now);
    EXPECT_EQ(guarded.connections(), 0u);  // no state kept
    ASSERT_EQ(server_out.packets.size(), 1u);
    const TcpHeader syn_ack = server_out.packets[0].header;
    EXPECT_EQ(syn_ack.flags, flag::syn | flag::ack);
    EXPECT_EQ(syn_ack.ack, 9001u);
    EXPECT_FALSE(syn_ack.options.window_scale);  // a cookie cannot keep it
    EXPECT_EQ(guarded.counters().syn_cookies_sent, 1u);

    // A forged cookie is reset.
    TcpSegment forged;
    forged.header = {40001, 80, 9001, syn_ack.seq + 2, flag::ack, 1000, 0, {}};
    guarded.receive(client_ip, server_ip, forged, nullptr, now + 1000);
    EXPECT_EQ(guarded.connections(), 0u);
    EXPECT_EQ(server_out.packets.back().header.flags, flag::rst);
    EXPECT_EQ(guarded.counters().syn_cookies_refused, 1u);

    // The true one makes the connection, with its first data.
    TcpSegment ack;
    ack.header = {40001, 80, 9001, syn_ack.seq + 1, flag::ack, 1000, 0, {}};
    const std::string hello = "GET / HTTP/1.1\r\n\r\n";
    ack.payload_length = uint16_t(hello.size());
    guarded.receive(client_ip, server_ip, ack, reinterpret_cast<const uint8_t *>(hello.data()),
                    now + 2000);
    EXPECT_EQ(guarded.connections(), 1u);
    EXPECT_TRUE(app.established);
    EXPECT_EQ(app.received, hello);
    ASSERT_NE(app.connection, nullptr);
    EXPECT_EQ(app.connection->info().peer_mss, 1460);
    EXPECT_EQ(app.connection->info().snd_shift, 0);
    EXPECT_EQ(guarded.counters().syn_cookies_accepted, 1u);

    // Two periods later, a cookie is stale.
    TcpSegment late = ack;
    late.header.source_port = 40002;
    guarded.receive(client_ip, server_ip, late, nullptr, now + 200'000'000);
    EXPECT_EQ(guarded.counters().syn_cookies_refused, 2u);
}

// Opens a connection from `ep` to the fixture's server and closes it from
// `ep`'s side, which keeps TIME-WAIT; returns its local port.
uint16_t open_and_close(TcpEndpoint &ep, TcpEndpoint &server, Outbox &ep_out, Outbox &server_out,
                        App &app, uint64_t &now) {
    app.now = &now;
    app.close_when_finished = false;
    app.connection = ep.connect(client_ip, server_ip, 80, app, now);
    if (!app.connection)
        return 0;
    const uint16_t port = app.connection->endpoints().local_port;
    for (int i = 0; i < 50; ++i) {
        while (!ep_out.packets.empty()) {
            deliver(server, ep_out.packets.front(), now += 10);
            ep_out.packets.pop_front();
        }
        while (!server_out.packets.empty()) {
            deliver(ep, server_out.packets.front(), now += 10);
            server_out.packets.pop_front();
        }
        if (i == 5)
            app.connection->shutdown(now);
    }
    return port;
}

TEST_F(TcpEndpointTest, TimeWaitAnswersALostFinYieldsToANewSynAndIsBounded) {
    TcpEndpoint bounded(settings(), {16, 16, 2}, {40000, 40009}, client_out, 4);
    App server_app;
    listen_with(server_app);
    // Three connections, each closed by the client first.
    std::vector<App> apps(3);
    for (App &app : apps) {
        ASSERT_NE(open_and_close(bounded, server, client_out, server_out, app, now), 0);
        EXPECT_EQ(app.closed, CloseReason::normal);
    }
    EXPECT_EQ(bounded.time_wait_entries(), 2u);
    EXPECT_EQ(bounded.counters().time_wait_evicted, 1u);

    // The server lost our last ACK and sends its FIN again: the same ACK.
    TcpSegment fin;
    fin.header.source_port = 80;
    fin.header.destination_port = 40002;
    fin.header.flags = flag::fin | flag::ack;
    fin.header.seq = 1;  // whatever: TIME-WAIT answers with what it knows
    bounded.receive(server_ip, client_ip, fin, nullptr, now);
    ASSERT_EQ(client_out.packets.size(), 1u);
    EXPECT_EQ(client_out.packets[0].header.flags, flag::ack);
    client_out.packets.clear();
    // A RST does not cut it short (RFC 1337).
    fin.header.flags = flag::rst;
    bounded.receive(server_ip, client_ip, fin, nullptr, now);
    EXPECT_EQ(bounded.time_wait_entries(), 2u);
}

TEST_F(TcpEndpointTest, LocalPortsComeFromTheSliceUntilItRunsOut) {
    TcpEndpoint small(settings(), {16, 16, 16}, {50000, 50002}, client_out, 5);
    std::vector<App> apps(4);
    std::vector<uint16_t> ports;
    for (size_t i = 0; i < 3; ++i) {
        Connection *c = small.connect(client_ip, server_ip, 80, apps[i], now);
        ASSERT_NE(c, nullptr);
        ports.push_back(c->endpoints().local_port);
    }
    std::sort(ports.begin(), ports.end());
    EXPECT_EQ(ports, (std::vector<uint16_t>{50000, 50001, 50002}));
    EXPECT_EQ(small.connect(client_ip, server_ip, 80, apps[3], now), nullptr);
    // Another remote port is another tuple: the ports serve again.
    EXPECT_NE(small.connect(client_ip, server_ip, 443, apps[3], now), nullptr);
}

TEST_F(TcpEndpointTest, ConnectionsBeyondTheLimitAreRefused) {
    TcpEndpoint full(settings(), {1, 16, 16}, {}, server_out, 6);
    App app;
    full.listen(server_ip, 80, [&app](Connection &, const FourTuple &) { return &app; });
    TcpSegment syn;
    syn.header.destination_port = 80;
    syn.header.flags = flag::syn;
    syn.header.source_port = 1;
    full.receive(client_ip, server_ip, syn, nullptr, now);
    EXPECT_EQ(full.connections(), 1u);
    syn.header.source_port = 2;
    full.receive(client_ip, server_ip, syn, nullptr, now);
    EXPECT_EQ(full.connections(), 1u);
    EXPECT_EQ(server_out.packets.back().header.flags, flag::rst | flag::ack);
    EXPECT_EQ(full.counters().refused_full, 1u);
}


// ------------------------------------------------------- the timer wheel

constexpr uint64_t tick = TimerWheel::tick_us;

// What the endpoint's old scan said: the earliest timer of the connections
// still open.
uint64_t scan_next_timer(const std::vector<App> &apps) {
    uint64_t next = 0;
    for (const App &app : apps) {
        if (app.closed != CloseReason::none || !app.connection)
            continue;
        const uint64_t at = app.connection->next_timer_us();
        if (at && (!next || at < next))
            next = at;
    }
    return next;
}

TEST_F(TcpEndpointTest, TheWheelFiresManyTimersWithinATickOfTheScan) {
    // 1000 connections to nobody, opened at scattered times: their SYNs go
    // again with RFC 6298's backoff until they give up.
    Settings s = settings();
    s.max_syn_retransmissions = 3;
    TcpEndpoint ep(s, {2048, 16, 16}, {20000, 29999}, client_out, 9);
    std::vector<App> apps(1000);
    std::mt19937_64 random(3);
    for (App &app : apps) {
        now += random() % 800;  // all opened within one RTO
        app.connection = ep.connect(client_ip, server_ip, 80, app, now);
        ASSERT_NE(app.connection, nullptr);
    }
    const uint64_t sent_before = client_out.packets.size();
    size_t checks = 0;
    while (ep.connections() > 0) {
        const uint64_t oracle = scan_next_timer(apps);
        const uint64_t next = ep.next_timer_us();
        ASSERT_NE(oracle, 0u);
        // A tick boundary, at or after the earliest deadline, before the next tick.
        ASSERT_GE(next, oracle);
        ASSERT_LT(next, oracle + tick);
        EXPECT_EQ(next % tick, 0u);
        // Half the time, a look at some moment before it: nothing fires.
        if (random() % 2 && next > now + 1) {
            const uint64_t fired = ep.counters().timer_wheel_fired;
            now += random() % (next - now);
            ep.on_timer(now);
            ASSERT_EQ(ep.counters().timer_wheel_fired, fired);
        }
        now = next;
        ep.on_timer(now);
        // Nothing left overdue.
        const uint64_t after = scan_next_timer(apps);
        ASSERT_TRUE(after == 0 || after > now) << after << " " << now;
        ++checks;
    }
    EXPECT_GT(checks, 100u);
    // Each connection: a SYN and 3 retransmissions, then it timed out.
    EXPECT_EQ(client_out.packets.size() - sent_before, 3u * apps.size());
    for (const App &app : apps)
        EXPECT_EQ(app.closed, CloseReason::timed_out);
    EXPECT_EQ(ep.counters().closed, apps.size());
    EXPECT_EQ(ep.counters().timer_wheel_fired, 4u * apps.size());
    EXPECT_EQ(ep.next_timer_us(), 0u);
}

TEST_F(TcpEndpointTest, TheWheelHearsOfDeadlinesMovedEarlierAndLater) {
    App server_app, client_app;
    listen_with(server_app);
    Connection *c = connect_client(client_app);
    ASSERT_NE(c, nullptr);
    run(now + 100'000);
    ASSERT_TRUE(client_app.established);
    EXPECT_EQ(c->next_timer_us(), 0u);

    // Earlier: the layer above sends, outside any of the endpoint's calls;
    // the segment going out is enough for the wheel to see the timer.
    const uint8_t a = 'a';
    c->send(&a, 1, now);
    const uint64_t first_deadline = c->next_timer_us();
    ASSERT_GT(first_deadline, now);
    EXPECT_GE(client.next_timer_us(), first_deadline);
    EXPECT_LT(client.next_timer_us(), first_deadline + tick);
    client.on_timer(now);  // the worker's next turn: filed in the wheel
    EXPECT_GE(client.next_timer_us(), first_deadline);
    EXPECT_LT(client.next_timer_us(), first_deadline + tick);

    // The server's delayed ACK comes 40 ms later and disarms the timer;
    // more data arms it again, later than where the wheel has it.
    deliver(server, client_out.packets.front(), now += 10);
    client_out.packets.clear();
    now = server.next_timer_us();
    server.on_timer(now);
    ASSERT_EQ(server_out.packets.size(), 1u);
    deliver(client, server_out.packets.front(), now += 10);
    server_out.packets.clear();
    c->send(&a, 1, now);
    client_out.packets.clear();
    const uint64_t second_deadline = c->next_timer_us();
    ASSERT_GT(second_deadline, first_deadline);

    // Its old tick comes: nothing is sent, it is filed at the new deadline.
    const TcpEndpoint::Counters before = client.counters();
    EXPECT_LE(client.next_timer_us(), first_deadline + tick);
    now = first_deadline + tick;
    client.on_timer(now);
    EXPECT_TRUE(client_out.packets.empty());
    EXPECT_EQ(client.counters().timer_wheel_refiled, before.timer_wheel_refiled + 1);
    EXPECT_EQ(client.counters().timer_wheel_fired, before.timer_wheel_fired);
    EXPECT_GE(client.next_timer_us(), second_deadline);
    EXPECT_LT(client.next_timer_us(), second_deadline + tick);
    now = client.next_timer_us();
    client.on_timer(now);
    ASSERT_EQ(client_out.packets.size(), 1u);  // the retransmission
    EXPECT_EQ(client_out.packets[0].payload, "a");
    EXPECT_EQ(client.counters().timer_wheel_fired, before.timer_wheel_fired + 1);
}

TEST_F(TcpEndpointTest, TouchShowsATimerArmedWithoutASegment) {
    App app;
    listen_with(app);
    app.close_when_finished = false;
    // A peer with a zero window: data waits, and the persist timer is armed
    // without a segment going out (RFC 9293 3.8.6.1).
    TcpSegment syn;
    syn.header = {5000, 80, 100, 0, flag::syn, 0, 0, {}};
    syn.header.options.mss = 1460;
    server.receive(client_ip, server_ip, syn, nullptr, now);
    ASSERT_EQ(server_out.packets.size(), 1u);
    const uint32_t iss = server_out.packets[0].header.seq;
    TcpSegment ack;
    ack.header = {5000, 80, 101, iss + 1, flag::ack, 0, 0, {}};
    server.receive(client_ip, server_ip, ack, nullptr, now += 20);
    ASSERT_NE(app.connection, nullptr);
    ASSERT_EQ(app.connection->state(), State::established);
    server_out.packets.clear();

    now += 1000;
    const uint8_t data[10] = {};
    app.connection->send(data, sizeof data, now);
    EXPECT_TRUE(server_out.packets.empty());
    const uint64_t persist = app.connection->next_timer_us();
    ASSERT_GT(persist, now);
    // The wheel has the SYN-ACK's old deadline at most, later than this.
    EXPECT_TRUE(server.next_timer_us() == 0 || server.next_timer_us() > persist + tick);
    server.touch(*app.connection);
    EXPECT_GE(server.next_timer_us(), persist);
    EXPECT_LT(server.next_timer_us(), persist + tick);
    now = server.next_timer_us();
    server.on_timer(now);
    ASSERT_EQ(server_out.packets.size(), 1u);  // the probe
    EXPECT_EQ(server_out.packets[0].payload.size(), 1u);

    // Someone else's connection is ignored.
    TcpEndpoint other(settings(), {4, 4, 4}, {}, client_out, 10);
    other.touch(*app.connection);
    EXPECT_EQ(other.next_timer_us(), 0u);
}

// The answer of `ep` to a bare ACK on the tuple of local port `port`:
// an ACK while TIME-WAIT lasts, a RST after.
uint8_t answer_to_ack(TcpEndpoint &ep, Outbox &out, uint16_t port, uint64_t now,
                      uint8_t flags = flag::ack) {
    TcpSegment segment;
    segment.header = {80, port, 1, 1, flags, 1000, 0, {}};
    out.packets.clear();
    ep.receive(server_ip, client_ip, segment, nullptr, now);
    const uint8_t answer = out.packets.empty() ? 0 : out.packets.back().header.flags;
    out.packets.clear();
    return answer;
}

TEST_F(TcpEndpointTest, TimeWaitEntriesLeaveInTheOrderOfTheirDeadlines) {
    TcpEndpoint ep(settings(), {16, 16, 4}, {41000, 41009}, client_out, 11);
    App server_app;
    listen_with(server_app);
    std::vector<App> apps(5);
    std::vector<uint16_t> ports;
    std::vector<uint64_t> closed_at;
    for (size_t i = 0; i < 4; ++i) {
        ports.push_back(open_and_close(ep, server, client_out, server_out, apps[i], now));
        ASSERT_EQ(apps[i].closed, CloseReason::normal);
        closed_at.push_back(now);
        now += 100'000;
    }
    ASSERT_EQ(ep.time_wait_entries(), 4u);
    const uint64_t wait = 2 * settings().msl_us;
    EXPECT_LE(ep.next_timer_us(), closed_at[0] + wait);
    EXPECT_GT(ep.next_timer_us(), closed_at[0] + wait - 1000);  // within the last 1 ms of hops

    // The first one's peer sends its FIN again: its wait starts over, last.
    const uint64_t restarted = now;
    EXPECT_EQ(answer_to_ack(ep, client_out, ports[0], now, flag::fin | flag::ack), flag::ack);

    // The others leave in turn, each at its deadline, without a scan.
    for (size_t i = 1; i < 4; ++i) {
        const uint64_t next = ep.next_timer_us();
        EXPECT_GT(next, closed_at[i] + wait - 1000);
        EXPECT_LE(next, closed_at[i] + wait);
        ep.on_timer(next - 1);
        EXPECT_EQ(ep.time_wait_entries(), 4 - i + 1);
        ep.on_timer(next);
        EXPECT_EQ(ep.time_wait_entries(), 4 - i);
        EXPECT_EQ(answer_to_ack(ep, client_out, ports[i], next), flag::rst);
        EXPECT_EQ(answer_to_ack(ep, client_out, ports[0], next), flag::ack);
    }
    EXPECT_EQ(ep.next_timer_us(), restarted + wait);
    ep.on_timer(restarted + wait);
    EXPECT_EQ(ep.time_wait_entries(), 0u);
    EXPECT_EQ(ep.next_timer_us(), 0u);
    EXPECT_EQ(ep.counters().time_wait_evicted, 0u);
}

TEST_F(TcpEndpointTest, AFullTimeWaitTableEvictsTheOldest) {
    TcpEndpoint ep(settings(), {16, 16, 3}, {42000, 42009}, client_out, 12);
    App server_app;
    listen_with(server_app);
    std::vector<App> apps(5);
    std::vector<uint16_t> ports;
    for (App &app : apps)
        ports.push_back(open_and_close(ep, server, client_out, server_out, app, now));
    EXPECT_EQ(ep.time_wait_entries(), 3u);
    EXPECT_EQ(ep.counters().time_wait_evicted, 2u);
    EXPECT_EQ(ep.counters().time_wait_entered, 5u);
    EXPECT_EQ(answer_to_ack(ep, client_out, ports[0], now), flag::rst);
    EXPECT_EQ(answer_to_ack(ep, client_out, ports[1], now), flag::rst);
    for (size_t i = 2; i < 5; ++i)
        EXPECT_EQ(answer_to_ack(ep, client_out, ports[i], now), flag::ack);

    // No TIME-WAIT table at all: connections still close.
    TcpEndpoint none(settings(), {16, 16, 0}, {43000, 43009}, client_out, 13);
    App app;
    open_and_close(none, server, client_out, server_out, app, now);
    EXPECT_EQ(app.closed, CloseReason::normal);
    EXPECT_EQ(none.time_wait_entries(), 0u);
    EXPECT_EQ(none.connections(), 0u);
}

TEST_F(TcpEndpointTest, AFullTableRefusesUntilAConnectionCloses) {
    TcpEndpoint full(settings(), {3, 16, 16}, {44000, 44099}, client_out, 14);
    std::vector<App> apps(4);
    for (size_t i = 0; i < 3; ++i) {
        apps[i].connection = full.connect(client_ip, server_ip, 80, apps[i], now);
        ASSERT_NE(apps[i].connection, nullptr);
    }
    EXPECT_EQ(full.connect(client_ip, server_ip, 80, apps[3], now), nullptr);
    EXPECT_EQ(full.counters().refused_full, 1u);
    EXPECT_EQ(full.connections(), 3u);
    // The layer above aborts one; its slot is free after the next timer run.
    apps[1].connection->abort(now);
    EXPECT_EQ(apps[1].closed, CloseReason::aborted);
    full.on_timer(now);
    EXPECT_EQ(full.connections(), 2u);
    EXPECT_EQ(full.counters().closed, 1u);
    EXPECT_NE(full.connect(client_ip, server_ip, 80, apps[3], now), nullptr);
    EXPECT_EQ(full.connections(), 3u);
}

TEST_F(TcpEndpointTest, ChurnKeepsLookupsRight) {
    // 48 slots (an index of 128 entries) and 400 tuples: runs of colliding
    // entries form and break up as connections come and go.
    TcpEndpoint ep(settings(), {48, 1000, 0}, {}, server_out, 15);
    App app;
    ep.listen(server_ip, 80, [&app](Connection &, const FourTuple &) { return &app; });
    std::mt19937_64 random(5);
    std::map<uint16_t, uint32_t> open;  // client port → its ISN + 1
    const auto tuple_of = [](uint16_t port) { return FourTuple{server_ip, 80, client_ip, port}; };
    for (int step = 0; step < 20000; ++step) {
        const uint16_t port = uint16_t(1000 + random() % 400);
        TcpSegment segment;
        segment.header.source_port = port;
        segment.header.destination_port = 80;
        if (open.count(port)) {
            // RFC 5961 3.2: a RST at exactly rcv_nxt closes it.
            segment.header.flags = flag::rst;
            segment.header.seq = open[port];
            ep.receive(client_ip, server_ip, segment, nullptr, now);
            open.erase(port);
        } else {
            segment.header.flags = flag::syn;
            segment.header.seq = uint32_t(random());
            server_out.packets.clear();
            ep.receive(client_ip, server_ip, segment, nullptr, now);
            if (open.size() < 48) {
                ASSERT_EQ(server_out.packets.size(), 1u);
                ASSERT_EQ(server_out.packets[0].header.flags, flag::syn | flag::ack);
                open[port] = segment.header.seq + 1;
            } else {
                ASSERT_EQ(server_out.packets[0].header.flags, flag::rst | flag::ack);
            }
        }
        ASSERT_EQ(ep.connections(), open.size());
        if (step % 97 != 0)
            continue;
        for (uint16_t p = 1000; p < 1400; ++p) {
            ASSERT_EQ(ep.probe_distance(tuple_of(p)) >= 0, open.count(p) == 1) << p;
        }
    }
    EXPECT_EQ(ep.counters().refused_full, ep.counters().resets_sent);
    EXPECT_GT(ep.counters().refused_full, 0u);
}

TEST_F(TcpEndpointTest, TheTablesHashIsKeyedByTheSecret) {
    TcpEndpoint a(settings(), {2048, 2048, 16}, {}, server_out, 21);
    TcpEndpoint b(settings(), {2048, 16, 16}, {}, server_out, 22);
    TcpEndpoint a_again(settings(), {16, 16, 16}, {}, server_out, 21);
    const FourTuple tuple{server_ip, 80, client_ip, 1234};
    EXPECT_NE(a.tuple_hash(tuple), b.tuple_hash(tuple));
    EXPECT_EQ(a.tuple_hash(tuple), a_again.tuple_hash(tuple));
    EXPECT_NE(a.tuple_hash(tuple), FourTupleHash{}(tuple));

    // 1000 tuples an attacker varies in one field: they spread, so that no
    // lookup walks far.
    App app;
    a.listen(server_ip, 80, [&app](Connection &, const FourTuple &) { return &app; });
    std::set<uint64_t> homes;
    long longest = 0;
    for (uint16_t port = 1; port <= 1000; ++port) {
        TcpSegment syn;
        syn.header.source_port = port;
        syn.header.destination_port = 80;
        syn.header.flags = flag::syn;
        a.receive(client_ip, server_ip, syn, nullptr, now);
        homes.insert(a.tuple_hash(tuple_of_port(port)) % 4096);
    }
    ASSERT_EQ(a.connections(), 1000u);
    for (uint16_t port = 1; port <= 1000; ++port)
        longest = std::max(longest, a.probe_distance(tuple_of_port(port)));
    EXPECT_GT(homes.size(), 800u);
    EXPECT_LT(longest, 24);
}

} // namespace
} // namespace sluice::tcp

namespace sluice {
namespace {

using tcp::TimerWheel;

// The wheel on its own against a sorted map of the same filings: the same
// ids come due by the same moments (each at the first tick at or after its
// deadline), and next_us() is the first tick of the earliest.
TEST(TimerWheel, AgreesWithASortedMap) {
    constexpr uint32_t ids = 500;
    TimerWheel wheel(ids);
    std::map<uint32_t, uint64_t> filed;  // id → deadline
    std::mt19937_64 random(11);
    uint64_t now = 5'000'000'000;  // a steady clock's microseconds
    std::vector<uint32_t> due;
    const auto tick_of = [](uint64_t at) { return (at + TimerWheel::tick_us - 1) / TimerWheel::tick_us; };
    for (int step = 0; step < 20000; ++step) {
        const uint32_t id = uint32_t(random() % ids);
        switch (random() % 4) {
        case 0:
        case 1: {
            // Near (delayed ACKs, RTOs) and far (beyond a turn of the wheel).
            const uint64_t span = random() % 3 ? 300'000 : 30'000'000;
            const uint64_t at = now + 1 + random() % span;
            wheel.file(id, at);
            filed[id] = at;
            break;
        }
        case 2:
            wheel.remove(id);
            filed.erase(id);
            break;
        case 3: {
            now += random() % 20'000;
            due.clear();
            wheel.expire(now, due);
            std::set<uint32_t> expected;
            for (const auto &[i, at] : filed)
                if (tick_of(at) <= now / TimerWheel::tick_us)
                    expected.insert(i);
            ASSERT_EQ(std::set<uint32_t>(due.begin(), due.end()), expected) << step;
            for (const uint32_t i : expected)
                filed.erase(i);
            break;
        }
        }
        ASSERT_EQ(wheel.size(), filed.size());
        uint64_t earliest = 0;
        for (const auto &[i, at] : filed)
            if (!earliest || at < earliest)
                earliest = at;
        ASSERT_EQ(wheel.next_us(), earliest ? tick_of(earliest) * TimerWheel::tick_us : 0) << step;
    }
}

// The reference vector of the SipHash paper (appendix A): key 00..0f,
// message 00..0e.
TEST(SipHash, MatchesThePapersVector) {
    uint8_t key_bytes[16], message[15];
    for (int i = 0; i < 16; ++i)
        key_bytes[i] = uint8_t(i);
    for (int i = 0; i < 15; ++i)
        message[i] = uint8_t(i);
    SipKey key;
    std::memcpy(&key.k0, key_bytes, 8);
    std::memcpy(&key.k1, key_bytes + 8, 8);
    EXPECT_EQ(siphash24(key, message, sizeof message), 0xa129ca6149be45e5ull);
    EXPECT_NE(siphash24(key, message, 14), siphash24(key, message, 15));
}

} // namespace
} // namespace sluice
