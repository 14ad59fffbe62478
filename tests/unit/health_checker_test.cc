// The health checker's promises, against real sockets on loopback: a TCP
// check passes when the handshake completes and fails when it is refused or
// does not complete in time; an HTTP check judges the status line against the
// expected ranges; rise and fall set when health changes, and each change is
// reported once; set_targets keeps what stays and resets what changed; first
// checks are spread over the interval; a target never has two checks at once.
// The checker is driven as sluiced's loop drives it: poll(fd, timeout_ms)
// then service().
#include "ctrl/health_checker.h"
#include "ctrl/http_syntax.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

extern char **environ;

namespace sluice::ctrl {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

IpAddress ip(const char *text) { return *parse_ip_address(text); }

sockaddr_storage socket_address(const char *address, uint16_t port, socklen_t &length) {
    sockaddr_storage storage{};
    const IpAddress parsed = ip(address);
    if (parsed.is_v4()) {
        auto &v4 = reinterpret_cast<sockaddr_in &>(storage);
        v4.sin_family = AF_INET;
        v4.sin_port = htons(port);
        std::memcpy(&v4.sin_addr, parsed.bytes.data(), 4);
        length = sizeof v4;
    } else {
        auto &v6 = reinterpret_cast<sockaddr_in6 &>(storage);
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(port);
        std::memcpy(&v6.sin6_addr, parsed.bytes.data(), 16);
        length = sizeof v6;
    }
    return storage;
}

// A socket listening on an ephemeral port of a loopback address; -1 when the
// address is not there (no IPv6 in the sandbox).
int listen_on(const char *address, int backlog, uint16_t &port) {
    socklen_t length;
    sockaddr_storage storage = socket_address(address, 0, length);
    const int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&storage), length) < 0 ||
        ::listen(fd, backlog) < 0) {
        ::close(fd);
        return -1;
    }
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&storage), &length);
    port = ntohs(storage.ss_family == AF_INET
                     ? reinterpret_cast<sockaddr_in &>(storage).sin_port
                     : reinterpret_cast<sockaddr_in6 &>(storage).sin6_port);
    return fd;
}

// A port that nothing listens on: one the kernel just gave out and took back.
uint16_t closed_port() {
    uint16_t port = 0;
    ::close(listen_on("127.0.0.1", 1, port));
    return port;
}

// Completes handshakes and never accepts: the kernel does the TCP part.
struct Listener {
    explicit Listener(const char *address = "127.0.0.1") { fd = listen_on(address, 128, port); }
    ~Listener() {
        if (fd >= 0)
            ::close(fd);
    }
    int fd = -1;
    uint16_t port = 0;
};

// A listener whose accept queue is full. Linux drops a SYN to such a
// listener (tcp_conn_request counts a ListenOverflow) rather than refusing
// it, so the client's connect neither completes nor fails: it times out. A
// listener that merely never accepts is no good here, since the kernel
// completes handshakes for it; nor is an unrouted address, which this
// sandbox answers. With backlog 0 one established connection fills it.
struct FullListener {
    FullListener() {
        fd = listen_on("127.0.0.1", 0, port);
        socklen_t length;
        const sockaddr_storage peer = socket_address("127.0.0.1", port, length);
        filler = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        filled = ::connect(filler, reinterpret_cast<const sockaddr *>(&peer), length) == 0;
    }
    ~FullListener() {
        ::close(filler);
        ::close(fd);
    }
    int fd = -1, filler = -1;
    uint16_t port = 0;
    bool filled = false;
};

// A one-shot HTTP server on a thread: reads each request up to its blank
// line, records it, writes the chosen raw response and closes; or holds the
// connection open without a word. It counts how many connections it holds
// at once.
class HttpServer {
public:
    explicit HttpServer(const char *address = "127.0.0.1") {
        listener_ = listen_on(address, 64, port_);
        if (listener_ >= 0)
            thread_ = std::thread([this] { run(); });
    }
    ~HttpServer() {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
        if (listener_ >= 0)
            ::close(listener_);
    }
    bool ok() const { return listener_ >= 0; }
    uint16_t port() const { return port_; }
    // The bytes every answer consists of; empty: close without answering.
    void respond_with(std::string response) {
        std::lock_guard lock(mutex_);
        response_ = std::move(response);
        silent_ = false;
    }
    void never_answer() {
        std::lock_guard lock(mutex_);
        silent_ = true;
    }
    std::vector<std::string> requests() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }
    size_t most_connections_at_once() const { return most_at_once_; }

