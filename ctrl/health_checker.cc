#include "ctrl/health_checker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <iterator>
#include <stdexcept>

#include "ctrl/http_syntax.h"

namespace sluice::ctrl {

namespace {

using Nanoseconds = int64_t;
constexpr Nanoseconds nanoseconds_per_ms = 1'000'000;
// Enough for any sane status line and a 1xx response or two before it; a
// backend that sends more before its status line is not answering HTTP.
constexpr size_t max_response_prefix = 4096;

Nanoseconds monotonic_now() {
    timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return Nanoseconds(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// "connection refused", from strerror's "Connection refused".
std::string describe_error(int error) {
    std::string text = std::strerror(error);
    if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z')
        text[0] = char(text[0] - 'A' + 'a');
    return text;
}

// A zero interval or timeout would start checks in a tight loop.
Nanoseconds interval_of(const HealthCheckSpec &spec) {
    return Nanoseconds(std::max<uint32_t>(spec.interval_ms, 1)) * nanoseconds_per_ms;
}
Nanoseconds timeout_of(const HealthCheckSpec &spec) {
    return Nanoseconds(std::max<uint32_t>(spec.timeout_ms, 1)) * nanoseconds_per_ms;
}

// Bytes that would end the request line or a header early and let the
// rest pass for headers of its own. A space is one only in the request line.
bool breaks_the_request(std::string_view text, bool space_too) {
    for (const char c : text)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || (space_too && c == ' '))
            return true;
    return false;
}

std::string build_request(const HealthTarget &target) {
    std::string host = target.spec.host;
    if (host.empty()) {
        const std::string address = target.address.to_string();
        host = target.address.is_v4() ? address : "[" + address + "]";
        if (target.port != 80)
            host += ":" + std::to_string(target.port);
    }
    return target.spec.method + " " + target.spec.path + " HTTP/1.1\r\nHost: " + host +
           "\r\nUser-Agent: sluice-health-check\r\nConnection: close\r\n\r\n";
}

std::string expected_text(const HealthCheckSpec &spec) {
    if (spec.expected_status.empty())
        return "200-399";
    std::string text;
    for (const auto &[low, high] : spec.expected_status) {
        if (!text.empty())
            text += ",";
        text += std::to_string(low);
        if (high != low)
            text += "-" + std::to_string(high);
    }
    return text;
}

bool status_expected(const HealthCheckSpec &spec, uint16_t status) {
    if (spec.expected_status.empty())
        return status >= 200 && status <= 399;
    for (const auto &[low, high] : spec.expected_status)
        if (status >= low && status <= high)
            return true;
    return false;
}

// What the bytes received so far say: not enough yet, a final status, or
// nonsense.
struct ResponseScan {
    enum { incomplete, final_status, malformed } kind = incomplete;
    uint16_t status = 0;
};

// Finds the final status line, skipping interim 1xx responses (a backend may
// send 103 Early Hints first; RFC 9110 section 15.2). 101 is final.
ResponseScan scan_response(std::string_view received) {
    size_t position = 0;
    for (;;) {
        const size_t end = received.find('\n', position);
        if (end == std::string_view::npos)
            return {};
        std::string_view line = received.substr(position, end - position);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        const std::optional<uint16_t> status = parse_status_line(line);
        if (!status)
            return {ResponseScan::malformed, 0};
        if (*status >= 200 || *status == 101)
            return {ResponseScan::final_status, *status};
        // An interim response: its header block ends with an empty line.
        position = end + 1;
        for (;;) {
            const size_t header_end = received.find('\n', position);
            if (header_end == std::string_view::npos)
                return {};
            const size_t length = header_end - position;
            const bool empty = length == 0 || (length == 1 && received[position] == '\r');
            position = header_end + 1;
            if (empty)
                break;
        }
    }
}

std::string in_a_row(uint32_t count, const char *one, const char *many) {
    return std::to_string(count) + " " + (count == 1 ? one : many) + " in a row";
}

} // namespace

const char *to_string(BackendHealth health) {
    switch (health) {
    case BackendHealth::unchecked:
        return "unchecked";
    case BackendHealth::up:
        return "up";
    case BackendHealth::down:
        return "down";
    }
    return "unknown";
}

enum class CheckPhase { idle, connecting, sending, reading };

struct HealthChecker::Target {
    HealthTarget settings;
    TargetId id = 0;
    std::string request;  // http only, built once per settings
    std::string request_error;  // set when the settings cannot make a request

