// The worker's TCP proxy on one core, talking to the bench's own TCP over a
// pair of net_ring ports: a client endpoint on the client port, the real
// gateway worker (poll_worker: rx_burst, parse, balance to the stack, the
// proxy's two connections, buffered tx_burst) and a backend endpoint on the
// backend port. The bench's endpoints write their segments as Ethernet frames
// into mbufs on the ports' RX rings, and read what the worker sends from the
// TX rings, verifying each frame's TCP checksum as a peer would. Prints, per
// case,
//   case=<name> conns_per_s=<float> gbit_per_s=<float>
//   proxy_connections           open to the VIP, a 100-byte request, a 100-byte
//                               answer, the backend closes, then the client;
//                               64 in flight; over the wall time of all three
//                               stacks on the core
//   proxy_connections_gateway   the same run over the TSC time spent in
//                               poll_worker/flush_worker alone
//   proxy_bulk                  one connection moving data client -> backend
//                               as fast as it goes, payload Gbit/s over the
//                               wall time
//   proxy_bulk_gateway          the same over the worker's time alone
// A checksum or parse failure, a reset, a drop by the worker, wrong bytes or
// a second without progress end the run with status 1.
// Usage: bench_proxy [SECONDS_PER_CASE]
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <sched.h>
#include <unistd.h>

#include <array>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dataplane/byte_order.h"
#include "dataplane/packet_parse.h"
#include "dataplane/port.h"
#include "tests/fixtures/bench_ports.h"
#include "dataplane/published_snapshot.h"
#include "dataplane/tcp_frame.h"
#include "dataplane/tcp_segment.h"
#include "dataplane/worker.h"
#include "lb/l4_balancer.h"
#include "lb/maglev.h"

namespace sluice::bench {
namespace {

using tcp::CloseReason;
using tcp::Connection;
using tcp::ConnectionEvents;
using tcp::FourTuple;

constexpr unsigned mbufs = 32768;
constexpr size_t connections_in_flight = 64;
constexpr size_t message_size = 100;
constexpr uint64_t stall_limit_us = 1'000'000;  // no progress for this long: fail

IpAddress ip(const char *text) { return *parse_ip_address(text); }
MacAddress mac(const char *text) { return *parse_mac_address(text); }

const IpAddress client_ip = ip("198.18.0.10");
const IpAddress vip = ip("198.18.10.8");
const IpAddress proxy_local_ip = ip("198.18.1.104");
const char *const backend_addresses[] = {"198.18.1.11", "198.18.1.12", "198.18.1.13"};
const MacAddress client_mac = mac("02:00:00:00:00:02");
const MacAddress backend_mac = mac("02:00:00:00:02:0b");
const MacAddress gateway_client_mac = mac("02:00:00:00:01:00");
const MacAddress gateway_backend_mac = mac("02:00:00:00:01:01");

[[noreturn]] void fail(const char *format, ...) {
    std::va_list args;
    va_start(args, format);
    std::fputs("bench_proxy: ", stderr);
    std::vfprintf(stderr, format, args);
    std::fputc('\n', stderr);
    va_end(args);
    std::exit(1);
}

// The microsecond clock of the worker (rte_rdtsc() / tsc_per_us), which the
// bench's endpoints must share: their timers and the worker's run on one time.
struct Clock {
    uint64_t tsc_per_us = 1;
    uint64_t now_us() const { return rte_rdtsc() / tsc_per_us; }
};

// One of the bench's hosts: a TCP endpoint whose segments become frames on
// the RX ring of the gateway port it is wired to.
class Host final : public tcp::PacketSink {
public:
    Host(const char *name, rte_mempool *pool, BenchPort &port, const MacAddress &own,
         const MacAddress &gateway, tcp::LocalPorts ports, uint64_t secret)
        : name_(name), pool_(pool), port_(port), own_(own), gateway_(gateway),
          endpoint(settings(), limits(), ports, *this, secret) {}