private:
    void run() {
        struct Client {
            int fd;
            std::string request;
        };
        std::vector<Client> clients;
        while (!stop_) {
            std::vector<pollfd> ready{{listener_, POLLIN, 0}};
            for (const Client &client : clients)
                ready.push_back({client.fd, POLLIN, 0});
            if (::poll(ready.data(), ready.size(), 10) <= 0)
                continue;
            std::vector<Client> still_open;
            for (size_t i = 0; i < clients.size(); ++i) {
                Client &client = clients[i];
                if (!(ready[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) {
                    still_open.push_back(client);
                    continue;
                }
                char buffer[4096];
                const ssize_t got = ::recv(client.fd, buffer, sizeof buffer, MSG_DONTWAIT);
                if (got <= 0) {  // the checker is done with it
                    ::close(client.fd);
                    continue;
                }
                const bool complete_before = client.request.find("\r\n\r\n") != std::string::npos;
                client.request.append(buffer, size_t(got));
                if (complete_before || client.request.find("\r\n\r\n") == std::string::npos) {
                    still_open.push_back(client);
                    continue;
                }
                std::lock_guard lock(mutex_);
                requests_.push_back(client.request);
                if (silent_) {
                    still_open.push_back(client);
                    continue;
                }
                ::send(client.fd, response_.data(), response_.size(), MSG_NOSIGNAL);
                ::close(client.fd);
            }
            clients = std::move(still_open);
            if (ready[0].revents & POLLIN) {
                const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
                if (fd >= 0)
                    clients.push_back({fd, {}});
                if (clients.size() > most_at_once_)
                    most_at_once_ = clients.size();
            }
        }
        for (const Client &client : clients)
            ::close(client.fd);
    }

    int listener_ = -1;
    uint16_t port_ = 0;
    mutable std::mutex mutex_;
    std::string response_ = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    bool silent_ = false;
    std::vector<std::string> requests_;
    std::atomic<size_t> most_at_once_{0};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// `python3 -m http.server` on a free loopback port, serving an empty folder.
class PythonHttpServer {
public:
    PythonHttpServer() {
        if (::access("/usr/bin/python3", X_OK) != 0)
            return;
        char folder_template[] = "/tmp/sluice-health-XXXXXX";
        if (!::mkdtemp(folder_template))
            return;
        folder_ = folder_template;
        port_ = closed_port();
        const std::string port_text = std::to_string(port_);
        const char *argv[] = {"/usr/bin/python3", "-m", "http.server", port_text.c_str(),
                              "--bind", "127.0.0.1", "--directory", folder_.c_str(), nullptr};
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
        if (posix_spawn(&pid_, argv[0], &actions, nullptr, const_cast<char **>(argv), environ) != 0)
            pid_ = -1;
        posix_spawn_file_actions_destroy(&actions);
        // Ready once it accepts a connection; Python starts in well under 10 s.
        for (int attempt = 0; pid_ > 0 && attempt < 1000 && !ready_; ++attempt) {
            socklen_t length;
            const sockaddr_storage peer = socket_address("127.0.0.1", port_, length);
            const int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            ready_ = ::connect(probe, reinterpret_cast<const sockaddr *>(&peer), length) == 0;
            ::close(probe);
            if (!ready_)
                std::this_thread::sleep_for(milliseconds(10));
        }
    }
    ~PythonHttpServer() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
        if (!folder_.empty())
            ::rmdir(folder_.c_str());
    }
    bool ready() const { return ready_; }
    uint16_t port() const { return port_; }

private:
    pid_t pid_ = -1;
    uint16_t port_ = 0;
    std::string folder_;
    bool ready_ = false;
};

HealthCheckSpec tcp_check(uint32_t interval_ms, uint32_t timeout_ms, uint32_t rise = 2,
                          uint32_t fall = 3) {
    HealthCheckSpec spec;
    spec.type = HealthCheckType::tcp;
    spec.interval_ms = interval_ms;
    spec.timeout_ms = timeout_ms;
    spec.rise = rise;
    spec.fall = fall;
    return spec;
}

HealthCheckSpec http_check(uint32_t interval_ms, uint32_t timeout_ms, uint32_t rise = 2,
                           uint32_t fall = 3) {
    HealthCheckSpec spec = tcp_check(interval_ms, timeout_ms, rise, fall);
    spec.type = HealthCheckType::http;
    return spec;
}

HealthTarget target(const char *address, uint16_t port, HealthCheckSpec spec,
                    std::string service = "web") {
    return {std::move(service), ip(address), port, std::move(spec)};
}

// Drives the checker as sluiced's poll loop does until `done` holds or
// `limit_ms` passes; the number of loop turns, or -1 when time ran out.
int run_until(HealthChecker &checker, int limit_ms, const std::function<bool()> &done) {
    const auto end = Clock::now() + milliseconds(limit_ms);
    for (int turns = 0;; ++turns) {
        if (done())
            return turns;
        const auto left =
            std::chrono::ceil<milliseconds>(end - Clock::now()).count();
        if (left <= 0)
            return -1;
        int wait = checker.timeout_ms();
        if (wait < 0 || wait > left)
            wait = int(left);
        pollfd ready{checker.fd(), POLLIN, 0};
        ::poll(&ready, 1, wait);
        checker.service();
    }
}

int run_for(HealthChecker &checker, int ms) {
    int turns = 0;
    const auto end = Clock::now() + milliseconds(ms);
    run_until(checker, ms + 1000, [&] {
        ++turns;
        return Clock::now() >= end;
    });
    return turns;
}

HealthChecker::Stats stats_of(const HealthChecker &checker, const HealthTarget &t) {
    return checker.stats(t.service, t.address, t.port).value_or(HealthChecker::Stats{});
}

// Runs until `t` has a verdict (up or down), at most `limit_ms`.
bool run_until_judged(HealthChecker &checker, const HealthTarget &t, int limit_ms = 2000) {
    return run_until(checker, limit_ms, [&] {
               return checker.health(t.service, t.address, t.port) != BackendHealth::unchecked;
           }) >= 0;
}

// "web [::1]:8080 unchecked->up: connected"
std::string describe(const HealthChange &change) {
    const std::string address = change.address.is_v4() ? change.address.to_string()
                                                        : "[" + change.address.to_string() + "]";
    return change.service + " " + address + ":" + std::to_string(change.port) + " " +
           to_string(change.from) + "->" + to_string(change.to) + ": " + change.reason;
}

std::vector<std::string> changes(HealthChecker &checker) {
    std::vector<std::string> described;
    for (const HealthChange &change : checker.take_changes())
        described.push_back(describe(change));
    return described;
}

std::string where(const HealthTarget &t) {
    const std::string address =
        t.address.is_v4() ? t.address.to_string() : "[" + t.address.to_string() + "]";
    return t.service + " " + address + ":" + std::to_string(t.port);
}

TEST(HealthStatusLine, ParsesHttp1StatusLines) {
    const struct {
        const char *line;
        std::optional<uint16_t> status;
    } cases[] = {
        {"HTTP/1.1 200 OK", 200},
        {"HTTP/1.0 503 Service Unavailable", 503},
        {"HTTP/1.1 204", 204},                  // reason phrase and its space left out
        {"HTTP/1.1 404 ", 404},                 // empty reason phrase
        {"HTTP/1.1 100 Continue", 100},
        {"HTTP/1.1 599 x", 599},
        {"HTTP/1.1 600 Nope", std::nullopt},    // beyond RFC 9110's range
        {"HTTP/1.1 099 Nope", std::nullopt},
        {"HTTP/1.1 2x0 OK", std::nullopt},
        {"HTTP/1.1 20 OK", std::nullopt},
        {"HTTP/1.1 2000 OK", std::nullopt},
        {"HTTP/1.1  200 OK", std::nullopt},
        {"HTTP/2 200", std::nullopt},
        {"HTTP/2.0 200 OK", std::nullopt},
        {"http/1.1 200 OK", std::nullopt},
        {"SSH-2.0-OpenSSH_9.2", std::nullopt},
        {"", std::nullopt},
    };
    for (const auto &c : cases)
        EXPECT_EQ(parse_status_line(c.line), c.status) << '"' << c.line << '"';
}

TEST(HealthCheckerTcp, PassesAgainstAListenerAndReportsOnce) {
    Listener listener;
    ASSERT_GE(listener.fd, 0);
    HealthChecker checker(1);
    // rise 3 is for a down backend; an unchecked one is up at its first pass.
    const HealthTarget web = target("127.0.0.1", listener.port, tcp_check(50, 200, 3, 3));
    checker.set_targets({web});
    EXPECT_EQ(checker.health(web.service, web.address, web.port), BackendHealth::unchecked);
    EXPECT_TRUE(checker.take_changes().empty());

    ASSERT_GE(run_until(checker, 2000, [&] { return stats_of(checker, web).passes == 1; }), 0);
    EXPECT_EQ(checker.health(web.service, web.address, web.port), BackendHealth::up);
    EXPECT_EQ(changes(checker), std::vector<std::string>{where(web) + " unchecked->up: connected"});
    EXPECT_TRUE(checker.take_changes().empty());

    // More passes change nothing.
    run_for(checker, 150);
    const HealthChecker::Stats stats = stats_of(checker, web);
    EXPECT_GE(stats.checks, 2u);
    EXPECT_EQ(stats.passes, stats.checks);
    EXPECT_EQ(stats.failures, 0u);
    EXPECT_EQ(stats.health, BackendHealth::up);
    EXPECT_EQ(stats.last_failure, "");
    EXPECT_TRUE(checker.take_changes().empty());
}

TEST(HealthCheckerTcp, PassesOverIpv6) {
    Listener listener("::1");
    if (listener.fd < 0)
        GTEST_SKIP() << "no ::1 here";
    HealthChecker checker(2);
    const HealthTarget web = target("::1", listener.port, tcp_check(50, 200));
    checker.set_targets({web});
    ASSERT_TRUE(run_until_judged(checker, web));
    EXPECT_EQ(changes(checker), std::vector<std::string>{where(web) + " unchecked->up: connected"});
}

TEST(HealthCheckerTcp, RefusedGoesDownAfterFallFailures) {
    HealthChecker checker(3);
    const HealthTarget web = target("127.0.0.1", closed_port(), tcp_check(50, 200, 2, 3));
    checker.set_targets({web});

    // Unchecked (treated as up) until the third failure in a row.
    ASSERT_GE(run_until(checker, 2000, [&] { return stats_of(checker, web).failures == 2; }), 0);
    EXPECT_EQ(checker.health(web.service, web.address, web.port), BackendHealth::unchecked);
    EXPECT_EQ(stats_of(checker, web).last_failure, "connection refused");
    EXPECT_TRUE(checker.take_changes().empty());

    ASSERT_GE(run_until(checker, 2000, [&] { return stats_of(checker, web).failures == 3; }), 0);
    EXPECT_EQ(checker.health(web.service, web.address, web.port), BackendHealth::down);
    EXPECT_EQ(changes(checker),
              std::vector<std::string>{where(web) +
                                       " unchecked->down: connection refused (3 failures in a row)"});
}

TEST(HealthCheckerTcp, ConnectWithoutAnswerTimesOut) {
    FullListener listener;
    ASSERT_TRUE(listener.filled);
    HealthChecker checker(4);
    const HealthTarget web = target("127.0.0.1", listener.port, tcp_check(200, 100, 1, 1));
    checker.set_targets({web});
    const auto start = Clock::now();
    ASSERT_TRUE(run_until_judged(checker, web));
    // At least the timeout after a start somewhere in [0, interval).
    EXPECT_GE(Clock::now() - start, milliseconds(100));
    EXPECT_EQ(checker.health(web.service, web.address, web.port), BackendHealth::down);
    EXPECT_EQ(stats_of(checker, web).last_failure, "timeout after 100 ms while connecting");
}

TEST(HealthCheckerTcp, ClosesWithAResetNotAFin) {
    // SO_LINGER 0: the backend sees a reset and the gateway keeps no
    // TIME_WAIT socket per check.
    Listener listener;
    HealthChecker checker(17);
    const HealthTarget web = target("127.0.0.1", listener.port, tcp_check(1000, 200, 1, 1));
    checker.set_targets({web});
    ASSERT_TRUE(run_until_judged(checker, web));
    pollfd queued{listener.fd, POLLIN, 0};
    ASSERT_EQ(::poll(&queued, 1, 1000), 1);
    const int accepted = ::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(accepted, 0);
    char byte;
    EXPECT_EQ(::recv(accepted, &byte, 1, 0), -1);
    EXPECT_EQ(errno, ECONNRESET);
    ::close(accepted);
}

TEST(HealthCheckerTcp, ChecksOncePerIntervalAndSleepsBetween) {
    Listener listener;
    HealthChecker checker(5);
    const HealthTarget web = target("127.0.0.1", listener.port, tcp_check(50, 40));
    checker.set_targets({web});
    const int turns = run_for(checker, 500);
    // Starts at t0 in [0, 50) and every 50 ms after: 9 to 11 in 500 ms. A
    // busy machine may run late, never early.
    const uint64_t checks = stats_of(checker, web).checks;
    EXPECT_LE(checks, 11u);
    EXPECT_GE(checks, 6u);
    // Each check wants a start and an answer: two or three wake-ups, not a spin.
    EXPECT_LE(turns, int(4 * checks + 10));
}

TEST(HealthCheckerHttp, SendsTheRequestAndJudgesTheStatus) {
    HttpServer server;
    ASSERT_TRUE(server.ok());
    HealthCheckSpec spec = http_check(50, 200);
    spec.path = "/healthz?deep=1";
    HealthChecker checker(6);
    const HealthTarget web = target("127.0.0.1", server.port(), spec);
    checker.set_targets({web});
    ASSERT_TRUE(run_until_judged(checker, web));
    EXPECT_EQ(changes(checker),
              std::vector<std::string>{where(web) + " unchecked->up: HTTP status 200"});
    ASSERT_FALSE(server.requests().empty());
    EXPECT_EQ(server.requests()[0], "GET /healthz?deep=1 HTTP/1.1\r\n"
                                    "Host: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"
                                    "User-Agent: sluice-health-check\r\n"
                                    "Connection: close\r\n\r\n");
}

TEST(HealthCheckerHttp, HostHeaderBracketsIpv6AndTakesTheSpecsHost) {
    HttpServer server("::1");
    if (!server.ok())
        GTEST_SKIP() << "no ::1 here";
    HealthCheckSpec named = http_check(50, 200);
    named.host = "api.example.net";
    named.method = "HEAD";
    const HealthTarget by_address = target("::1", server.port(), http_check(50, 200), "a");
    const HealthTarget by_name = target("::1", server.port(), named, "b");
    HealthChecker checker(7);
    checker.set_targets({by_address, by_name});
    ASSERT_TRUE(run_until_judged(checker, by_address));
    ASSERT_TRUE(run_until_judged(checker, by_name));
    std::set<std::string> first_lines;
    for (const std::string &request : server.requests())
        first_lines.insert(request.substr(0, request.find("\r\nUser-Agent")));
    EXPECT_TRUE(first_lines.contains("GET / HTTP/1.1\r\nHost: [::1]:" +
                                     std::to_string(server.port())));
    EXPECT_TRUE(first_lines.contains("HEAD / HTTP/1.1\r\nHost: api.example.net"));
}

TEST(HealthCheckerHttp, ExpectedStatusRanges) {
    HttpServer server;
    ASSERT_TRUE(server.ok());
    const struct {
        uint16_t status;
        std::vector<std::pair<uint16_t, uint16_t>> expected;
        const char *failure;  // null: passes
    } cases[] = {
        {200, {}, nullptr},
        {204, {}, nullptr},
        {301, {}, nullptr},
        {399, {}, nullptr},
        {404, {}, "HTTP status 404, expected 200-399"},
        {400, {}, "HTTP status 400, expected 200-399"},
        // 1xx is interim (skipped); the server closes before a final status.
        {199, {{100, 599}}, "connection closed before the final status line"},
        {404, {{404, 404}}, nullptr},
        {503, {{200, 299}, {500, 503}}, nullptr},
        {504, {{200, 299}, {500, 503}}, "HTTP status 504, expected 200-299,500-503"},
        {200, {{204, 204}}, "HTTP status 200, expected 204"},
    };
    for (const auto &c : cases) {
        server.respond_with("HTTP/1.1 " + std::to_string(c.status) + " Whatever\r\n\r\n");
        HealthCheckSpec spec = http_check(50, 200, 1, 1);
        spec.expected_status = c.expected;
        HealthChecker checker(8);
        const HealthTarget web = target("127.0.0.1", server.port(), spec);
        checker.set_targets({web});
        ASSERT_TRUE(run_until_judged(checker, web)) << c.status;
        const HealthChecker::Stats stats = stats_of(checker, web);
        if (c.failure) {
            EXPECT_EQ(stats.health, BackendHealth::down) << c.status;
            EXPECT_EQ(stats.last_failure, c.failure);
        } else {
            EXPECT_EQ(stats.health, BackendHealth::up) << c.status;
        }
    }
}

TEST(HealthCheckerHttp, WrongStatusTakesItDownAfterFallAndRightStatusUpAfterRise) {
    HttpServer server;
    ASSERT_TRUE(server.ok());
    HealthChecker checker(9);
    const HealthTarget web = target("127.0.0.1", server.port(), http_check(50, 200, 3, 2));
    checker.set_targets({web});
    ASSERT_TRUE(run_until_judged(checker, web));
    EXPECT_EQ(changes(checker),
              std::vector<std::string>{where(web) + " unchecked->up: HTTP status 200"});

    // A check in flight may still see 200; the failures that follow are in a row.
    server.respond_with("HTTP/1.1 500 Internal Server Error\r\n\r\n");
    auto failures_reach = [&](uint64_t n) {
        return run_until(checker, 2000, [&] { return stats_of(checker, web).failures == n; }) >= 0;
    };
    ASSERT_TRUE(failures_reach(1));
    EXPECT_EQ(checker.health(web.service, web.address, web.port), BackendHealth::up);
    ASSERT_TRUE(failures_reach(2));
    EXPECT_EQ(checker.health(web.service, web.address, web.port), BackendHealth::down);
    EXPECT_EQ(changes(checker),
              std::vector<std::string>{where(web) + " up->down: HTTP status 500, expected "
                                                    "200-399 (2 failures in a row)"});

    server.respond_with("HTTP/1.1 200 OK\r\n\r\n");
    const uint64_t passes = stats_of(checker, web).passes;
    auto passes_reach = [&](uint64_t n) {
        return run_until(checker, 2000, [&] { return stats_of(checker, web).passes == n; }) >= 0;
    };
    ASSERT_TRUE(passes_reach(passes + 1));
    ASSERT_TRUE(passes_reach(passes + 2));
    EXPECT_EQ(checker.health(web.service, web.address, web.port), BackendHealth::down);
    EXPECT_TRUE(checker.take_changes().empty());
    ASSERT_TRUE(passes_reach(passes + 3));
    EXPECT_EQ(checker.health(web.service, web.address, web.port), BackendHealth::up);
    EXPECT_EQ(changes(checker),
              std::vector<std::string>{where(web) +
                                       " down->up: HTTP status 200 (3 passes in a row)"});
    EXPECT_TRUE(checker.take_changes().empty());
}

TEST(HealthCheckerHttp, RealPythonServer) {
    PythonHttpServer server;
    if (!server.ready())
        GTEST_SKIP() << "cannot start /usr/bin/python3 -m http.server";
    HealthCheckSpec head = http_check(100, 2000, 1, 1);
    head.method = "HEAD";
    HealthCheckSpec missing = http_check(100, 2000, 1, 1);
    missing.path = "/no-such-file";
    const HealthTarget get_root = target("127.0.0.1", server.port(), http_check(100, 2000, 1, 1), "get");
    const HealthTarget head_root = target("127.0.0.1", server.port(), head, "head");
    const HealthTarget get_missing = target("127.0.0.1", server.port(), missing, "missing");
    HealthChecker checker(10);
    checker.set_targets({get_root, head_root, get_missing});
    for (const HealthTarget &t : {get_root, head_root, get_missing})
        ASSERT_TRUE(run_until_judged(checker, t, 5000)) << t.service;
    EXPECT_EQ(checker.health("get", get_root.address, server.port()), BackendHealth::up);
    EXPECT_EQ(checker.health("head", head_root.address, server.port()), BackendHealth::up);
    EXPECT_EQ(checker.health("missing", get_missing.address, server.port()), BackendHealth::down);
    EXPECT_EQ(stats_of(checker, get_missing).last_failure, "HTTP status 404, expected 200-399");
}

TEST(HealthCheckerHttp, ServerThatNeverAnswersTimesOut) {
    HttpServer server;
    ASSERT_TRUE(server.ok());
    server.never_answer();
    HealthChecker checker(11);
    const HealthTarget web = target("127.0.0.1", server.port(), http_check(200, 100, 1, 1));
    checker.set_targets({web});
    ASSERT_TRUE(run_until_judged(checker, web));
    EXPECT_EQ(checker.health(web.service, web.address, web.port), BackendHealth::down);
    EXPECT_EQ(stats_of(checker, web).last_failure,
              "timeout after 100 ms while waiting for the status line");
    EXPECT_EQ(server.requests().size(), 1u);  // the request went out whole
}

TEST(HealthCheckerHttp, NeverTwoChecksAtOnceWhenTheTimeoutOutlastsTheInterval) {
    HttpServer server;
    ASSERT_TRUE(server.ok());
    server.never_answer();
    HealthChecker checker(12);
    const HealthTarget web = target("127.0.0.1", server.port(), http_check(100, 110, 1, 5));
    checker.set_targets({web});
    run_for(checker, 600);
    const HealthChecker::Stats stats = stats_of(checker, web);
    // 110 ms checks starting on a 100 ms grid: one every 200 ms (ending at
    // 110, 310, 510 ms after a first start in [0, 100)), the missed start
    // skipped; not one every 110 ms as a queued start would make it.
    EXPECT_GE(stats.failures, 2u);
    EXPECT_LE(stats.failures, 3u);
    EXPECT_EQ(stats.passes, 0u);
    // The server drops a connection once the checker resets it.
    run_until(checker, 50, [] { return false; });
    EXPECT_EQ(server.most_connections_at_once(), 1u);
}

TEST(HealthCheckerHttp, MalformedOrMissingStatusLinesFail) {
    HttpServer server;
    ASSERT_TRUE(server.ok());
    const struct {
        std::string response;
        const char *failure;
    } cases[] = {
        {"HTTP/1.1 2x0 OK\r\n\r\n", "malformed status line"},
        {"SSH-2.0-OpenSSH_9.2\r\n", "malformed status line"},
        {"HTTP/1.1 200 OK", "connection closed before the final status line"},
        {"", "connection closed without a response"},
        {std::string(5000, 'A'), "no status line in the first 4096 bytes"},
        // A 1xx is skipped, but what follows it must be a status line.
        {"HTTP/1.1 100 Continue\r\n\r\n<html>\r\n", "malformed status line"},
    };
    for (const auto &c : cases) {
        server.respond_with(c.response);
        HealthChecker checker(13);
        const HealthTarget web = target("127.0.0.1", server.port(), http_check(50, 500, 1, 1));
        checker.set_targets({web});
        ASSERT_TRUE(run_until_judged(checker, web)) << c.failure;
        EXPECT_EQ(stats_of(checker, web).last_failure, c.failure);
    }
}

TEST(HealthCheckerHttp, InterimResponsesAreSkipped) {
    HttpServer server;
    ASSERT_TRUE(server.ok());
    server.respond_with(
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 204 No Content\r\n\r\n");
    HealthChecker checker(14);
    const HealthTarget web = target("127.0.0.1", server.port(), http_check(50, 200, 1, 1));
    checker.set_targets({web});
    ASSERT_TRUE(run_until_judged(checker, web));
    EXPECT_EQ(changes(checker),
              std::vector<std::string>{where(web) + " unchecked->up: HTTP status 204"});
}

TEST(HealthCheckerHttp, SettingsThatWouldBreakTheRequestFailWithoutSending) {
    HttpServer server;
    ASSERT_TRUE(server.ok());
    HealthCheckSpec smuggling = http_check(50, 200, 1, 1);
    smuggling.path = "/ HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /";
    HealthCheckSpec spaced = http_check(50, 200, 1, 1);
    spaced.path = "/a b";
    const HealthTarget a = target("127.0.0.1", server.port(), smuggling, "a");
    const HealthTarget b = target("127.0.0.1", server.port(), spaced, "b");
    HealthChecker checker(18);
    checker.set_targets({a, b});
    ASSERT_TRUE(run_until_judged(checker, a));
    ASSERT_TRUE(run_until_judged(checker, b));
    EXPECT_EQ(stats_of(checker, a).last_failure,
              "local error: method, path or host would break the request");
    EXPECT_EQ(stats_of(checker, b).health, BackendHealth::down);
    EXPECT_TRUE(server.requests().empty());
}

TEST(HealthCheckerTargets, SetTargetsKeepsWhatStaysAndResetsWhatChanged) {
    Listener listener;
    const uint16_t nothing_listens = closed_port();
    const HealthTarget kept = target("127.0.0.1", listener.port, tcp_check(50, 200));
    const HealthTarget changed = target("127.0.0.1", nothing_listens, tcp_check(50, 200, 1, 1));
    // The same backend in another service is another target.
    const HealthTarget other_service = target("127.0.0.1", listener.port, tcp_check(50, 200), "api");
    HealthChecker checker(15);
    checker.set_targets({kept, changed, other_service});
    ASSERT_TRUE(run_until_judged(checker, kept));
    ASSERT_TRUE(run_until_judged(checker, changed));
    ASSERT_TRUE(run_until_judged(checker, other_service));
    EXPECT_EQ(changes(checker).size(), 3u);
    const HealthChecker::Stats kept_before = stats_of(checker, kept);

    HealthTarget changed_again = changed;
    changed_again.spec.interval_ms = 60;
    const HealthTarget added = target("127.0.0.1", listener.port, tcp_check(50, 200), "new");
    checker.set_targets({kept, changed_again, added, kept /* a duplicate is ignored */});

    const HealthChecker::Stats kept_after = stats_of(checker, kept);
    EXPECT_EQ(kept_after.checks, kept_before.checks);
    EXPECT_EQ(kept_after.health, BackendHealth::up);
    const HealthChecker::Stats reset = stats_of(checker, changed_again);
    EXPECT_EQ(reset.checks, 0u);
    EXPECT_EQ(reset.health, BackendHealth::unchecked);
    EXPECT_EQ(reset.last_failure, "");
    EXPECT_EQ(checker.health("new", added.address, added.port), BackendHealth::unchecked);
    EXPECT_FALSE(checker.stats("api", other_service.address, other_service.port));
    EXPECT_EQ(checker.health("api", other_service.address, other_service.port),
              BackendHealth::unchecked);
    // The reset one was down; its caller must learn it is unchecked again.
    EXPECT_EQ(changes(checker),
              std::vector<std::string>{where(changed) +
                                       " down->unchecked: health check settings changed"});

    ASSERT_TRUE(run_until_judged(checker, changed_again));
    ASSERT_TRUE(run_until_judged(checker, added));
    const std::vector<std::string> judged = changes(checker);
    EXPECT_EQ(std::set<std::string>(judged.begin(), judged.end()),
              (std::set<std::string>{
                  where(changed) + " unchecked->down: connection refused (1 failure in a row)",
                  where(added) + " unchecked->up: connected"}));
    EXPECT_EQ(judged.size(), 2u);
}

TEST(HealthCheckerTargets, FirstChecksAreSpreadOverTheInterval) {
    // 40 targets added at once, interval 500 ms: each first check falls at a
    // random point of the first interval, not all at its start.
    const uint16_t port = closed_port();
    std::vector<HealthTarget> targets;
    for (int i = 0; i < 40; ++i)
        targets.push_back(target("127.0.0.1", port, tcp_check(500, 100, 1, 1), "s" + std::to_string(i)));
    HealthChecker checker(16);
    const auto start = Clock::now();
    checker.set_targets(targets);
    std::vector<int> first_verdict_ms(targets.size(), -1);
    run_until(checker, 1000, [&] {
        bool all = true;
        for (size_t i = 0; i < targets.size(); ++i) {
            if (first_verdict_ms[i] < 0 && stats_of(checker, targets[i]).checks > 0)
                first_verdict_ms[i] = int(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count());
            all = all && first_verdict_ms[i] >= 0;
        }
        return all;
    });
    std::set<int> tenths;  // which 50 ms slices of the interval saw a first check
    for (const int ms : first_verdict_ms) {
        ASSERT_GE(ms, 0);
        EXPECT_LT(ms, 500 + 100);  // within the first interval, give or take a busy machine
        tenths.insert(ms / 50);
    }
    EXPECT_GE(tenths.size(), 6u);
}

} // namespace
} // namespace sluice::ctrl