    CheckPhase phase = CheckPhase::idle;
    int socket = -1;
    Nanoseconds next_start = 0;  // on the interval's grid, start to start
    Nanoseconds timer = 0;       // this target's entry in timers_
    bool timer_armed = false;
    size_t sent = 0;
    std::string received;

    BackendHealth health = BackendHealth::unchecked;
    uint32_t passes_in_a_row = 0;
    uint32_t failures_in_a_row = 0;
    Stats stats;
};

HealthChecker::HealthChecker() : HealthChecker(std::random_device{}()) {}

HealthChecker::HealthChecker(uint64_t seed) : jitter_(seed) {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0)
        throw std::runtime_error("cannot create the health checker's epoll: " +
                                 describe_error(errno));
}

HealthChecker::~HealthChecker() {
    for (auto &[id, target] : targets_)
        close_socket(*target);
    ::close(epoll_);
}

HealthChecker::TargetKey HealthChecker::key_of(const std::string &service,
                                               const IpAddress &address, uint16_t port) {
    return {service, address.family, address.bytes, port};
}

void HealthChecker::set_targets(std::vector<HealthTarget> targets) {
    const Nanoseconds now = monotonic_now();
    std::map<TargetId, std::unique_ptr<Target>> kept;
    std::map<TargetKey, TargetId> kept_keys;
    for (HealthTarget &settings : targets) {
        TargetKey key = key_of(settings.service, settings.address, settings.port);
        if (kept_keys.contains(key))
            continue;
        BackendHealth previous = BackendHealth::unchecked;
        if (const auto old = by_key_.find(key); old != by_key_.end()) {
            std::unique_ptr<Target> &existing = targets_.at(old->second);
            if (existing->settings == settings) {
                kept_keys.emplace(std::move(key), existing->id);
                kept.emplace(existing->id, std::move(existing));
                continue;
            }
            previous = existing->health;
        }
        auto target = std::make_unique<Target>();
        target->id = next_id_++;
        if (settings.spec.type == HealthCheckType::http) {
            // The config validates these; a request must not be able to
            // smuggle headers in anyway.
            if (breaks_the_request(settings.spec.method, true) ||
                breaks_the_request(settings.spec.path, true) ||
                breaks_the_request(settings.spec.host, false))
                target->request_error = "local error: method, path or host would break the request";
            else
                target->request = build_request(settings);
        }
        target->settings = std::move(settings);
        target->health = previous;
        if (previous != BackendHealth::unchecked)
            change(*target, BackendHealth::unchecked, "health check settings changed");
        const Nanoseconds interval = interval_of(target->settings.spec);
        target->next_start =
            now + Nanoseconds(jitter_() % uint64_t(interval));  // in [0, interval)
        schedule(*target, target->next_start);
        kept_keys.emplace(std::move(key), target->id);
        kept.emplace(target->id, std::move(target));
    }
    // What is left is gone or replaced: stop its check.
    for (auto &[id, target] : targets_) {
        if (!target)
            continue;
        close_socket(*target);
        if (target->timer_armed)
            timers_.erase({target->timer, id});
    }
    targets_ = std::move(kept);
    by_key_ = std::move(kept_keys);
}

void HealthChecker::change(Target &target, BackendHealth to, std::string reason) {
    changes_.push_back({target.settings.service, target.settings.address, target.settings.port,
                        target.health, to, std::move(reason)});
    target.health = to;
}

void HealthChecker::schedule(Target &target, Nanoseconds when) {
    if (target.timer_armed)
        timers_.erase({target.timer, target.id});
    target.timer = when;
    target.timer_armed = true;
    timers_.emplace(when, target.id);
}

int HealthChecker::timeout_ms() const {
    if (timers_.empty())
        return -1;
    const Nanoseconds wait = timers_.begin()->first - monotonic_now();
    if (wait <= 0)
        return 0;
    // Rounded up: waking a little early would only find nothing due yet.
    const Nanoseconds ms = (wait + nanoseconds_per_ms - 1) / nanoseconds_per_ms;
    return ms > INT_MAX ? INT_MAX : int(ms);
}

void HealthChecker::service() noexcept {
    // One batch per call bounds the work; anything left keeps the epoll fd
    // readable, so the caller's poll() returns at once for the rest.
    epoll_event events[256];
    const int ready = ::epoll_wait(epoll_, events, int(std::size(events)), 0);
    Nanoseconds now = monotonic_now();
    for (int i = 0; i < ready; ++i) {
        // Copied first: epoll_event is packed on x86-64, and find() would bind
        // a reference to the misaligned field (UBSan stops the tests there).
        const TargetId id = events[i].data.u64;
        const auto target = targets_.find(id);
        if (target != targets_.end() && target->second->phase != CheckPhase::idle)
            on_ready(*target->second, events[i].events, now);
    }
    // Ready sockets first, so a check that succeeded right at its deadline
    // passes. Each due timer either starts a check or ends one, and both
    // leave the target's timer in the future, so this loop ends.
    now = monotonic_now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
        Target &target = *targets_.at(timers_.begin()->second);
        timers_.erase(timers_.begin());
        target.timer_armed = false;
        if (target.phase == CheckPhase::idle) {
            start_check(target, now);
            continue;
        }
        const char *waiting_for = target.phase == CheckPhase::connecting ? "connecting"
                                  : target.phase == CheckPhase::sending  ? "sending the request"
                                                                         : "waiting for the status line";
        fail(target,
             "timeout after " + std::to_string(target.settings.spec.timeout_ms) + " ms while " +
                 waiting_for,
             now);
    }
}

