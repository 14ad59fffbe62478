// The userspace TCP talking to itself on one core: two endpoints (a
// client and a server) joined by an in-memory wire of bytes. Every segment
// is written out with write_header, its payload copied behind it and its
// checksum computed, then verified and parsed on the other side, as the
// worker does with mbufs; the Ethernet/IP layers, mbufs and ports are not
// in it: this is the TCP's own cost. bench_proxy (proxy_bench.cc) runs the
// worker's TCP proxy over net_ring ports. Prints, per case,
//   case=<name> conns_per_s=<float> gbit_per_s=<float>
//   connections   open, one request and one answer of 100 bytes, close, over and over
//   bulk          one connection moving data from client to server, as fast as it goes
//   connections_10k_idle  as `connections`, with 10,000 established connections
//                 sitting idle in both endpoints: what the timers cost a
//                 busy worker that also holds many quiet connections
// Usage: bench_tcp [SECONDS_PER_CASE]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "dataplane/tcp_endpoint.h"
#include "dataplane/tcp_segment.h"

namespace sluice::tcp {
namespace {

using Clock = std::chrono::steady_clock;

const IpAddress client_ip = *parse_ip_address("198.18.0.10");
const IpAddress server_ip = *parse_ip_address("198.18.10.1");

// One direction of the wire: whole segments as bytes, with their tuple.
struct Wire : PacketSink {
    struct Frame {
        FourTuple tuple;
        size_t length = 0;
        uint8_t bytes[60 + 9000];
    };
    std::vector<Frame> frames;
    size_t head = 0, tail = 0;
    uint64_t segments = 0;

    Wire() : frames(4096) {}

    void send_packet(const FourTuple &tuple, const TcpHeader &header,
                     const Payload &payload) override {
        Frame &frame = frames[tail % frames.size()];
        if (tail - head == frames.size()) {
            std::fprintf(stderr, "bench_tcp: the wire is full\n");
            std::exit(1);
        }
        ++tail;
        ++segments;
        frame.tuple = tuple;
        const size_t header_length = write_header(header, frame.bytes);
        std::memcpy(frame.bytes + header_length, payload.first, payload.first_length);
        std::memcpy(frame.bytes + header_length + payload.first_length, payload.second,
                    payload.second_length);
        frame.length = header_length + payload.length();
        const uint16_t sum = segment_checksum(tuple.local.bytes.data(), tuple.remote.bytes.data(),
                                              false, frame.bytes, frame.length);
        std::memcpy(frame.bytes + 16, &sum, 2);
    }

    // Hands every frame to `to`, as its worker would after receiving it.
    bool deliver(TcpEndpoint &to, uint64_t now) {
        bool moved = false;
        while (head != tail) {
            Frame &frame = frames[head % frames.size()];
            ++head;
            moved = true;
            if (segment_checksum(frame.tuple.local.bytes.data(), frame.tuple.remote.bytes.data(),
                                 false, frame.bytes, frame.length) != 0)
                std::abort();
            TcpSegment segment;
            if (parse_segment(frame.bytes, frame.length, segment) != SegmentError::none)
                std::abort();
            to.receive(frame.tuple.local, frame.tuple.remote, segment, frame.bytes, now);
        }
        return moved;
    }
};

uint64_t now_us() {
    return uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                        Clock::now().time_since_epoch())
                        .count());
}

Settings settings(uint32_t buffer = 1 << 20) {
    Settings s;
    s.mss = 8960;  // a jumbo-frame lab: the figure is the stack's, not the MTU's
    s.send_buffer = buffer;
    s.receive_buffer = buffer;
    s.window_shift = 7;
    return s;
}

// A server that answers each request with as many bytes and closes when the
// client does; a client that sends a request, reads the answer and closes.
struct ServerApp : ConnectionEvents {
    Connection *connection = nullptr;
    uint64_t *clock = nullptr;
    // What the send buffer does not take waits in the connection.
    size_t on_data(const uint8_t *data, size_t length) override {
        return connection->send(data, length, *clock);
    }
    void on_send_space(size_t) override { connection->resume_receiving(*clock); }
    void on_peer_finished() override { connection->shutdown(*clock); }
};

struct ClientApp : ConnectionEvents {
    Connection *connection = nullptr;
    uint64_t *clock = nullptr;
    size_t answered = 0;
    bool done = false;
    uint64_t received = 0;
    void on_established() override {
        static const std::string request(100, 'q');
        connection->send(reinterpret_cast<const uint8_t *>(request.data()), request.size(),
                         *clock);
    }
    size_t on_data(const uint8_t *, size_t length) override {
        received += length;
        answered += length;
        if (answered >= 100)
            connection->shutdown(*clock);
        return length;
    }
    void on_closed(CloseReason) override { done = true; }
};

