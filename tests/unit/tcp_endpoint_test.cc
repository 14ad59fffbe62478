// A worker's userspace TCP end to end, without a NIC: two endpoints joined
// by an in-memory wire that can lose, reorder and duplicate segments. A
// megabyte crosses intact with and without a lossy wire, both sides close
// and leave nothing behind but one TIME-WAIT entry; SYN cookies take over
// when the backlog is full and a forged cookie is reset; segments for no
// connection are reset; TIME-WAIT answers a lost FIN, yields to a new SYN
// and stays within its bound; local ports come from the worker's slice.
#include "dataplane/tcp_endpoint.h"
#include "dataplane/siphash.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

namespace sluice::tcp {
namespace {

IpAddress ip(const char *text) { return *parse_ip_address(text); }

const IpAddress client_ip = ip("198.18.0.10");
const IpAddress server_ip = ip("198.18.10.1");

struct Packet {
    FourTuple tuple;  // as the sender sees it
    TcpHeader header;
    std::string payload;
};

// Collects what an endpoint sends.
struct Outbox : PacketSink {
    std::deque<Packet> packets;
    void send_packet(const FourTuple &tuple, const TcpHeader &header,
                     const Payload &payload) override {
        std::string bytes(reinterpret_cast<const char *>(payload.first), payload.first_length);
        bytes.append(reinterpret_cast<const char *>(payload.second), payload.second_length);
        packets.push_back({tuple, header, bytes});
    }
};

void deliver(TcpEndpoint &to, const Packet &packet, uint64_t now) {
    TcpSegment segment;
    segment.header = packet.header;
    segment.header_length = 20;
    segment.payload_length = uint16_t(packet.payload.size());
    to.receive(packet.tuple.local, packet.tuple.remote, segment,
               reinterpret_cast<const uint8_t *>(packet.payload.data()), now);
}

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
    client_app.now = &now;
    client_app.close_when_finished = false;
    Connection *connection = client.connect(client_ip, server_ip, 80, client_app, now);
    ASSERT_NE(connection, nullptr);
    client_app.connection = connection;
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
    client_app.now = &now;
    client_app.close_when_finished = false;
    Connection *connection = client.connect(client_ip, server_ip, 80, client_app, now);
    ASSERT_NE(connection, nullptr);
    client_app.connection = connection;
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
    client_app.now = &now;
    client_app.close_when_finished = false;
    Connection *connection = client.connect(client_ip, server_ip, 80, client_app, now);
    ASSERT_NE(connection, nullptr);
    client_app.connection = connection;
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

TEST_F(TcpEndpointTest, TimeWaitAnswersALostFinYieldsToANewSynAndIsBounded) {
    TcpEndpoint bounded(settings(), {16, 16, 2}, {40000, 40009}, client_out, 4);
    App server_app;
    listen_with(server_app);
    // Three connections, each closed by the client first.
    std::vector<App> apps(3);
    for (App &app : apps) {
        app.now = &now;
        app.close_when_finished = false;
        app.connection = bounded.connect(client_ip, server_ip, 80, app, now);
        ASSERT_NE(app.connection, nullptr);
        // Run the two endpoints: `bounded` sends through client_out.
        for (int i = 0; i < 50; ++i) {
            while (!client_out.packets.empty()) {
                deliver(server, client_out.packets.front(), now += 10);
                client_out.packets.pop_front();
            }
            while (!server_out.packets.empty()) {
                deliver(bounded, server_out.packets.front(), now += 10);
                server_out.packets.pop_front();
            }
            if (i == 5)
                app.connection->shutdown(now);
        }
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

} // namespace
} // namespace sluice::tcp

namespace sluice {
namespace {

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
