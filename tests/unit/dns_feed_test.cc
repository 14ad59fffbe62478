// The DNS SRV feed's promises, against a real dnsmasq (tests/fixtures/
// dns_server.h): SRV targets and their A and AAAA records become endpoints
// with the SRV ports and weights; only the lowest usable priority is used;
// a change is seen within its TTL; NXDOMAIN is a current, empty answer; a
// lost server leaves the name stale with its last endpoints until it comes
// back; targets without addresses are skipped and reported. Also the reading
// of DNS messages, on crafted bytes, and the settings' validation. The feed
// is driven as sluiced's loop drives it: poll(fd, timeout_ms), then service().
#include "ctrl/dns_feed.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "ctrl/dns_message.h"
#include "tests/fixtures/dns_server.h"

namespace sluice::ctrl {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testing::DnsServer;

IpAddress ip(const char *text) { return *parse_ip_address(text); }

// ---- DNS messages, byte by byte ----------------------------------------

// A DNS message written by hand (RFC 1035 4.1).
struct Message {
    std::vector<uint8_t> bytes;

    Message &u8(uint8_t value) {
        bytes.push_back(value);
        return *this;
    }
    Message &u16(uint16_t value) { return u8(uint8_t(value >> 8)).u8(uint8_t(value)); }
    Message &u32(uint32_t value) { return u16(uint16_t(value >> 16)).u16(uint16_t(value)); }
    // "a.b" as labels, then the root unless a pointer follows.
    Message &labels(const std::string &dotted, bool root = true) {
        size_t start = 0;
        while (start < dotted.size()) {
            size_t dot = dotted.find('.', start);
            if (dot == std::string::npos)
                dot = dotted.size();
            u8(uint8_t(dot - start));
            for (size_t i = start; i < dot; ++i)
                u8(uint8_t(dotted[i]));
            start = dot + 1;
        }
        return root ? u8(0) : *this;
    }
    Message &pointer(uint16_t offset) { return u16(uint16_t(0xc000 | offset)); }
    Message &header(uint8_t rcode, uint16_t answers, uint16_t authorities = 0) {
        return u16(0x1234).u16(uint16_t(0x8400 | rcode)).u16(1).u16(answers).u16(authorities).u16(0);
    }
    // A record header after its owner name; the caller writes rdlength bytes.
    Message &record(uint16_t type, uint32_t ttl, uint16_t rdlength) {
        return u16(type).u16(1).u32(ttl).u16(rdlength);
    }
};

constexpr uint16_t question_offset = 12;

TEST(DnsMessage, ReadsSrvRecordsWithCompressedTargetsAndTtls) {
    Message m;
    m.header(0, 3).labels("_http._tcp.web.mesh.test").u16(33).u16(1);
    // "mesh.test" inside the question: after the header, "_http", "_tcp", "web".
    const uint16_t mesh_test = question_offset + 6 + 5 + 4;
    m.pointer(question_offset).record(33, 30, 6 + 6 + 2);
    m.u16(10).u16(5).u16(8080).labels("web-1", false).pointer(mesh_test);
    // Uppercase comes back lowercase; a TTL with the top bit set counts as 0.
    m.pointer(question_offset).record(33, 0x80000001u, 6 + 17);
    m.u16(20).u16(0).u16(8081).labels("WEB-2.Mesh.Test");
    // A record of another type is skipped.
    m.pointer(question_offset).record(16, 30, 3).u8(2).u8('h').u8('i');

    DnsAnswer answer;
    ASSERT_EQ(parse_dns_answer(m.bytes, answer), "");
    EXPECT_EQ(answer.rcode, 0);
    ASSERT_EQ(answer.srv.size(), 2u);
    EXPECT_EQ(answer.srv[0], (DnsSrvRecord{10, 5, 8080, "web-1.mesh.test", 30}));
    EXPECT_EQ(answer.srv[1], (DnsSrvRecord{20, 0, 8081, "web-2.mesh.test", 0}));
    EXPECT_FALSE(answer.negative_ttl);

    // Every proper prefix of the message is refused, not read past its end.
    for (size_t length = 0; length < m.bytes.size(); ++length) {
        const std::vector<uint8_t> cut(m.bytes.begin(), m.bytes.begin() + long(length));
        EXPECT_NE(parse_dns_answer(cut, answer), "") << "a prefix of " << length << " bytes";
    }
}

TEST(DnsMessage, ReadsAddressesAndTheSoaNegativeTtl) {
    Message m;
    m.header(0, 2).labels("web-1.mesh.test").u16(1).u16(1);
    m.pointer(question_offset).record(1, 7, 4).u8(198).u8(18).u8(1).u8(11);
    m.pointer(question_offset).record(28, 9, 16).u32(0x20010db8).u32(0).u32(0).u32(0x11);
    DnsAnswer answer;
    ASSERT_EQ(parse_dns_answer(m.bytes, answer), "");
    ASSERT_EQ(answer.addresses.size(), 2u);
    EXPECT_EQ(answer.addresses[0], (DnsAddressRecord{ip("198.18.1.11"), 7}));
    EXPECT_EQ(answer.addresses[1], (DnsAddressRecord{ip("2001:db8::11"), 9}));

    // NXDOMAIN with an SOA: RFC 2308's negative TTL is min(TTL, MINIMUM).
    Message nx;
    nx.header(3, 0, 1).labels("_http._tcp.gone.mesh.test").u16(33).u16(1);
    nx.labels("mesh.test").record(6, 60, 0);
    const size_t rdata = nx.bytes.size();
    nx.labels("ns.mesh.test").labels("hostmaster.mesh.test");
    nx.u32(2024).u32(3600).u32(600).u32(86400).u32(10);
    const uint16_t rdlength = uint16_t(nx.bytes.size() - rdata);
    nx.bytes[rdata - 2] = uint8_t(rdlength >> 8);
    nx.bytes[rdata - 1] = uint8_t(rdlength);
    ASSERT_EQ(parse_dns_answer(nx.bytes, answer), "");
    EXPECT_EQ(answer.rcode, 3);
    EXPECT_TRUE(answer.srv.empty());
    EXPECT_EQ(answer.negative_ttl, 10u);
}

TEST(DnsMessage, RefusesPointerLoopsAndBadLengths) {
    // A question name that points at itself, then one that points forward.
    Message self;
    self.header(0, 0).pointer(question_offset).u16(33).u16(1);
    DnsAnswer answer;
    EXPECT_NE(parse_dns_answer(self.bytes, answer), "");
    Message forward;
    forward.header(0, 0).pointer(question_offset + 2).labels("x").u16(33).u16(1);
    EXPECT_NE(parse_dns_answer(forward.bytes, answer), "");
    // Two names pointing at each other.
    Message pair;
    pair.header(0, 1).labels("a", false).pointer(question_offset + 4).u16(1).u16(1);
    pair.pointer(question_offset).record(1, 1, 4).u32(0);
    pair.bytes[question_offset + 2] = 0xc0;  // "a" now ends in a pointer to the answer...
    pair.bytes[question_offset + 3] = uint8_t(question_offset + 8);
    EXPECT_NE(parse_dns_answer(pair.bytes, answer), "");
    // An A record of 5 bytes.
    Message a;
    a.header(0, 1).labels("web.test").u16(1).u16(1);
    a.pointer(question_offset).record(1, 1, 5).u32(0).u8(0);
    EXPECT_EQ(parse_dns_answer(a.bytes, answer), "an A record is not 4 bytes long");
    // An SRV whose target runs past its rdata.
    Message srv;
    srv.header(0, 1).labels("_x._tcp.test").u16(33).u16(1);
    srv.pointer(question_offset).record(33, 1, 8).u16(0).u16(0).u16(1).labels("web.test");
    EXPECT_EQ(parse_dns_answer(srv.bytes, answer), "an SRV record is malformed");
}

TEST(DnsMessage, SkipsTargetsThatAreNotHostNames) {
    Message m;
    m.header(0, 2).labels("_x._tcp.test").u16(33).u16(1);
    m.pointer(question_offset).record(33, 5, 6 + 10).u16(1).u16(1).u16(80);
    m.u8(3).u8('a').u8('.').u8('b').labels("test");  // a label "a.b"
    m.pointer(question_offset).record(33, 5, 6 + 1).u16(1).u16(1).u16(80).u8(0);  // "."
    DnsAnswer answer;
    ASSERT_EQ(parse_dns_answer(m.bytes, answer), "");
    EXPECT_EQ(answer.unusable_targets, 1u);
    ASSERT_EQ(answer.srv.size(), 1u);
    EXPECT_EQ(answer.srv[0].target, ".");
}

// ---- Settings -----------------------------------------------------------

DnsFeedSettings settings_for(const std::string &server,
                             std::map<std::string, std::string> services) {
    DnsFeedSettings settings;
    settings.name = "mesh-dns";
    if (!server.empty())
        settings.servers = {server};
    settings.services = std::move(services);
    settings.query_timeout_ms = 500;
    settings.tries = 2;
    settings.retry_min_ms = 200;
    settings.retry_max_ms = 400;
    return settings;
}

TEST(DnsFeedSettings, ValidateNamesTheBadField) {
    EXPECT_EQ(validate(settings_for("127.0.0.1:5353", {{"web", "_http._tcp.web.test."}})), "");
    EXPECT_EQ(validate(settings_for("[::1]:53", {})), "");
    EXPECT_EQ(validate(settings_for("2001:db8::53", {})), "");
    const std::pair<DnsFeedSettings, const char *> cases[] = {
        {settings_for("127.0.0.1:0", {}), "servers[0]: expected an IPv4 or IPv6 address"},
        {settings_for("127.0.0.1:99999", {}), "servers[0]"},
        {settings_for("[127.0.0.1]:53", {}), "servers[0]"},
        {settings_for("[::1]53", {}), "servers[0]"},
        {settings_for("mesh-dns:53", {}), "servers[0]"},
        {settings_for("", {{"web", "a..test"}}), "services.web: expected a DNS name, got an empty label"},
        {settings_for("", {{"web", "a b.test"}}), "services.web: expected letters"},
        {settings_for("", {{"web", std::string(64, 'a') + ".test"}}), "services.web: expected labels"},
        {settings_for("", {{"", "web.test"}}), "services: a service name is empty"},
    };
    for (const auto &[settings, expected] : cases)
        EXPECT_EQ(validate(settings).rfind(expected, 0), 0u)
            << validate(settings) << " should start with " << expected;
    DnsFeedSettings zero = settings_for("", {});
    zero.query_timeout_ms = 0;
    EXPECT_EQ(validate(zero).rfind("query_timeout_ms", 0), 0u);
    zero = settings_for("", {});
    zero.max_refresh_s = 0;
    EXPECT_EQ(validate(zero).rfind("max_refresh_s", 0), 0u);
    EXPECT_THROW(DnsFeed(settings_for("nope", {})), std::invalid_argument);
}

// ---- The feed against dnsmasq ------------------------------------------

// The feed as sluiced's loop drives it, with the view as last taken.
struct Driver {
    explicit Driver(DnsFeedSettings settings) : feed(std::move(settings), 7) {}