    void send_packet(const FourTuple &tuple, const tcp::TcpHeader &header,
                     const tcp::Payload &payload) override {
        rte_mbuf *packet = rte_pktmbuf_alloc(pool_);
        if (!packet)
            fail("%s: the mempool is empty", name_);
        uint8_t *frame = rte_pktmbuf_mtod(packet, uint8_t *);
        std::memcpy(frame, gateway_.bytes.data(), 6);
        std::memcpy(frame + 6, own_.bytes.data(), 6);
        write_be16(frame + 12, 0x0800);
        const size_t length = 14 + tcp::write_ip_segment(tuple, header, payload, ip_id_++,
                                                         frame + 14);
        rte_pktmbuf_data_len(packet) = uint16_t(length);
        rte_pktmbuf_pkt_len(packet) = uint32_t(length);
        if (rte_ring_sp_enqueue(port_.rx, packet) != 0)
            fail("%s: the gateway's RX ring is full", name_);
    }

    // Takes what the worker sent out of this host's port, as this host's NIC
    // and kernel would: a frame to its MAC, a good TCP checksum, a segment
    // that parses.
    unsigned receive_from_gateway(uint64_t now_us) {
        rte_mbuf *packets[64];
        const unsigned taken =
            rte_ring_sc_dequeue_burst(port_.tx, reinterpret_cast<void **>(packets), 64, nullptr);
        for (unsigned i = 0; i < taken; ++i) {
            rte_mbuf *packet = packets[i];
            const uint8_t *frame = rte_pktmbuf_mtod(packet, const uint8_t *);
            ParsedPacket parsed;
            if (parse_packet(frame, rte_pktmbuf_data_len(packet), parsed) != DropReason::none ||
                parsed.l4_protocol != 6 || parsed.network != NetworkLayer::ipv4)
                fail("%s: a frame from the gateway does not parse as TCP/IPv4", name_);
            if (std::memcmp(frame, own_.bytes.data(), 6) != 0 ||
                std::memcmp(frame + 6, gateway_.bytes.data(), 6) != 0)
                fail("%s: a frame from the gateway has the wrong MACs", name_);
            const uint8_t *ip_header = frame + parsed.l3_offset;
            const uint8_t *bytes = frame + parsed.l4_offset;
            const size_t length = parsed.l3_payload_length();
            if (tcp::segment_checksum(ip_header + 12, ip_header + 16, false, bytes, length) != 0)
                fail("%s: a segment from the gateway has a bad TCP checksum", name_);
            tcp::TcpSegment segment;
            if (tcp::parse_segment(bytes, length, segment) != tcp::SegmentError::none)
                fail("%s: a segment from the gateway does not parse", name_);
            uint32_t source_be, destination_be;
            std::memcpy(&source_be, ip_header + 12, 4);
            std::memcpy(&destination_be, ip_header + 16, 4);
            endpoint.receive(IpAddress::from_v4_be(source_be),
                             IpAddress::from_v4_be(destination_be), segment, bytes, now_us);
            rte_pktmbuf_free(packet);
        }
        return taken;
    }

    void run_timers(uint64_t now_us) {
        const uint64_t due = endpoint.next_timer_us();
        if (due && due <= now_us)
            endpoint.on_timer(now_us);
    }

private:
    static tcp::Settings settings() { return {}; }  // what the gateway runs: 1460 MSS
    static tcp::EndpointLimits limits() {
        // TIME-WAIT entries beyond 4096 make room (the oldest go), so that
        // ports turn over as they do on a busy host.
        return {65536, 65536, 4096};
    }