void HealthChecker::start_check(Target &target, Nanoseconds now) {
    const HealthCheckSpec &spec = target.settings.spec;
    // The next start stays on the grid of the first, however late this one
    // runs; end_check skips any starts missed meanwhile.
    target.next_start += interval_of(spec);
    target.sent = 0;
    target.received.clear();
    target.phase = CheckPhase::connecting;
    if (!target.request_error.empty())
        return fail(target, target.request_error, now);

    const IpAddress &address = target.settings.address;
    target.socket = ::socket(address.is_v4() ? AF_INET : AF_INET6,
                             SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (target.socket < 0)
        return fail(target, "local error: cannot open a socket: " + describe_error(errno), now);
    // A reset on close, not a FIN: see the header.
    const linger abort_on_close{1, 0};
    ::setsockopt(target.socket, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);

    sockaddr_storage peer{};
    socklen_t peer_length;
    if (address.is_v4()) {
        auto &v4 = reinterpret_cast<sockaddr_in &>(peer);
        v4.sin_family = AF_INET;
        v4.sin_port = htons(target.settings.port);
        std::memcpy(&v4.sin_addr, address.bytes.data(), 4);
        peer_length = sizeof v4;
    } else {
        auto &v6 = reinterpret_cast<sockaddr_in6 &>(peer);
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(target.settings.port);
        std::memcpy(&v6.sin6_addr, address.bytes.data(), 16);
        peer_length = sizeof v6;
    }
    // Refusals usually arrive later, through SO_ERROR; an unroutable
    // address fails here already.
    if (::connect(target.socket, reinterpret_cast<sockaddr *>(&peer), peer_length) < 0 &&
        errno != EINPROGRESS)
        return fail(target, describe_error(errno), now);

    // Writable once the handshake ends, either way; also when connect()
    // finished at once, which makes the two cases one.
    epoll_event interest{};
    interest.events = EPOLLOUT;
    interest.data.u64 = target.id;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, target.socket, &interest) < 0)
        return fail(target, "local error: cannot watch a socket: " + describe_error(errno), now);
    schedule(target, now + timeout_of(spec));
}

void HealthChecker::on_ready(Target &target, uint32_t events, Nanoseconds now) {
    switch (target.phase) {
    case CheckPhase::idle:
        return;
    case CheckPhase::connecting: {
        int error = 0;
        socklen_t length = sizeof error;
        if (::getsockopt(target.socket, SOL_SOCKET, SO_ERROR, &error, &length) < 0)
            error = errno;
        if (error != 0)
            return fail(target, describe_error(error), now);
        if (!(events & EPOLLOUT))  // a hang-up is level-triggered: act on it
            return fail(target, "connection closed while connecting", now);
        if (target.settings.spec.type == HealthCheckType::tcp)
            return pass(target, "connected", now);
        target.phase = CheckPhase::sending;
        return send_request(target, now);
    }
    case CheckPhase::sending:
        return send_request(target, now);
    case CheckPhase::reading:
        return read_status(target, now);
    }
}

void HealthChecker::send_request(Target &target, Nanoseconds now) {
    while (target.sent < target.request.size()) {
        const ssize_t sent = ::send(target.socket, target.request.data() + target.sent,
                                    target.request.size() - target.sent, MSG_NOSIGNAL);
        if (sent > 0) {
            target.sent += size_t(sent);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;  // still EPOLLOUT: called again when there is room
        } else if (errno != EINTR) {
            return fail(target, "cannot send the request: " + describe_error(errno), now);
        }
    }
    target.phase = CheckPhase::reading;
    epoll_event interest{};
    interest.events = EPOLLIN;
    interest.data.u64 = target.id;
    if (::epoll_ctl(epoll_, EPOLL_CTL_MOD, target.socket, &interest) < 0)
        return fail(target, "local error: cannot watch a socket: " + describe_error(errno), now);
}

