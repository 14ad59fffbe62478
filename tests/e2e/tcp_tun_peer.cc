// The userspace TCP against Linux's, before the workers run it: this program
// puts one TcpEndpoint (dataplane/tcp_endpoint.h) behind a TUN device, so
// that the kernel of the namespace it runs in talks TCP to it over plain
// IPv4 packets. The lab's tests (tests/e2e/test_tcp_interop.py) run Linux
// clients and servers against it, with netem on the TUN device.
//
//   tcp_tun_peer --tun NAME --address A [--listen PORT --app sink|echo]
//                [--connect ADDRESS:PORT --app source --bytes N]
//                [--loss P --duplicate P --reorder P --delay-ms MS --seed N]
//                [--loss-out P] [--linger-ms MS]
//
// The impairment options act on the packets Linux sends (netem's job on the
// client's interface; this kernel has no sch_netem): each is lost with
// probability `loss`, sent twice with `duplicate`, and held `delay-ms`,
// except that with probability `reorder` one goes at once, ahead of those
// held (netem's reorder). `loss-out` loses the stack's own packets, so that
// its loss recovery (SACK, CUBIC) meets Linux as the receiver.
//
// sink   reads each connection to its end and closes; echo sends back what
// it reads; source (with --connect) opens one connection, sends N bytes of
// a fixed pattern, closes. Each connection that ends prints one line, with
// the SHA-256 of what it received (a source: of what it sent) and how its
// loss recovery went:
//   closed reason=<normal|reset|...> received=<bytes> sha256=<hex> sent=<bytes>
//          retransmissions=<n> fast_retransmits=<n> timeouts=<n>
// and the program exits after the first one with --connect (`linger-ms`
// later: TIME-WAIT runs meanwhile), or on SIGTERM.
// When it exits it prints the endpoint's counters and open connections:
//   counters connections=<n> time_wait=<n> retransmissions=... resets_sent=<n>
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/tcp_endpoint.h"
#include "dataplane/tcp_frame.h"
#include "dataplane/tcp_segment.h"

namespace sluice::tcp {
namespace {

volatile sig_atomic_t stopping = 0;

uint64_t now_us() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return uint64_t(t.tv_sec) * 1'000'000 + uint64_t(t.tv_nsec) / 1000;
}

[[noreturn]] void die(const std::string &why) {
    std::fprintf(stderr, "tcp_tun_peer: %s\n", why.c_str());
    std::exit(1);
}

// Writes IPv4 packets around the endpoint's segments into the TUN device.
struct TunSink : PacketSink {
    int fd = -1;
    uint16_t ip_id = 1;
    uint64_t packets = 0;
    double loss = 0;  // --loss-out
    std::mt19937_64 random{2};
    uint64_t lost = 0;

    void send_packet(const FourTuple &tuple, const TcpHeader &header,
                     const Payload &payload) override {
        if (loss > 0 && std::uniform_real_distribution<double>(0, 1)(random) < loss) {
            ++lost;
            return;
        }
        uint8_t packet[ip_segment_size(65536)];
        const size_t total = write_ip_segment(tuple, header, payload, ip_id++, packet);
        if (write(fd, packet, total) < 0 && errno != EAGAIN && errno != ENOBUFS)
            die(std::string("write to the TUN device: ") + std::strerror(errno));
        ++packets;
    }
};

std::string hex(const unsigned char *bytes, size_t n) {
    std::string out;
    char two[3];
    for (size_t i = 0; i < n; ++i) {
        std::snprintf(two, sizeof two, "%02x", bytes[i]);
        out += two;
    }
    return out;
}

// One connection's application: sink, echo or source.
struct App : ConnectionEvents {
    enum class Kind { sink, echo, source } kind = Kind::sink;
    Connection *connection = nullptr;
    uint64_t *clock = nullptr;
    uint64_t received = 0, to_send = 0, sent = 0;
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX *)> digest{EVP_MD_CTX_new(), EVP_MD_CTX_free};
    bool done = false;

    App() { EVP_DigestInit_ex(digest.get(), EVP_sha256(), nullptr); }

    // The source's bytes: a fixed pseudo-random stream the test recomputes.
    static uint8_t pattern(uint64_t at) { return uint8_t((at * 2654435761u) >> 13); }