    const char *name_;
    rte_mempool *pool_;
    BenchPort &port_;
    MacAddress own_, gateway_;
    uint16_t ip_id_ = 0;

public:
    tcp::TcpEndpoint endpoint;
};

std::unique_ptr<lb::Snapshot> proxy_snapshot() {
    lb::Service service;
    service.name = "proxy";
    service.vip = vip;
    service.protocol = 6;
    service.port_be = port_to_network(80);
    service.mode = lb::ForwardingMode::proxy;
    service.local_addresses = {proxy_local_ip};
    std::vector<lb::MaglevBackend> identities;
    for (const char *address : backend_addresses) {
        service.backends.push_back(
            {ip(address), port_to_network(80), 1, lb::BackendSlot(service.backends.size())});
        identities.push_back({address, 1});
    }
    service.maglev = lb::MaglevTable(identities, 65537, 1);
    std::vector<lb::Service> services;
    services.push_back(std::move(service));

    std::vector<lb::EgressPort> ports(2);
    ports[0].mac = gateway_client_mac;
    ports[0].ipv4 = ip("198.18.0.1");
    ports[0].has_ipv4 = true;
    ports[1].mac = gateway_backend_mac;
    ports[1].ipv4 = ip("198.18.1.1");
    ports[1].has_ipv4 = true;
    std::vector<std::pair<IpAddress, lb::NextHop>> hops;
    for (const char *address : backend_addresses) {
        lb::NextHop hop;
        hop.egress_port = 1;
        hop.resolved = true;
        hop.mac = backend_mac;
        hops.emplace_back(ip(address), hop);
    }
    return std::make_unique<lb::Snapshot>(std::move(services), std::move(ports), std::move(hops),
                                          1, 1);
}

// The gateway: a worker like sluiced's on the two ports, with its TCP.
struct Gateway {
    dataplane::PublishedSnapshot published{1};
    std::unique_ptr<dataplane::WorkerContext> worker = std::make_unique<dataplane::WorkerContext>();
    LocalAddresses no_local;
    uint64_t busy_tsc = 0;  // inside poll_worker and flush_worker

    Gateway(rte_mempool *pool, const BenchPort &client_port, const BenchPort &backend_port) {
        published.publish(proxy_snapshot());
        published.online(0);
        worker->settings = {32, 100, 0};
        for (const BenchPort *port : {&client_port, &backend_port}) {
            dataplane::WorkerPort view;
            view.port_id = port->port_id;
            view.local = &no_local;
            worker->ports.push_back(view);
        }
        auto balancing = std::make_unique<dataplane::WorkerBalancing>();
        balancing->snapshot = &published;
        balancing->flows = std::make_unique<lb::FlowTable>(65536, lb::HashKey::random(),
                                                           lb::FlowTimeouts{});
        balancing->balancer =
            std::make_unique<lb::L4Balancer>(*balancing->flows, lb::SnatPortRange{1024, 49999});
        worker->balancing = std::move(balancing);
        dataplane::WorkerTcpSettings settings;
        settings.limits = {65536, 1024, 4096};
        settings.ports = {50000, 65535};
        settings.secret = 0x5eed5eed5eed5eedull;
        worker->tcp = std::make_unique<dataplane::WorkerTcp>(settings, *worker, pool);
        dataplane::prepare_worker(*worker);
    }

    void poll() {
        const uint64_t start = rte_rdtsc();
        dataplane::poll_worker(*worker);
        dataplane::flush_worker(*worker);
        busy_tsc += rte_rdtsc() - start;
    }

    // A drop is a failure here: nothing on this wire is malformed or lost.
    void check_drops() const {
        for (size_t i = 0; i < drop_reason_count; ++i)
            if (const uint64_t n = worker->counters.drops[i].read())
                fail("the gateway dropped %lu packets: %s", (unsigned long)n,
                     drop_reason_name(DropReason(i)));
        if (const uint64_t resets = worker->tcp->proxy_counters().resets.read())
            fail("the proxy reset %lu sessions", (unsigned long)resets);
    }
};

// The three stacks on one core: the gateway, then each host with what the
// gateway sent it, then the hosts' due timers.
struct Lab {
    Clock clock;
    Gateway gateway;
    Host client, backend;
    uint64_t now = 0;

