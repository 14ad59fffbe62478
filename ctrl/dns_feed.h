// The DNS SRV discovery feed (RFC 2782): each configured service has a DNS
// name such as _http._tcp.web.mesh.test. The feed asks for its SRV records,
// then for the A and AAAA records of every target, and makes each (address,
// SRV port) an Endpoint. It runs in the control plane's poll loop with
// c-ares, single-threaded and never blocking: fd() is an epoll fd over
// c-ares' sockets, timeout_ms() the nearer of c-ares' query timeouts and the
// next refresh, service() does what is due.
//
// From SRV records to endpoints:
//   priority  Like an RFC 2782 client, only the lowest priority that has a
//             target with an address is used; the others are standbys, still
//             resolved so that the feed can fall back to them at once.
//   weight    The endpoint's weight is the SRV weight, except that SRV weight
//             0 becomes 1: RFC 2782 gives a weight-0 target "a very small
//             chance" of being picked when others weigh more, and endpoint
//             weight 0 would mean "no new flows". Every address of a target
//             carries the target's full weight, as each may be a host of its
//             own. Two records reaching the same address and port make one
//             endpoint whose weight is their sum (at most 65535), labelled
//             with the first of their targets in name order.
//   port      The SRV port, as is: an SRV port 0 makes endpoint port 0,
//             which an Endpoint reads as the port the client connected to.
//   id        "address:port" ("198.18.1.11:8080", "[2001:db8::11]:8080"):
//             unique per service, unlike the target name, which may have
//             several addresses. The label "srv-target" names the target.
//   skipped   A target with no A or AAAA records, a target "." (RFC 2782:
//             "decidedly not available"), and unspecified, loopback or
//             multicast addresses make no endpoint; reports() says which.
//
// Freshness, per DNS name:
//   refresh   At the smallest TTL of the records used (the SRV set and every
//             target's A and AAAA sets), clamped to [min_refresh_s,
//             max_refresh_s] (default [1 s, 300 s]), then brought forward by
//             up to 10% at random so that names do not refresh in step.
//   absent    NXDOMAIN, or no SRV records: the service has no endpoints; that
//             is a current answer. Asked again after the SOA's negative TTL
//             (RFC 2308), or after negative_refresh_s when the server sends
//             no SOA (dnsmasq does not), within the same clamp.
//   failed    SERVFAIL, REFUSED, a timeout, no reachable server, a malformed
//             answer: the name is stale. Its last known endpoints stay, and
//             status().detail says which name failed and why. It is asked
//             again after a backoff: retry_min_ms, doubling up to
//             retry_max_ms, less up to 20% at random. When only some address
//             lookups fail, the other targets are updated and a failed
//             target keeps its last known addresses of that family; a
//             failure never empties a view, nor makes a first, empty one.
//   servers   With one server, its SERVFAIL, REFUSED or NOTIMP is reported as
//             such. With several, c-ares tries the next on those answers, and
//             c-ares 1.18 then reports a failure of all as "connection
//             refused"; the detail says it may be either.
//
// c-ares 1.18 sends every query to a server from one UDP socket, so the
// source port stays put and the 16-bit query id is the main guard against
// forged answers: ask a resolver on the same host or a trusted network.
//
// The view: a service appears in take_endpoints() once its name has been
// answered once (present and empty after NXDOMAIN); until then the feed has
// no opinion on it. status().health is starting until every name has had a
// first answer or failure, then stale while any name is, else current.
// status().revision counts the changes of the view, status().updates the
// views delivered by take_endpoints().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ctrl/discovery_settings.h"
#include "ctrl/endpoint_feed.h"

struct ares_channeldata;  // c-ares' channel, kept out of this header

namespace sluice::ctrl {

// One DNS name's state, for operators (the API and sluicectl) and tests.
struct DnsNameReport {
    std::string service;
    std::string dns_name;
    FeedHealth health = FeedHealth::starting;
    std::string detail;  // why stale; "" when current
    // What the last complete answer left out, e.g. "web-3.mesh.test: no A
    // or AAAA records, skipped"; also "no SRV records (NXDOMAIN)".
    std::vector<std::string> notes;
    uint32_t ttl_s = 0;        // the clamped TTL of the last answer; 0 before one
    uint64_t lookups = 0;      // SRV lookups started
    size_t endpoints = 0;      // in the current view
};

class DnsFeed final : public EndpointFeed {
public:
    // Throws std::invalid_argument when validate() refuses the settings, and
    // std::runtime_error when the epoll fd or the c-ares channel cannot be
    // made. The first lookups are due at once.
    explicit DnsFeed(DnsFeedSettings settings);        // jitter from std::random_device
    DnsFeed(DnsFeedSettings settings, uint64_t seed);  // jitter seeded for tests
    ~DnsFeed() override;
    DnsFeed(const DnsFeed &) = delete;
    DnsFeed &operator=(const DnsFeed &) = delete;

    int fd() const override { return epoll_; }
    // Milliseconds until a query times out or a name is due, rounded up; 0
    // when something is due; -1 with no services.
    int timeout_ms() const override;
    // Reads answers, expires queries, starts due lookups. Never blocks,
    // never throws (an allocation failure ends the process, as elsewhere in
    // the control plane).
    void service() noexcept override;
    bool take_endpoints(EndpointSet &out) override;
    FeedStatus status() const override;
    // One per service, in service name order.
    std::vector<DnsNameReport> reports() const;

private:
    struct Lookup;
    struct Query;
    using Nanoseconds = int64_t;  // CLOCK_MONOTONIC

    // c-ares' callbacks; an exception must not unwind through C frames.
    static void on_socket_state(void *feed, int socket, int readable, int writable) noexcept;
    static void on_answer(void *query, int status, int timeouts, unsigned char *answer,
                          int length) noexcept;
    void start(Lookup &lookup);
    void ask(Lookup &lookup, const std::string &name, int type, size_t target);
    void on_srv(Lookup &lookup, int status, const unsigned char *answer, int length);
    void on_addresses(Lookup &lookup, size_t target, bool v6, int status,
                      const unsigned char *answer, int length);
    void answered_one(Lookup &lookup);
    void finish(Lookup &lookup);
    Nanoseconds refresh_delay(uint32_t ttl_s);
    Nanoseconds retry_delay(uint32_t failures);

    DnsFeedSettings settings_;
    int epoll_ = -1;
    ares_channeldata *channel_ = nullptr;
    bool several_servers_ = false;
    bool destroying_ = false;
    std::mt19937_64 jitter_;
    std::vector<std::unique_ptr<Lookup>> lookups_;  // one per service
    bool changed_ = false;
    uint64_t updates_ = 0;
    uint64_t revision_ = 0;
};

} // namespace sluice::ctrl