struct Pair {
    Wire to_server, to_client;
    // TIME-WAIT entries beyond 4096 make room (the oldest go), so that the
    // client's ports turn over as they do on a busy host.
    EndpointLimits limits{65536, 65536, 4096};
    TcpEndpoint client, server;
    uint64_t clock = now_us();
    std::deque<ServerApp> server_apps;

    explicit Pair(uint32_t buffer = 1 << 20)
        : client(settings(buffer), limits, {1024, 65535}, to_server, 11),
          server(settings(buffer), limits, {}, to_client, 12) {
        server.listen(server_ip, 80, [this](Connection &connection, const FourTuple &) {
            if (server_apps.size() > 1024)
                server_apps.pop_front();  // long closed
            server_apps.push_back({});
            server_apps.back().connection = &connection;
            server_apps.back().clock = &clock;
            return &server_apps.back();
        });
    }

    // Until the wire is quiet; timers as they fall due.
    void run() {
        for (;;) {
            clock = now_us();
            const bool a = to_server.deliver(server, clock);
            const bool b = to_client.deliver(client, clock);
            if (!a && !b)
                break;
        }
        const uint64_t due = std::min(client.next_timer_us() ? client.next_timer_us() : ~0ull,
                                      server.next_timer_us() ? server.next_timer_us() : ~0ull);
        if (due <= clock) {
            client.on_timer(clock);
            server.on_timer(clock);
        }
    }
};

// Opens `count` connections to port 82, whose server says nothing, and
// leaves them established and idle.
void open_idle(Pair &pair, size_t count, std::deque<ConnectionEvents> &apps) {
    pair.server.listen(server_ip, 82, [&apps](Connection &, const FourTuple &) {
        apps.emplace_back();
        return &apps.back();
    });
    for (size_t i = 0; i < count; ++i) {
        apps.emplace_back();
        if (!pair.client.connect(client_ip, server_ip, 82, apps.back(), pair.clock)) {
            std::fprintf(stderr, "bench_tcp: no room for idle connection %zu\n", i);
            std::exit(1);
        }
        if (i % 256 == 255)
            pair.run();
    }
    pair.run();
    if (pair.client.connections() != count || pair.server.connections() != count) {
        std::fprintf(stderr, "bench_tcp: %zu/%zu idle connections open, not %zu\n",
                     pair.client.connections(), pair.server.connections(), count);
        std::exit(1);
    }
}

void connections_case(double seconds, size_t idle = 0) {
    // 64 KiB buffers with idle connections: 20,000 of 1 MiB would be 40 GiB
    // of address space, untouched but mapped one by one.
    Pair pair(idle ? 64 * 1024 : 1 << 20);
    std::deque<ConnectionEvents> idle_apps;
    open_idle(pair, idle, idle_apps);
    uint64_t opened = 0, bytes = 0;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
        for (int i = 0; i < 64; ++i) {
            ClientApp app;
            app.clock = &pair.clock;
            app.connection =
                pair.client.connect(client_ip, server_ip, 80, app, pair.clock);
            if (!app.connection) {
                std::fprintf(stderr, "bench_tcp: no local port free\n");
                std::exit(1);
            }
            while (!app.done)
                pair.run();
            bytes += app.received + 100;
            ++opened;
        }
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("case=%s conns_per_s=%.0f gbit_per_s=%.3f\n",
                idle ? "connections_10k_idle" : "connections", opened / elapsed,
                bytes * 8 / elapsed / 1e9);
}

// Counts what arrives; says nothing back.
struct CountingSink : ConnectionEvents {
    uint64_t bytes = 0;
    size_t on_data(const uint8_t *, size_t length) override {
        bytes += length;
        return length;
    }
};

void bulk_case(double seconds) {
    Pair pair;
    CountingSink sink;
    pair.server.listen(server_ip, 81, [&sink](Connection &, const FourTuple &) { return &sink; });
    ConnectionEvents quiet;
    Connection *connection = pair.client.connect(client_ip, server_ip, 81, quiet, pair.clock);
    pair.run();
    std::vector<uint8_t> chunk(1 << 16, 'b');
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
        connection->send(chunk.data(), chunk.size(), pair.clock);
        pair.run();
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("case=bulk conns_per_s=0 gbit_per_s=%.3f\n", sink.bytes * 8 / elapsed / 1e9);
}

} // namespace
} // namespace sluice::tcp

int main(int argc, char **argv) {
    const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
    sluice::tcp::connections_case(seconds);
    sluice::tcp::bulk_case(seconds);
    sluice::tcp::connections_case(seconds, 10'000);
    return 0;
}