    Lab(rte_mempool *pool, BenchPort &client_port, BenchPort &backend_port)
        : gateway(pool, client_port, backend_port),
          client("client", pool, client_port, client_mac, gateway_client_mac, {20000, 60000}, 11),
          backend("backend", pool, backend_port, backend_mac, gateway_backend_mac, {}, 12) {
        clock.tsc_per_us = gateway.worker->tsc_per_us;
        now = clock.now_us();
    }

    void step() {
        gateway.poll();
        now = clock.now_us();
        client.receive_from_gateway(now);
        backend.receive_from_gateway(now);
        client.run_timers(now);
        backend.run_timers(now);
    }

    // No stack sent a reset, and the gateway dropped nothing.
    void check_clean() const {
        gateway.check_drops();
        const std::pair<const char *, const tcp::TcpEndpoint *> stacks[] = {
            {"client", &client.endpoint},
            {"gateway", &gateway.worker->tcp->endpoint()},
            {"backend", &backend.endpoint}};
        for (const auto &[name, stack] : stacks)
            if (const uint64_t resets = stack->counters().resets_sent)
                fail("the %s sent %lu resets", name, (unsigned long)resets);
    }
};

// The 100 bytes of a request, and of an answer.
std::string message(char first) {
    std::string text(message_size, '\0');
    for (size_t i = 0; i < text.size(); ++i)
        text[i] = char(first + i % 23);
    return text;
}
const std::string request = message('a');
const std::string answer = message('A');

// The backend's application: reads the request, answers it and closes.
struct AnsweringApp : ConnectionEvents {
    Connection *connection = nullptr;
    const uint64_t *now = nullptr;
    std::string received;
    std::vector<AnsweringApp *> *done = nullptr;

    size_t on_data(const uint8_t *data, size_t length) override {
        received.append(reinterpret_cast<const char *>(data), length);
        if (received.size() > request.size() || request.compare(0, received.size(), received))
            fail("the backend got a wrong request");
        if (received.size() == request.size()) {
            if (connection->send(reinterpret_cast<const uint8_t *>(answer.data()), answer.size(),
                                 *now) != answer.size())
                fail("the backend's answer did not fit its send buffer");
            connection->shutdown(*now);
        }
        return length;
    }
    void on_closed(CloseReason reason) override {
        if (reason != CloseReason::normal)
            fail("a backend connection ended: %s", tcp::to_string(reason));
        if (received.size() != request.size())
            fail("a backend connection closed before its request");
        done->push_back(this);
    }
};

// The client's application: sends the request, reads the answer, closes
// when the backend has.
struct RequestingApp : ConnectionEvents {
    Connection *connection = nullptr;
    const uint64_t *now = nullptr;
    std::string received;
    bool open = false;
    uint64_t *completed = nullptr;