    void pump() {
        if (kind == Kind::source) {
            uint8_t chunk[16384];
            while (sent < to_send) {
                const size_t n = size_t(std::min<uint64_t>(sizeof chunk, to_send - sent));
                for (size_t i = 0; i < n; ++i)
                    chunk[i] = pattern(sent + i);
                const size_t taken = connection->send(chunk, n, *clock);
                EVP_DigestUpdate(digest.get(), chunk, taken);
                sent += taken;
                if (taken < n)
                    return;
            }
            connection->shutdown(*clock);
        }
    }
    void on_established() override { pump(); }
    // The echo takes only what its send buffer takes, and the rest waits in
    // the connection (its window closing) until on_send_space().
    size_t on_data(const uint8_t *data, size_t length) override {
        const size_t taken = kind == Kind::echo ? connection->send(data, length, *clock) : length;
        received += taken;
        sent += kind == Kind::echo ? taken : 0;
        EVP_DigestUpdate(digest.get(), data, taken);
        return taken;
    }
    void on_send_space(size_t) override {
        if (kind == Kind::echo)
            connection->resume_receiving(*clock);
        else
            pump();
    }
    void on_peer_finished() override {
        if (kind != Kind::source)
            connection->shutdown(*clock);
    }
    void on_closed(CloseReason reason) override {
        unsigned char sum[32];
        unsigned int n = 0;
        EVP_DigestFinal_ex(digest.get(), sum, &n);
        const Connection::Info info = connection->info();
        std::printf("closed reason=%s received=%llu sha256=%s sent=%llu retransmissions=%llu "
                    "fast_retransmits=%llu timeouts=%llu\n",
                    to_string(reason), (unsigned long long)received, hex(sum, n).c_str(),
                    (unsigned long long)sent, (unsigned long long)info.retransmissions,
                    (unsigned long long)info.fast_retransmits,
                    (unsigned long long)info.timeouts);
        std::fflush(stdout);
        done = true;
    }
};

int open_tun(const std::string &name) {
    const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        die(std::string("/dev/net/tun: ") + std::strerror(errno));
    ifreq request{};
    request.ifr_flags = IFF_TUN | IFF_NO_PI;
    std::snprintf(request.ifr_name, IFNAMSIZ, "%s", name.c_str());
    if (ioctl(fd, TUNSETIFF, &request) < 0)
        die("TUNSETIFF " + name + ": " + std::strerror(errno));
    return fd;
}

// netem's loss, duplication, delay and reordering, on one direction.
struct Impairment {
    double loss = 0, duplicate = 0, reorder = 0;
    uint64_t delay_us = 0;
    std::mt19937_64 random{1};
    std::multimap<uint64_t, std::vector<uint8_t>> held;  // by when to deliver
    uint64_t lost = 0, duplicated = 0, reordered = 0;

    bool active() const { return loss > 0 || duplicate > 0 || reorder > 0 || delay_us > 0; }
    double draw() { return std::uniform_real_distribution<double>(0, 1)(random); }

    void take(const uint8_t *packet, size_t length, uint64_t now) {
        if (draw() < loss) {
            ++lost;
            return;
        }
        const int copies = draw() < duplicate ? 2 : 1;
        duplicated += copies - 1;
        for (int i = 0; i < copies; ++i) {
            uint64_t at = now + delay_us;
            if (delay_us && draw() < reorder) {
                at = now;
                ++reordered;
            }
            held.emplace(at, std::vector<uint8_t>(packet, packet + length));
        }
    }
};

