// Active health checks of backends, after HAProxy's and Envoy's: every
// interval a TCP connect, or an HTTP request whose status line is judged,
// with a timeout, and rise/fall hysteresis on the verdicts. It runs in the
// control plane's poll loop, single-threaded and never blocking: fd() is an
// epoll fd that is readable when a check socket is ready, timeout_ms() says
// when the next check starts or times out, service() does what is due.
// The sockets are ordinary kernel sockets; in production they leave through
// the exception path.
//
// Health of a target:
//   unchecked  no verdict yet; the caller treats it as up. A new target is
//              unchecked, and so is one whose settings changed.
//   up         the first pass of an unchecked target makes it up at once:
//              it was treated as up already, so waiting for `rise` passes
//              would change only its label. A down target needs `rise`
//              passes in a row.
//   down       `fall` failures in a row take an up or an unchecked target
//              down. Like HAProxy, which starts servers up and takes them
//              down after `fall` failures, rather than Envoy, which starts
//              them down until a first pass.
//
// Each check's socket is closed with SO_LINGER 0 (a reset) as soon as its
// verdict is known, as HAProxy does: a check every second or so to each of
// many backends would otherwise leave thousands of the gateway's sockets in
// TIME_WAIT, holding ephemeral ports. A reset is what a closed-early HTTP
// connection with unread data gets anyway.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "ctrl/health_check_spec.h"
#include "dataplane/net_addr.h"

namespace sluice::ctrl {

enum class BackendHealth { unchecked, up, down };

const char *to_string(BackendHealth health);

// One backend of one service, as checked. (service, address, port) names it.
struct HealthTarget {
    std::string service;
    IpAddress address;
    // Where to connect, resolved by the caller from spec.port; health() and
    // stats() name the target by this same port.
    uint16_t port = 0;
    HealthCheckSpec spec;

    bool operator==(const HealthTarget &) const = default;
};

struct HealthChange {
    std::string service;
    IpAddress address;
    uint16_t port = 0;
    BackendHealth from = BackendHealth::unchecked, to = BackendHealth::unchecked;
    std::string reason;  // "connection refused (3 failures in a row)", "HTTP status 200"
};

class HealthChecker {
public:
    HealthChecker();                      // jitter seeded from std::random_device
    explicit HealthChecker(uint64_t seed);  // jitter seeded for tests
    ~HealthChecker();
    HealthChecker(const HealthChecker &) = delete;
    HealthChecker &operator=(const HealthChecker &) = delete;

    // Replaces the set of targets. A target that stays with the same settings
    // keeps its health, counters, schedule and any check in flight. A new
    // target, or one whose spec changed, starts unchecked with its first
    // check at a random point of its first interval, so that many targets
    // added together do not all fire together. A changed target that was up
    // or down is reported by take_changes() as gone back to unchecked.
    // Duplicates of one (service, address, port) after the first are ignored.
    void set_targets(std::vector<HealthTarget> targets);

    int fd() const { return epoll_; }
    // Milliseconds until service() has a check to start or to time out,
    // rounded up; 0 when one is due; -1 with no targets.
    int timeout_ms() const;
    // Advances every check that is ready or due. Never blocks, never throws
    // (an allocation failure ends the process, as elsewhere in the control
    // plane). Local failures (no socket left) count as failed checks, as in
    // HAProxy, with a reason that starts with "local error".
    void service() noexcept;

    // Transitions since the last call, in order, each reported once:
    // unchecked->up/down (first verdicts), up<->down, and up/down->unchecked
    // when set_targets() changed a target's spec.
    std::vector<HealthChange> take_changes();

    // unchecked for a target the checker does not have.
    BackendHealth health(const std::string &service, const IpAddress &address,
                         uint16_t port) const;

    struct Stats {
        uint64_t checks = 0;  // completed checks: passes + failures
        uint64_t passes = 0;
        uint64_t failures = 0;
        BackendHealth health = BackendHealth::unchecked;
        std::string last_failure;  // empty until a check fails
    };
    std::optional<Stats> stats(const std::string &service, const IpAddress &address,
                               uint16_t port) const;

private:
    struct Target;
    using Nanoseconds = int64_t;  // CLOCK_MONOTONIC
    using TargetKey = std::tuple<std::string, AddressFamily, std::array<uint8_t, 16>, uint16_t>;
    using TargetId = uint64_t;  // never reused, so a stale epoll event cannot hit a new target

    static TargetKey key_of(const std::string &service, const IpAddress &address, uint16_t port);
    const Target *find(const std::string &service, const IpAddress &address, uint16_t port) const;
    void schedule(Target &target, Nanoseconds when);
    void start_check(Target &target, Nanoseconds now);
    void on_ready(Target &target, uint32_t events, Nanoseconds now);
    void send_request(Target &target, Nanoseconds now);
    void read_status(Target &target, Nanoseconds now);
    void pass(Target &target, std::string reason, Nanoseconds now);
    void fail(Target &target, std::string reason, Nanoseconds now);
    void end_check(Target &target, Nanoseconds now);
    void close_socket(Target &target);
    void change(Target &target, BackendHealth to, std::string reason);

    int epoll_ = -1;
    std::mt19937_64 jitter_;
    TargetId next_id_ = 1;
    std::map<TargetId, std::unique_ptr<Target>> targets_;
    std::map<TargetKey, TargetId> by_key_;
    // Each target's one pending moment, earliest first: its next start while
    // idle, its deadline while a check is in flight.
    std::set<std::pair<Nanoseconds, TargetId>> timers_;
    std::vector<HealthChange> changes_;
};

} // namespace sluice::ctrl