    void on_established() override {
        if (connection->send(reinterpret_cast<const uint8_t *>(request.data()), request.size(),
                             *now) != request.size())
            fail("the client's request did not fit its send buffer");
    }
    size_t on_data(const uint8_t *data, size_t length) override {
        received.append(reinterpret_cast<const char *>(data), length);
        if (received.size() > answer.size() || answer.compare(0, received.size(), received))
            fail("the client got a wrong answer");
        return length;
    }
    void on_peer_finished() override {
        if (received != answer)
            fail("the client's connection finished before the whole answer");
        connection->shutdown(*now);
    }
    void on_closed(CloseReason reason) override {
        if (reason != CloseReason::normal)
            fail("a client connection ended: %s", tcp::to_string(reason));
        open = false;
        ++*completed;
    }
};

void print(const char *name, double conns_per_s, double gbit_per_s) {
    std::printf("case=%s conns_per_s=%.0f gbit_per_s=%.3f\n", name, conns_per_s, gbit_per_s);
    std::fflush(stdout);
}

// Steps the lab until `done`, failing after `limit_us`.
template <typename Done>
void settle(Lab &lab, Done &&done, uint64_t limit_us, const char *what) {
    const uint64_t until = lab.now + limit_us;
    while (!done()) {
        lab.step();
        if (lab.now > until)
            fail("%s did not happen", what);
    }
}

void connections_case(rte_mempool *pool, BenchPort &client_port, BenchPort &backend_port,
                      double seconds) {
    Lab lab(pool, client_port, backend_port);
    std::deque<AnsweringApp> backend_apps;
    std::vector<AnsweringApp *> free_apps, closed_apps;
    for (const char *address : backend_addresses)
        lab.backend.endpoint.listen(ip(address), 80, [&](Connection &connection, const FourTuple &) {
            if (free_apps.empty()) {
                backend_apps.emplace_back();
                free_apps.push_back(&backend_apps.back());
            }
            AnsweringApp *app = free_apps.back();
            free_apps.pop_back();
            app->connection = &connection;
            app->now = &lab.now;
            app->received.clear();
            app->done = &closed_apps;
            return app;
        });

    uint64_t completed = 0;
    std::array<RequestingApp, connections_in_flight> clients;
    const uint64_t start_tsc = rte_rdtsc();
    const uint64_t end_us = lab.now + uint64_t(seconds * 1e6);
    uint64_t last_completed = 0, last_progress_us = lab.now;
    while (lab.now < end_us) {
        for (RequestingApp &app : clients) {
            if (app.open)
                continue;
            app.now = &lab.now;
            app.completed = &completed;
            app.received.clear();
            app.open = true;
            app.connection = lab.client.endpoint.connect(client_ip, vip, 80, app, lab.now);
            if (!app.connection)
                fail("the client has no local port free");
        }
        lab.step();
        // A closed connection calls its events no more: its app may serve
        // the next one.
        free_apps.insert(free_apps.end(), closed_apps.begin(), closed_apps.end());
        closed_apps.clear();
        if (completed != last_completed) {
            last_completed = completed;
            last_progress_us = lab.now;
        } else if (lab.now - last_progress_us > stall_limit_us) {
            fail("proxy_connections: no connection completed for a second");
        }
    }
    const uint64_t wall_tsc = rte_rdtsc() - start_tsc;
    const uint64_t gateway_tsc = lab.gateway.busy_tsc;
    const double hz = double(rte_get_tsc_hz());
    // Every connection ends cleanly, and the gateway keeps no session.
    settle(lab, [&] {
        for (const RequestingApp &app : clients)
            if (app.open)
                return false;
        return lab.gateway.worker->tcp->endpoint().connections() == 0;
    }, 5'000'000, "the last connections' close");
    lab.check_clean();
    const uint64_t relayed = lab.gateway.worker->tcp->proxy_counters().bytes_to_client.read();
    if (relayed != completed * answer.size())
        fail("the proxy relayed %lu answer bytes for %lu connections", (unsigned long)relayed,
             (unsigned long)completed);
    // Timed connections only; those that finished while settling are not.
    print("proxy_connections", double(last_completed) / (double(wall_tsc) / hz), 0);
    print("proxy_connections_gateway", double(last_completed) / (double(gateway_tsc) / hz), 0);
}

// The bytes of the bulk stream: byte i of the stream is stream_byte(i).
uint8_t stream_byte(uint64_t offset) { return uint8_t(offset % 251); }

// Counts what arrives and checks the first and last byte of each piece.
struct CountingApp : ConnectionEvents {
    Connection *connection = nullptr;
    const uint64_t *now = nullptr;
    uint64_t bytes = 0;
    bool closed = false;