int run(int argc, char **argv) {
    std::string tun, app_name = "sink", connect_to;
    IpAddress address;
    uint16_t listen_port = 0;
    uint64_t bytes = 0;
    Impairment impairment;
    double loss_out = 0;
    uint64_t linger_us = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string key = argv[i], value = argv[i + 1];
        if (key == "--tun")
            tun = value;
        else if (key == "--address")
            address = *parse_ip_address(value);
        else if (key == "--listen")
            listen_port = uint16_t(std::stoi(value));
        else if (key == "--app")
            app_name = value;
        else if (key == "--connect")
            connect_to = value;
        else if (key == "--bytes")
            bytes = std::stoull(value);
        else if (key == "--loss")
            impairment.loss = std::stod(value);
        else if (key == "--duplicate")
            impairment.duplicate = std::stod(value);
        else if (key == "--reorder")
            impairment.reorder = std::stod(value);
        else if (key == "--delay-ms")
            impairment.delay_us = std::stoull(value) * 1000;
        else if (key == "--loss-out")
            loss_out = std::stod(value);
        else if (key == "--linger-ms")
            linger_us = std::stoull(value) * 1000;
        else if (key == "--seed")
            impairment.random.seed(std::stoull(value));
        else
            die("unknown option " + key);
    }
    if (tun.empty() || !address.is_v4())
        die("usage: tcp_tun_peer --tun NAME --address IPV4 [--listen PORT] [--app sink|echo|"
            "source] [--connect ADDRESS:PORT --bytes N]");
    signal(SIGTERM, [](int) { stopping = 1; });
    signal(SIGINT, [](int) { stopping = 1; });

    TunSink sink;
    sink.fd = open_tun(tun);
    sink.loss = loss_out;
    Settings settings;
    settings.mss = 1460;
    settings.msl_us = 2'000'000;
    std::random_device random;
    TcpEndpoint endpoint(settings, {}, {40000, 49999}, sink,
                         (uint64_t(random()) << 32) | random());
    uint64_t clock = now_us();
    std::deque<App> apps;
    const auto kind = app_name == "echo"     ? App::Kind::echo
                      : app_name == "source" ? App::Kind::source
                                             : App::Kind::sink;
    if (listen_port)
        endpoint.listen(address, listen_port, [&](Connection &connection, const FourTuple &) {
            apps.emplace_back();
            apps.back().kind = kind;
            apps.back().connection = &connection;
            apps.back().clock = &clock;
            return &apps.back();
        });
    App *client = nullptr;
    if (!connect_to.empty()) {
        const size_t colon = connect_to.rfind(':');
        apps.emplace_back();
        client = &apps.back();
        client->kind = kind;
        client->to_send = bytes;
        client->clock = &clock;
        client->connection =
            endpoint.connect(address, *parse_ip_address(connect_to.substr(0, colon)),
                             uint16_t(std::stoi(connect_to.substr(colon + 1))), *client, clock);
    }
    std::printf("ready\n");
    std::fflush(stdout);

    std::vector<uint8_t> packet(65536);
    uint64_t leave_at = 0;
    while (!stopping && !(leave_at && now_us() >= leave_at)) {
        if (client && client->done && !leave_at)
            leave_at = now_us() + linger_us + 1;
        clock = now_us();
        const uint64_t due = endpoint.next_timer_us();
        int timeout = 100;
        if (due)
            timeout = int(std::min<uint64_t>(100, due > clock ? (due - clock + 999) / 1000 : 0));
        if (!impairment.held.empty()) {
            const uint64_t next = impairment.held.begin()->first;
            timeout = std::min(timeout, int(next > clock ? (next - clock + 999) / 1000 : 0));
        }
        pollfd fd{sink.fd, POLLIN, 0};
        poll(&fd, 1, timeout);
        clock = now_us();
        const auto deliver = [&](const uint8_t *bytes_in, size_t n) {
            // IPv4 without options or fragments, TCP to our address.
            const uint8_t *ip = bytes_in;
            if (n < 40 || ip[0] != 0x45 || ip[9] != 6 ||
                std::memcmp(ip + 16, address.bytes.data(), 4) != 0 || (ip[6] & 0x3f) || ip[7])
                return;
            const size_t total = std::min<size_t>(n, size_t(ip[2]) << 8 | ip[3]);
            const uint8_t *tcp = ip + 20;
            if (total < 40 || segment_checksum(ip + 12, ip + 16, false, tcp, total - 20) != 0)
                return;
            TcpSegment segment;
            if (parse_segment(tcp, total - 20, segment) != SegmentError::none)
                return;
            uint32_t source;
            std::memcpy(&source, ip + 12, 4);
            endpoint.receive(IpAddress::from_v4_be(source), address, segment, tcp, clock);
        };
        for (int burst = 0; burst < 256; ++burst) {
            const ssize_t n = read(sink.fd, packet.data(), packet.size());
            if (n <= 0)
                break;
            if (impairment.active())
                impairment.take(packet.data(), size_t(n), clock);
            else
                deliver(packet.data(), size_t(n));
        }
        while (!impairment.held.empty() && impairment.held.begin()->first <= clock) {
            const std::vector<uint8_t> held = std::move(impairment.held.begin()->second);
            impairment.held.erase(impairment.held.begin());
            deliver(held.data(), held.size());
        }
        if (endpoint.next_timer_us() && endpoint.next_timer_us() <= now_us())
            endpoint.on_timer(now_us());
        // Sources and echoes whose window opened send on; the endpoint hears
        // of timers that armed without a segment (the persist timer).
        for (App &app : apps)
            if (!app.done && app.connection && (app.kind != App::Kind::sink)) {
                app.pump();
                endpoint.touch(*app.connection);
            }
    }
    const TcpEndpoint::Counters &c = endpoint.counters();
    std::printf("counters connections=%zu time_wait=%zu accepted=%llu resets_sent=%llu "
                "packets=%llu lost=%llu duplicated=%llu reordered=%llu lost_out=%llu\n",
                endpoint.connections(), endpoint.time_wait_entries(),
                (unsigned long long)c.accepted, (unsigned long long)c.resets_sent,
                (unsigned long long)sink.packets, (unsigned long long)impairment.lost,
                (unsigned long long)impairment.duplicated,
                (unsigned long long)impairment.reordered, (unsigned long long)sink.lost);
    return 0;
}

} // namespace
} // namespace sluice::tcp

int main(int argc, char **argv) { return sluice::tcp::run(argc, argv); }