    // Polls and services until `done` holds or `limit` passes; false then.
    bool run_until(milliseconds limit, const std::function<bool()> &done) {
        const auto deadline = Clock::now() + limit;
        for (;;) {
            feed.service();
            if (feed.take_endpoints(view))
                ++views_taken;
            if (done())
                return true;
            const auto left =
                std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
            if (left <= 0)
                return false;
            int wait = feed.timeout_ms();
            if (wait < 0 || wait > left)
                wait = int(left);
            pollfd ready[] = {{feed.fd(), POLLIN, 0}, {also_poll, POLLIN, 0}};
            ::poll(ready, also_poll < 0 ? 1 : 2, wait);
        }
    }
    void run_for(milliseconds span) { run_until(span, [] { return false; }); }

    const DnsNameReport &report(const std::string &service) {
        reports = feed.reports();
        for (const DnsNameReport &report : reports)
            if (report.service == service)
                return report;
        throw std::logic_error("no report for " + service);
    }
    bool notes_mention(const std::string &service, const std::string &text) {
        for (const std::string &note : report(service).notes)
            if (note.find(text) != std::string::npos)
                return true;
        return false;
    }

    DnsFeed feed;
    int also_poll = -1;  // a fake server's socket, served by `done`
    EndpointSet view;
    size_t views_taken = 0;
    std::vector<DnsNameReport> reports;
};

Endpoint endpoint(const char *address, uint16_t port, uint32_t weight, const char *target) {
    Endpoint e;
    const IpAddress parsed = ip(address);
    e.id = (parsed.is_v4() ? std::string(address) : "[" + std::string(address) + "]") + ":" +
           std::to_string(port);
    e.address = parsed;
    e.port = port;
    e.weight = weight;
    e.labels["srv-target"] = target;
    return e;
}

bool current(const DnsFeed &feed) { return feed.status().health == FeedHealth::current; }

TEST(DnsFeed, SrvTargetsAndTheirAddressesBecomeEndpoints) {
    DnsServer dns;
    ASSERT_TRUE(dns.start(R"(
srv-host=_http._tcp.web.mesh.test,web-1.mesh.test,8080,10,5
srv-host=_http._tcp.web.mesh.test,web-2.mesh.test,8081,10,0
host-record=web-1.mesh.test,198.18.1.11,2001:db8::11
host-record=web-2.mesh.test,198.18.1.12,2001:db8::12
srv-host=_api._tcp.mesh.test,web-1.mesh.test,9000,1,300
srv-host=_api._tcp.mesh.test,api-1.mesh.test,9000,1,0
host-record=api-1.mesh.test,198.18.1.11
)", 30)) << dns.log();
    // A long query timeout: the answers must arrive through fd(), not by
    // waiting out a timer.
    DnsFeedSettings settings = settings_for(dns.address(), {{"web", "_http._tcp.web.mesh.test"},
                                                            {"api", "_api._tcp.mesh.test"}});
    settings.query_timeout_ms = 5000;
    Driver d(settings);
    EXPECT_EQ(d.feed.status().health, FeedHealth::starting);
    EXPECT_EQ(d.feed.timeout_ms(), 0);  // the first lookups are due
    ASSERT_TRUE(d.run_until(milliseconds(1000), [&] { return current(d.feed); }))
        << d.feed.status().detail;

    // SRV weight 0 becomes 1; each address carries its target's weight.
    const std::vector<Endpoint> web = {
        endpoint("198.18.1.11", 8080, 5, "web-1.mesh.test"),
        endpoint("198.18.1.12", 8081, 1, "web-2.mesh.test"),
        endpoint("2001:db8::11", 8080, 5, "web-1.mesh.test"),
        endpoint("2001:db8::12", 8081, 1, "web-2.mesh.test"),
    };
    EXPECT_EQ(d.view.at("web"), web);
    // Two targets with one address: one endpoint, weights summed, named by
    // the first target in name order.
    EXPECT_EQ(d.view.at("api"), (std::vector<Endpoint>{
                                    endpoint("198.18.1.11", 9000, 301, "api-1.mesh.test"),
                                    endpoint("2001:db8::11", 9000, 300, "web-1.mesh.test")}));
    const FeedStatus status = d.feed.status();
    EXPECT_EQ(status.name, "mesh-dns");
    EXPECT_EQ(status.kind, "dns");
    EXPECT_EQ(status.detail, "");
    EXPECT_GE(status.updates, 1u);
    EXPECT_EQ(d.report("web").ttl_s, 30u);
    EXPECT_TRUE(d.report("web").notes.empty());
    // Nothing is due for a while: the next refresh is ~30 s away.
    EXPECT_GT(d.feed.timeout_ms(), 20000);
    EXPECT_FALSE(d.feed.take_endpoints(d.view));
}

TEST(DnsFeed, OnlyTheLowestPriorityWithAnAddressIsUsed) {
    DnsServer dns;
    // Priority 10's only target has no address yet; 20 is next; 30 waits.
    ASSERT_TRUE(dns.start(R"(
srv-host=_http._tcp.web.mesh.test,web-1.mesh.test,8080,10,1
srv-host=_http._tcp.web.mesh.test,web-2.mesh.test,8080,20,1
srv-host=_http._tcp.web.mesh.test,web-3.mesh.test,8080,20,2
srv-host=_http._tcp.web.mesh.test,web-4.mesh.test,8080,30,1
host-record=web-2.mesh.test,198.18.1.12
host-record=web-3.mesh.test,198.18.1.13
host-record=web-4.mesh.test,198.18.1.14
)")) << dns.log();
    Driver d(settings_for(dns.address(), {{"web", "_http._tcp.web.mesh.test"}}));
    ASSERT_TRUE(d.run_until(milliseconds(1000), [&] { return current(d.feed); }))
        << d.feed.status().detail;
    EXPECT_EQ(d.view.at("web"), (std::vector<Endpoint>{
                                    endpoint("198.18.1.12", 8080, 1, "web-2.mesh.test"),
                                    endpoint("198.18.1.13", 8080, 2, "web-3.mesh.test")}));
    EXPECT_TRUE(d.notes_mention("web", "web-1.mesh.test: no A or AAAA records, skipped"));

    // web-1 gets an address: priority 10 takes over at the next refresh.
    ASSERT_TRUE(dns.set_hosts("198.18.1.11 web-1.mesh.test")) << dns.log();
    ASSERT_TRUE(d.run_until(milliseconds(2000), [&] { return d.view["web"].size() == 1; }));
    EXPECT_EQ(d.view.at("web"),
              (std::vector<Endpoint>{endpoint("198.18.1.11", 8080, 1, "web-1.mesh.test")}));
    EXPECT_TRUE(d.report("web").notes.empty());
}

TEST(DnsFeed, TargetsWithoutAddressesAreSkippedAndReported) {
    DnsServer dns;
    ASSERT_TRUE(dns.start(R"(
srv-host=_http._tcp.web.mesh.test,web-1.mesh.test,8080,10,1
srv-host=_http._tcp.web.mesh.test,gone.mesh.test,8080,10,1
srv-host=_http._tcp.web.mesh.test,local.mesh.test,8080,10,1
host-record=web-1.mesh.test,198.18.1.11
host-record=local.mesh.test,127.0.0.1
)")) << dns.log();
    Driver d(settings_for(dns.address(), {{"web", "_http._tcp.web.mesh.test"}}));
    ASSERT_TRUE(d.run_until(milliseconds(1000), [&] { return current(d.feed); }))
        << d.feed.status().detail;
    EXPECT_EQ(d.view.at("web"),
              (std::vector<Endpoint>{endpoint("198.18.1.11", 8080, 1, "web-1.mesh.test")}));
    EXPECT_TRUE(d.notes_mention("web", "gone.mesh.test: no A or AAAA records, skipped"));
    EXPECT_TRUE(d.notes_mention("web", "local.mesh.test: 127.0.0.1 is not a unicast address"));
    // Skipping a target is the registry's answer, not a failure of the feed.
    EXPECT_EQ(d.feed.status().detail, "");
}

TEST(DnsFeed, AChangeIsSeenWithinItsTtl) {
    DnsServer dns;
    constexpr uint32_t ttl_s = 2;
    ASSERT_TRUE(dns.start("srv-host=_http._tcp.web.mesh.test,web-1.mesh.test,8080,10,1", ttl_s))
        << dns.log();
    ASSERT_TRUE(dns.set_hosts("198.18.1.11 web-1.mesh.test"));
    Driver d(settings_for(dns.address(), {{"web", "_http._tcp.web.mesh.test"}}));
    ASSERT_TRUE(d.run_until(milliseconds(1000), [&] { return current(d.feed); }));
    ASSERT_EQ(d.view.at("web"),
              (std::vector<Endpoint>{endpoint("198.18.1.11", 8080, 1, "web-1.mesh.test")}));
    EXPECT_EQ(d.report("web").ttl_s, ttl_s);

    // The next lookup comes at the TTL, up to 10% early, and finding the
    // same records it delivers nothing new.
    const size_t taken = d.views_taken;
    const auto answered = Clock::now();
    ASSERT_TRUE(d.run_until(milliseconds(ttl_s * 1000 + 1000),
                            [&] { return d.report("web").lookups >= 2; }));
    const auto refreshed_after = std::chrono::duration_cast<milliseconds>(Clock::now() - answered);
    EXPECT_GE(refreshed_after.count(), ttl_s * 900 - 50);
    EXPECT_LE(refreshed_after.count(), ttl_s * 1000 + 300);
    d.run_for(milliseconds(100));
    EXPECT_EQ(d.views_taken, taken);

    // The address changes: seen within the TTL (+1 s for the round trip and
    // the loop), whenever in the TTL it happens.
    ASSERT_TRUE(dns.set_hosts("198.18.1.21 web-1.mesh.test"));
    const auto changed = Clock::now();
    ASSERT_TRUE(d.run_until(milliseconds(ttl_s * 1000 + 1000), [&] {
        return d.view.at("web").front().address == ip("198.18.1.21");
    }));
    const auto seen_after = std::chrono::duration_cast<milliseconds>(Clock::now() - changed);
    EXPECT_LE(seen_after.count(), ttl_s * 1000 + 1000);

    // A new SRV record (dnsmasq restarts for it): seen within the TTL too.
    ASSERT_TRUE(dns.start(R"(
srv-host=_http._tcp.web.mesh.test,web-1.mesh.test,8080,10,1
srv-host=_http._tcp.web.mesh.test,web-2.mesh.test,8081,10,3
host-record=web-2.mesh.test,198.18.1.22
)", ttl_s)) << dns.log();
    ASSERT_TRUE(d.run_until(milliseconds(ttl_s * 1000 + 1000),
                            [&] { return d.view.at("web").size() == 2; }));
    EXPECT_EQ(d.view.at("web"), (std::vector<Endpoint>{
                                    endpoint("198.18.1.21", 8080, 1, "web-1.mesh.test"),
                                    endpoint("198.18.1.22", 8081, 3, "web-2.mesh.test")}));

    // dnsmasq agrees: a query per TTL or so over the test's ~3 TTLs (one
    // more should a refresh have met the restart).
    const size_t srv_queries = dns.queries("SRV", "_http._tcp.web.mesh.test");
    EXPECT_GE(srv_queries, 3u);
    EXPECT_LE(srv_queries, 6u) << dns.log();
}

TEST(DnsFeed, NxdomainAndNodataAreCurrentEmptyAnswers) {
    DnsServer dns;
    ASSERT_TRUE(dns.start("host-record=web.mesh.test,198.18.1.11")) << dns.log();
    DnsFeedSettings settings = settings_for(dns.address(), {{"gone", "_http._tcp.gone.mesh.test"},
                                                            {"plain", "web.mesh.test"}});
    settings.negative_refresh_s = 7;
    Driver d(settings);
    ASSERT_TRUE(d.run_until(milliseconds(1000), [&] { return current(d.feed); }))
        << d.feed.status().detail;
    ASSERT_TRUE(d.view.contains("gone"));
    EXPECT_TRUE(d.view.at("gone").empty());
    EXPECT_TRUE(d.view.at("plain").empty());
    EXPECT_EQ(d.feed.status().detail, "");
    EXPECT_TRUE(d.notes_mention("gone", "no SRV records (NXDOMAIN)"));
    EXPECT_TRUE(d.notes_mention("plain", "no SRV records"));
    // dnsmasq sends no SOA, so the negative refresh applies.
    EXPECT_EQ(d.report("gone").ttl_s, 7u);
    EXPECT_EQ(d.report("gone").health, FeedHealth::current);
}

TEST(DnsFeed, ALostServerLeavesTheLastViewStaleUntilItReturns) {
    DnsServer dns;
    const std::string records = R"(
srv-host=_http._tcp.web.mesh.test,web-1.mesh.test,8080,10,1
host-record=web-1.mesh.test,198.18.1.11
)";
    ASSERT_TRUE(dns.start(records)) << dns.log();
    Driver d(settings_for(dns.address(), {{"web", "_http._tcp.web.mesh.test"}}));
    ASSERT_TRUE(d.run_until(milliseconds(1000), [&] { return current(d.feed); }));
    const EndpointSet before = d.view;
    ASSERT_EQ(before.at("web").size(), 1u);

    dns.stop();
    // The next refresh (TTL 1 s) finds the port closed.
    ASSERT_TRUE(d.run_until(milliseconds(2500), [&] {
        return d.feed.status().health == FeedHealth::stale;
    }));
    const FeedStatus stale = d.feed.status();
    EXPECT_NE(stale.detail.find("web (_http._tcp.web.mesh.test): SRV lookup: connection refused"),
              std::string::npos)
        << stale.detail;
    EXPECT_EQ(d.report("web").health, FeedHealth::stale);
    // Retries back off, and the view stays as it was.
    const size_t taken = d.views_taken;
    d.run_for(milliseconds(600));
    EXPECT_EQ(d.views_taken, taken);
    EXPECT_EQ(d.view, before);
    EXPECT_EQ(d.feed.status().health, FeedHealth::stale);

    ASSERT_TRUE(dns.start(records)) << dns.log();
    // Back at the next retry (at most retry_max_ms = 400 ms away).
    ASSERT_TRUE(d.run_until(milliseconds(1000), [&] { return current(d.feed); }))
        << d.feed.status().detail;
    EXPECT_EQ(d.feed.status().detail, "");
    EXPECT_EQ(d.view, before);
}

// A DNS server written for one test: a UDP socket, serviced from the test's
// loop by answer(), which replies to each query by its type as `replies`
// says (SERVFAIL for a type it does not list). Until answer() is called it
// takes queries and answers none.
struct ScriptedServer {
    struct Reply {
        uint8_t rcode = 0;
        std::vector<std::vector<uint8_t>> rdata;  // records of the asked type, TTL 1
    };

    ScriptedServer() {
        fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        ::bind(fd, reinterpret_cast<sockaddr *>(&address), length);
        ::getsockname(fd, reinterpret_cast<sockaddr *>(&address), &length);
        port = ntohs(address.sin_port);
    }
    ~ScriptedServer() { ::close(fd); }
    std::string address() const { return "127.0.0.1:" + std::to_string(port); }

    void answer() {
        uint8_t query[512];
        sockaddr_in peer{};
        socklen_t length = sizeof peer;
        for (;;) {
            const ssize_t got = ::recvfrom(fd, query, sizeof query, 0,
                                           reinterpret_cast<sockaddr *>(&peer), &length);
            if (got < 12)
                return;
            size_t end = 12;  // the question's name: uncompressed, as c-ares writes it
            while (end < size_t(got) && query[end] != 0)
                end += 1 + query[end];
            if (end + 5 > size_t(got))
                continue;
            const uint16_t type = uint16_t(query[end + 1] << 8 | query[end + 2]);
            const auto found = replies.find(type);
            const Reply reply = found == replies.end() ? Reply{2, {}} : found->second;
            Message m;
            m.u16(uint16_t(query[0] << 8 | query[1]))
                .u16(uint16_t(0x8400 | (query[2] & 0x01) << 8 | reply.rcode))
                .u16(1).u16(uint16_t(reply.rdata.size())).u16(0).u16(0);
            m.bytes.insert(m.bytes.end(), query + 12, query + end + 5);
            for (const std::vector<uint8_t> &rdata : reply.rdata) {
                m.pointer(question_offset).record(type, 1, uint16_t(rdata.size()));
                m.bytes.insert(m.bytes.end(), rdata.begin(), rdata.end());
            }
            ::sendto(fd, m.bytes.data(), m.bytes.size(), 0, reinterpret_cast<sockaddr *>(&peer),
                     length);
        }
    }

    std::map<uint16_t, Reply> replies;
    int fd = -1;
    uint16_t port = 0;
};

std::vector<uint8_t> srv_rdata(uint16_t priority, uint16_t weight, uint16_t port,
                               const std::string &target) {
    return Message().u16(priority).u16(weight).u16(port).labels(target).bytes;
}

TEST(DnsFeed, UnansweredQueriesMakeTheNameStaleNotStarting) {
    ScriptedServer server;
    DnsFeedSettings settings = settings_for(server.address(), {{"web", "_http._tcp.web.mesh.test"}});
    settings.query_timeout_ms = 100;
    settings.tries = 1;
    Driver d(settings);
    ASSERT_TRUE(d.run_until(milliseconds(1000), [&] {
        return d.feed.status().health == FeedHealth::stale;
    }));
    EXPECT_NE(d.feed.status().detail.find("SRV lookup: timed out"), std::string::npos)
        << d.feed.status().detail;
    // Never answered: the feed has no opinion on the service yet.
    EXPECT_EQ(d.views_taken, 0u);
    EXPECT_FALSE(d.view.contains("web"));
}

TEST(DnsFeed, ServfailMakesTheNameStale) {
    ScriptedServer server;
    Driver d(settings_for(server.address(), {{"web", "_http._tcp.web.mesh.test"}}));
    d.also_poll = server.fd;
    ASSERT_TRUE(d.run_until(milliseconds(1000), [&] {
        server.answer();
        return d.feed.status().health == FeedHealth::stale;
    }));
    EXPECT_NE(d.feed.status().detail.find("server failure (SERVFAIL)"), std::string::npos)
        << d.feed.status().detail;
    EXPECT_EQ(d.report("web").detail.find("SRV lookup: server failure (SERVFAIL) (1 failure"), 0u)
        << d.report("web").detail;
}

// With several servers c-ares moves on from one that fails (and then cannot
// say whether they refused the connection or answered SERVFAIL).
TEST(DnsFeed, TheNextServerIsAskedWhenOneFails) {
    ScriptedServer failing;
    DnsServer dns;
    ASSERT_TRUE(dns.start(R"(
srv-host=_http._tcp.web.mesh.test,web-1.mesh.test,8080,10,1
host-record=web-1.mesh.test,198.18.1.11
)")) << dns.log();
    DnsFeedSettings settings = settings_for(failing.address(), {{"web", "_http._tcp.web.mesh.test"}});
    settings.servers.push_back(dns.address());
    Driver d(settings);
    d.also_poll = failing.fd;
    ASSERT_TRUE(d.run_until(milliseconds(1000), [&] {
        failing.answer();
        return current(d.feed);
    })) << d.feed.status().detail;
    EXPECT_EQ(d.view.at("web"),
              (std::vector<Endpoint>{endpoint("198.18.1.11", 8080, 1, "web-1.mesh.test")}));

    ScriptedServer also_failing;
    settings.servers = {failing.address(), also_failing.address()};
    Driver both(settings);
    ASSERT_TRUE(both.run_until(milliseconds(1000), [&] {
        failing.answer();
        also_failing.answer();
        return both.feed.status().health == FeedHealth::stale;
    }));
    EXPECT_NE(both.feed.status().detail.find("SERVFAIL, REFUSED or NOTIMP from every server"),
              std::string::npos)
        << both.feed.status().detail;
}

// A target whose A lookup fails keeps its last known addresses, and the
// name is stale until the lookup succeeds again.
TEST(DnsFeed, AFailedAddressLookupKeepsThatTargetsLastAddresses) {
    ScriptedServer server;
    constexpr uint16_t srv = 33, a = 1, aaaa = 28;
    server.replies[srv] = {0, {srv_rdata(10, 1, 8080, "web-1.mesh.test")}};
    server.replies[a] = {0, {{198, 18, 1, 11}}};
    server.replies[aaaa] = {0, {}};  // NODATA
    Driver d(settings_for(server.address(), {{"web", "_http._tcp.web.mesh.test"}}));
    d.also_poll = server.fd;
    const auto answered = [&](const std::function<bool()> &done) {
        return [&server, done] {
            server.answer();
            return done();
        };
    };
    ASSERT_TRUE(d.run_until(milliseconds(1000), answered([&] { return current(d.feed); })))
        << d.feed.status().detail;
    const std::vector<Endpoint> web = {endpoint("198.18.1.11", 8080, 1, "web-1.mesh.test")};
    ASSERT_EQ(d.view.at("web"), web);

    // A fails (SERVFAIL) while the SRV set gains a target: web-1 keeps its
    // address, web-2 has none known and makes no endpoint.
    server.replies.erase(a);
    server.replies[srv].rdata.push_back(srv_rdata(10, 1, 8080, "web-2.mesh.test"));
    ASSERT_TRUE(d.run_until(milliseconds(2000), answered([&] {
        return d.feed.status().health == FeedHealth::stale;
    })));
    EXPECT_EQ(d.view.at("web"), web);
    const std::string detail = d.report("web").detail;
    EXPECT_NE(detail.find("web-1.mesh.test A lookup: server failure (SERVFAIL)"),
              std::string::npos) << detail;
    EXPECT_NE(detail.find("web-2.mesh.test A lookup: server failure (SERVFAIL)"),
              std::string::npos) << detail;

    // A answers again: current, with both targets.
    server.replies[a] = {0, {{198, 18, 1, 11}}};
    ASSERT_TRUE(d.run_until(milliseconds(1000), answered([&] { return current(d.feed); })))
        << d.feed.status().detail;
    EXPECT_EQ(d.view.at("web").size(), 1u);  // both targets have 198.18.1.11:8080
    EXPECT_EQ(d.view.at("web").front().weight, 2u);
}

// Failed lookups never empty a view, nor make one for a name never answered.
TEST(DnsFeed, FailedAddressLookupsAloneMakeNoView) {
    ScriptedServer server;
    server.replies[33] = {0, {srv_rdata(10, 1, 8080, "web-1.mesh.test")}};
    Driver d(settings_for(server.address(), {{"web", "_http._tcp.web.mesh.test"}}));
    d.also_poll = server.fd;
    ASSERT_TRUE(d.run_until(milliseconds(1000), [&] {
        server.answer();
        return d.feed.status().health == FeedHealth::stale;
    }));
    EXPECT_FALSE(d.view.contains("web"));
    EXPECT_EQ(d.views_taken, 0u);
}

TEST(DnsFeed, NoServicesNoTimer) {
    DnsFeed feed(settings_for("127.0.0.1:53", {}), 1);
    EXPECT_EQ(feed.timeout_ms(), -1);
    feed.service();
    EXPECT_EQ(feed.status().health, FeedHealth::current);
    EndpointSet view;
    EXPECT_FALSE(feed.take_endpoints(view));
}

} // namespace
} // namespace sluice::ctrl