void HealthChecker::read_status(Target &target, Nanoseconds now) {
    const HealthCheckSpec &spec = target.settings.spec;
    char buffer[max_response_prefix];
    for (;;) {
        const size_t room = max_response_prefix - target.received.size();
        if (room == 0)
            return fail(target,
                        "no status line in the first " + std::to_string(max_response_prefix) +
                            " bytes",
                        now);
        const ssize_t received = ::recv(target.socket, buffer, room, 0);
        if (received < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            return fail(target, "cannot read the response: " + describe_error(errno), now);
        }
        if (received > 0)
            target.received.append(buffer, size_t(received));
        const ResponseScan scan = scan_response(target.received);
        if (scan.kind == ResponseScan::malformed)
            return fail(target, "malformed status line", now);
        if (scan.kind == ResponseScan::final_status) {
            std::string verdict = "HTTP status " + std::to_string(scan.status);
            if (status_expected(spec, scan.status))
                return pass(target, std::move(verdict), now);
            return fail(target, verdict + ", expected " + expected_text(spec), now);
        }
        if (received == 0)
            return fail(target,
                        target.received.empty() ? "connection closed without a response"
                                                : "connection closed before the final status line",
                        now);
    }
}

void HealthChecker::pass(Target &target, std::string reason, Nanoseconds now) {
    end_check(target, now);
    ++target.stats.checks;
    ++target.stats.passes;
    ++target.passes_in_a_row;
    target.failures_in_a_row = 0;
    const uint32_t rise = std::max<uint32_t>(target.settings.spec.rise, 1);
    if (target.health == BackendHealth::unchecked)
        change(target, BackendHealth::up, std::move(reason));
    else if (target.health == BackendHealth::down && target.passes_in_a_row >= rise)
        change(target, BackendHealth::up,
               reason + " (" + in_a_row(target.passes_in_a_row, "pass", "passes") + ")");
}

void HealthChecker::fail(Target &target, std::string reason, Nanoseconds now) {
    end_check(target, now);
    ++target.stats.checks;
    ++target.stats.failures;
    ++target.failures_in_a_row;
    target.passes_in_a_row = 0;
    target.stats.last_failure = reason;
    const uint32_t fall = std::max<uint32_t>(target.settings.spec.fall, 1);
    if (target.health != BackendHealth::down && target.failures_in_a_row >= fall)
        change(target, BackendHealth::down,
               reason + " (" + in_a_row(target.failures_in_a_row, "failure", "failures") + ")");
}

void HealthChecker::end_check(Target &target, Nanoseconds now) {
    close_socket(target);
    target.phase = CheckPhase::idle;
    target.received.clear();
    target.received.shrink_to_fit();
    // A check may outlast the interval (when timeout > interval) or the loop
    // may have stalled: skip the starts that passed, never run two at once,
    // never catch up in a burst.
    const Nanoseconds interval = interval_of(target.settings.spec);
    if (target.next_start <= now)
        target.next_start += ((now - target.next_start) / interval + 1) * interval;
    schedule(target, target.next_start);
}

void HealthChecker::close_socket(Target &target) {
    if (target.socket < 0)
        return;
    // close() also takes it out of the epoll set: it is never dup()ed.
    ::close(target.socket);
    target.socket = -1;
}

std::vector<HealthChange> HealthChecker::take_changes() {
    std::vector<HealthChange> taken;
    taken.swap(changes_);
    return taken;
}

const HealthChecker::Target *HealthChecker::find(const std::string &service,
                                                 const IpAddress &address, uint16_t port) const {
    const auto id = by_key_.find(key_of(service, address, port));
    return id == by_key_.end() ? nullptr : targets_.at(id->second).get();
}

BackendHealth HealthChecker::health(const std::string &service, const IpAddress &address,
                                    uint16_t port) const {
    const Target *target = find(service, address, port);
    return target ? target->health : BackendHealth::unchecked;
}

std::optional<HealthChecker::Stats> HealthChecker::stats(const std::string &service,
                                                         const IpAddress &address,
                                                         uint16_t port) const {
    const Target *target = find(service, address, port);
    if (!target)
        return std::nullopt;
    Stats stats = target->stats;
    stats.health = target->health;
    return stats;
}

} // namespace sluice::ctrl