    size_t on_data(const uint8_t *data, size_t length) override {
        if (data[0] != stream_byte(bytes) || data[length - 1] != stream_byte(bytes + length - 1))
            fail("the backend got wrong bytes at offset %lu", (unsigned long)bytes);
        bytes += length;
        return length;
    }
    void on_peer_finished() override { connection->shutdown(*now); }
    void on_closed(CloseReason reason) override {
        if (reason != CloseReason::normal)
            fail("the bulk backend connection ended: %s", tcp::to_string(reason));
        closed = true;
    }
};

struct SendingApp : ConnectionEvents {
    bool established = false, closed = false;
    void on_established() override { established = true; }
    void on_closed(CloseReason reason) override {
        if (reason != CloseReason::normal)
            fail("the bulk client connection ended: %s", tcp::to_string(reason));
        closed = true;
    }
};

void bulk_case(rte_mempool *pool, BenchPort &client_port, BenchPort &backend_port,
               double seconds) {
    Lab lab(pool, client_port, backend_port);
    CountingApp sink;
    sink.now = &lab.now;
    for (const char *address : backend_addresses)
        lab.backend.endpoint.listen(ip(address), 80, [&](Connection &connection, const FourTuple &) {
            sink.connection = &connection;
            return &sink;
        });
    SendingApp sender;
    Connection *connection = lab.client.endpoint.connect(client_ip, vip, 80, sender, lab.now);
    if (!connection)
        fail("the client has no local port free");
    settle(lab, [&] { return sender.established && sink.connection; }, 5'000'000,
           "the bulk connection's handshake");

    // A chunk of the stream that starts at any offset modulo 251.
    std::vector<uint8_t> chunk((1 << 16) + 251);
    for (size_t i = 0; i < chunk.size(); ++i)
        chunk[i] = stream_byte(i);
    uint64_t sent = 0;
    const uint64_t start_tsc = rte_rdtsc();
    const uint64_t gateway_start_tsc = lab.gateway.busy_tsc;
    const uint64_t start_bytes = sink.bytes;
    const uint64_t end_us = lab.now + uint64_t(seconds * 1e6);
    uint64_t last_bytes = 0, last_progress_us = lab.now;
    while (lab.now < end_us) {
        sent += connection->send(chunk.data() + sent % 251, 1 << 16, lab.now);
        lab.step();
        if (sink.bytes != last_bytes) {
            last_bytes = sink.bytes;
            last_progress_us = lab.now;
        } else if (lab.now - last_progress_us > stall_limit_us) {
            fail("proxy_bulk: no byte arrived for a second");
        }
    }
    const uint64_t wall_tsc = rte_rdtsc() - start_tsc;
    const uint64_t gateway_tsc = lab.gateway.busy_tsc - gateway_start_tsc;
    const uint64_t moved = sink.bytes - start_bytes;
    const double hz = double(rte_get_tsc_hz());

    // The client closes; every byte sent arrives before the FIN.
    connection->shutdown(lab.now);
    settle(lab, [&] { return sender.closed && sink.closed; }, 5'000'000, "the bulk close");
    if (sink.bytes != sent)
        fail("the backend got %lu bytes of %lu sent", (unsigned long)sink.bytes,
             (unsigned long)sent);
    settle(lab, [&] { return lab.gateway.worker->tcp->endpoint().connections() == 0; },
           5'000'000, "the gateway's close");
    lab.check_clean();
    print("proxy_bulk", 0, double(moved) * 8 / (double(wall_tsc) / hz) / 1e9);
    print("proxy_bulk_gateway", 0, double(moved) * 8 / (double(gateway_tsc) / hz) / 1e9);
}

int run(double seconds) {
    std::string error;
    rte_mempool *pool = dataplane::create_mempool(0, mbufs, dataplane::mbuf_data_room(1500), error);
    if (!pool) {
        std::fprintf(stderr, "bench_proxy: %s\n", error.c_str());
        return 1;
    }
    BenchPort client_port("proxy_client", pool), backend_port("proxy_backend", pool);
    connections_case(pool, client_port, backend_port, seconds);
    bulk_case(pool, client_port, backend_port, seconds);
    return 0;
}

} // namespace
} // namespace sluice::bench

int main(int argc, char **argv) {
    const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
    if (!sluice::bench::start_bench_eal("sluice-bench-proxy")) {
        std::fprintf(stderr, "bench_proxy: the EAL did not start\n");
        return 1;
    }
    const int status = sluice::bench::run(seconds);
    rte_eal_cleanup();
    return status;
}
