// The etcd feed and registration against a real etcd (tests/fixtures/
// etcd_server.h), driven as sluiced's loop drives them: poll(fd, timeout_ms)
// then service(). The feed's promises: a complete first view, puts and
// deletes in well under a second, bad keys skipped and reported, the last
// view kept while etcd is gone, a resync after compaction, changes made
// while cut off replayed without a reload, a hung etcd noticed, 10,000
// endpoints loaded in bounded time, auth and TLS. The registration's: the
// key while alive, gone on stop() and by lease expiry after a crash, back
// after its lease was lost. Writes go through the real etcdctl, or the JSON
// gateway for bulk.
#include "ctrl/etcd_feed.h"
#include "ctrl/etcd_registration.h"

#include <poll.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/fixtures/etcd_server.h"
#include "tests/fixtures/tcp_proxy.h"

namespace sluice::ctrl {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using test::EtcdServer;
using test::TcpProxy;

const char *const endpoint_a = R"({"address": "198.18.1.11", "port": 8080})";
const char *const endpoint_b = R"({"address": "198.18.1.12", "port": 8080, "weight": 2})";

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Services one client (a feed or a registration) until `done` or `limit`.
template <typename Client, typename Done>
bool drive(Client &client, milliseconds limit, Done done) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
        client.service();
        if (done())
            return true;
        const auto now = Clock::now();
        if (now >= deadline)
            return false;
        // Wake at least every 20 ms: `done` may wait on something else.
        int wait = client.timeout_ms();
        if (wait < 0 || wait > 20)
            wait = 20;
        pollfd ready{client.fd(), POLLIN, 0};
        ::poll(&ready, 1, wait);
    }
}

template <typename Client>
void drive_for(Client &client, milliseconds time) {
    drive(client, time, [] { return false; });
}

EtcdSettings settings_for(const std::string &endpoint, const std::string &prefix) {
    EtcdSettings settings;
    settings.name = "mesh";
    settings.endpoints = {endpoint};
    settings.prefix = prefix;
    return settings;
}

// service/id for every endpoint, in the set's order.
std::vector<std::string> ids(const EndpointSet &set) {
    std::vector<std::string> out;
    for (const auto &[service, endpoints] : set)
        for (const Endpoint &endpoint : endpoints)
            out.push_back(service + "/" + endpoint.id);
    return out;
}

using Ids = std::vector<std::string>;

// Drives `feed` until its view is `expected`; the view in `view`.
bool view_becomes(EtcdFeed &feed, const Ids &expected, EndpointSet &view,
                  milliseconds limit = milliseconds(3000)) {
    return drive(feed, limit, [&] {
        feed.take_endpoints(view);
        return ids(view) == expected;
    });
}

int64_t current_revision(const EtcdServer &etcd) {
    const EtcdJson answer =
        EtcdJson::parse(etcd.post("/v3/kv/range", R"({"key": "AA=="})"), nullptr, false);
    return answer.is_object() ? etcd_int(answer["header"], "revision").value_or(0) : 0;
}

bool put(const EtcdServer &etcd, const std::string &key, const std::string &value) {
    return etcd.etcdctl({"put", key, value}) == 0;
}

bool del(const EtcdServer &etcd, const std::string &key) {
    return etcd.etcdctl({"del", key}) == 0;
}

std::string get(const EtcdServer &etcd, const std::string &key) {
    std::string out;
    etcd.etcdctl({"get", "--print-value-only", key}, &out);
    while (!out.empty() && out.back() == '\n')
        out.pop_back();
    return out;
}

// One etcd for the tests that do not stop it or change its settings; each
// test keeps to a prefix of its own.
class EtcdFeedTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { etcd_ = new EtcdServer(); }
    static void TearDownTestSuite() {
        delete etcd_;
        etcd_ = nullptr;
    }
    void SetUp() override { ASSERT_TRUE(etcd_->running()) << "etcd did not start"; }
    static EtcdServer &etcd() { return *etcd_; }

    static EtcdServer *etcd_;
};
EtcdServer *EtcdFeedTest::etcd_ = nullptr;

TEST_F(EtcdFeedTest, FirstViewIsCompleteSortedAndTakenOnce) {
    ASSERT_TRUE(put(etcd(), "/t/first/web/b", endpoint_b));
    ASSERT_TRUE(put(etcd(), "/t/first/web/a", endpoint_a));
    ASSERT_TRUE(put(etcd(), "/t/first/api/x", R"({"address": "2001:db8::7", "zone": "z1"})"));
    ASSERT_TRUE(put(etcd(), "/t/first-other/web/z", endpoint_a));  // next to the prefix, not in it
    const int64_t revision = current_revision(etcd());

    EtcdFeed feed(settings_for(etcd().endpoint(), "/t/first"), 1);
    EXPECT_EQ(feed.status().health, FeedHealth::starting);
    EndpointSet view;
    ASSERT_TRUE(view_becomes(feed, {"api/x", "web/a", "web/b"}, view)) << feed.status().detail;
    EXPECT_EQ(view["web"][1].weight, 2u);
    EXPECT_EQ(view["web"][0].address, *parse_ip_address("198.18.1.11"));
    EXPECT_EQ(view["api"][0].zone, "z1");
    const FeedStatus status = feed.status();
    EXPECT_EQ(status.name, "mesh");
    EXPECT_EQ(status.kind, "etcd");
    EXPECT_EQ(status.health, FeedHealth::current);
    EXPECT_EQ(status.detail, "");
    EXPECT_EQ(status.revision, std::to_string(revision));
    EXPECT_EQ(status.updates, 1u);
    drive_for(feed, milliseconds(100));
    EXPECT_FALSE(feed.take_endpoints(view));  // once per change
}

TEST_F(EtcdFeedTest, PutIsSeenWithinOneSecond) {
    EtcdFeed feed(settings_for(etcd().endpoint(), "/t/latency"), 2);
    EndpointSet view;
    ASSERT_TRUE(drive(feed, milliseconds(3000), [&] {
        return feed.counters().watches == 1 && feed.take_endpoints(view);
    }));
    EXPECT_TRUE(view.empty());  // an empty prefix is a view too

    const std::string key = base64_encode("/t/latency/web/a");
    const auto start = Clock::now();
    ASSERT_NE(etcd()
                  .post("/v3/kv/put", R"({"key": ")" + key + R"(", "value": ")" +
                                          base64_encode(endpoint_a) + R"("})")
                  .find("revision"),
              std::string::npos);
    ASSERT_TRUE(view_becomes(feed, {"web/a"}, view, milliseconds(2000)));
    const double latency = ms_since(start);
    std::printf("[   info   ] etcd put to feed view: %.1f ms\n", latency);
    EXPECT_LT(latency, 1000.0);
}

TEST_F(EtcdFeedTest, DeleteRemovesTheEndpointAndAnEmptyService) {
    ASSERT_TRUE(put(etcd(), "/t/delete/web/a", endpoint_a));
    ASSERT_TRUE(put(etcd(), "/t/delete/web/b", endpoint_b));
    ASSERT_TRUE(put(etcd(), "/t/delete/api/x", endpoint_a));
    EtcdFeed feed(settings_for(etcd().endpoint(), "/t/delete"), 3);
    EndpointSet view;
    ASSERT_TRUE(view_becomes(feed, {"api/x", "web/a", "web/b"}, view));
    ASSERT_TRUE(del(etcd(), "/t/delete/web/a"));
    ASSERT_TRUE(view_becomes(feed, {"api/x", "web/b"}, view));
    ASSERT_TRUE(del(etcd(), "/t/delete/api/x"));
    ASSERT_TRUE(view_becomes(feed, {"web/b"}, view));
    EXPECT_FALSE(view.contains("api"));
    EXPECT_EQ(feed.counters().range_reads, 1u);  // events, not reloads
}

TEST_F(EtcdFeedTest, BadKeysAndValuesAreSkippedAndReported) {
    ASSERT_TRUE(put(etcd(), "/t/bad/web/a", endpoint_a));
    ASSERT_TRUE(put(etcd(), "/t/bad/web/b", R"({"address": "not an address"})"));
    ASSERT_TRUE(put(etcd(), "/t/bad/web", endpoint_a));      // no endpoint id
    ASSERT_TRUE(put(etcd(), "/t/bad/web/x/y", endpoint_a));  // too deep
    ASSERT_TRUE(put(etcd(), "/t/bad/Web/c", endpoint_a));    // not a service name
    EtcdFeed feed(settings_for(etcd().endpoint(), "/t/bad"), 4);
    EndpointSet view;
    ASSERT_TRUE(view_becomes(feed, {"web/a"}, view));
    FeedStatus status = feed.status();
    EXPECT_EQ(status.health, FeedHealth::current);
    EXPECT_EQ(feed.counters().skipped_keys, 4u);
    EXPECT_NE(status.detail.find("4 keys skipped"), std::string::npos) << status.detail;
    EXPECT_NE(status.detail.find("/t/bad/Web/c: service: expected"), std::string::npos)
        << status.detail;
    EXPECT_NE(status.detail.find("/t/bad/web/b: address: expected a unicast"), std::string::npos)
        << status.detail;
    EXPECT_NE(status.detail.find("/t/bad/web: not <prefix>/<service>/<endpoint-id>"),
              std::string::npos) << status.detail;
    EXPECT_NE(status.detail.find("and 1 more"), std::string::npos) << status.detail;

    // Mended by a watch event; and a good endpoint spoiled leaves the view.
    ASSERT_TRUE(put(etcd(), "/t/bad/web/b", endpoint_b));
    ASSERT_TRUE(view_becomes(feed, {"web/a", "web/b"}, view));
    EXPECT_EQ(feed.counters().skipped_keys, 3u);
    ASSERT_TRUE(put(etcd(), "/t/bad/web/a", R"({"address": "198.18.1.11", "colour": "red"})"));
    ASSERT_TRUE(view_becomes(feed, {"web/b"}, view));
    status = feed.status();
    EXPECT_NE(status.detail.find("/t/bad/web/a: colour: unknown key"), std::string::npos)
        << status.detail;
}

TEST(EtcdFeedRestart, StaleWithTheLastViewWhileEtcdIsDownThenCurrentAgain) {
    EtcdServer etcd;
    ASSERT_TRUE(etcd.running());
    ASSERT_TRUE(put(etcd, "/t/restart/web/a", endpoint_a));
    EtcdFeed feed(settings_for(etcd.endpoint(), "/t/restart"), 5);
    EndpointSet view;
    ASSERT_TRUE(view_becomes(feed, {"web/a"}, view));

    etcd.stop();
    // Stale at once; what it says may first be etcd's own word as it shuts
    // down ("grpc: the client connection is closing"), then the refusal.
    const std::string refused = "cannot connect to " + etcd.endpoint() + ": connection refused";
    ASSERT_TRUE(drive(feed, milliseconds(3000), [&] {
        return feed.status().health == FeedHealth::stale &&
               feed.status().detail.find(refused) != std::string::npos;
    })) << feed.status().detail;
    const FeedStatus status = feed.status();
    EXPECT_FALSE(feed.take_endpoints(view));  // the last view stays: no empty set
    EXPECT_EQ(status.revision.empty(), false);

    ASSERT_TRUE(etcd.start());
    ASSERT_TRUE(put(etcd, "/t/restart/web/b", endpoint_b));
    ASSERT_TRUE(del(etcd, "/t/restart/web/a"));
    ASSERT_TRUE(view_becomes(feed, {"web/b"}, view, milliseconds(8000)));
    ASSERT_TRUE(drive(feed, milliseconds(2000),
                      [&] { return feed.status().health == FeedHealth::current; }));
    EXPECT_EQ(feed.status().detail, "");
}

TEST_F(EtcdFeedTest, ChangesWhileCutOffAreReplayedWithoutAReload) {
    TcpProxy proxy(etcd().port());
    ASSERT_TRUE(put(etcd(), "/t/cut/web/a", endpoint_a));
    EtcdFeed feed(settings_for(proxy.endpoint(), "/t/cut"), 6);
    EndpointSet view;
    ASSERT_TRUE(view_becomes(feed, {"web/a"}, view));

    proxy.cut();
    ASSERT_TRUE(drive(feed, milliseconds(3000),
                      [&] { return feed.status().health == FeedHealth::stale; }));
    ASSERT_TRUE(put(etcd(), "/t/cut/web/b", endpoint_b));
    ASSERT_TRUE(del(etcd(), "/t/cut/web/a"));
    proxy.restore();
    ASSERT_TRUE(view_becomes(feed, {"web/b"}, view, milliseconds(8000)));
    EXPECT_EQ(feed.status().health, FeedHealth::current);
    EXPECT_EQ(feed.counters().range_reads, 1u);  // the watch resumed at its revision
}

TEST_F(EtcdFeedTest, CompactionWhileCutOffTriggersAResync) {
    TcpProxy proxy(etcd().port());
    ASSERT_TRUE(put(etcd(), "/t/compact/web/a", endpoint_a));
    EtcdFeed feed(settings_for(proxy.endpoint(), "/t/compact"), 7);
    EndpointSet view;
    ASSERT_TRUE(view_becomes(feed, {"web/a"}, view));

    proxy.cut();
    ASSERT_TRUE(drive(feed, milliseconds(3000),
                      [&] { return feed.status().health == FeedHealth::stale; }));
    ASSERT_TRUE(put(etcd(), "/t/compact/web/b", endpoint_b));
    ASSERT_TRUE(del(etcd(), "/t/compact/web/a"));
    ASSERT_TRUE(put(etcd(), "/t/compact/web/c", endpoint_a));
    ASSERT_EQ(etcd().etcdctl({"compaction", std::to_string(current_revision(etcd()))}), 0);
    proxy.restore();
    ASSERT_TRUE(view_becomes(feed, {"web/b", "web/c"}, view, milliseconds(8000)));
    EXPECT_EQ(feed.status().health, FeedHealth::current);
    EXPECT_EQ(feed.counters().range_reads, 2u);  // the watch's revision was gone: read again
    EXPECT_EQ(feed.status().revision, std::to_string(current_revision(etcd())));
}

TEST_F(EtcdFeedTest, SilentWatchIsRenewedAndAHungEtcdMakesTheFeedStale) {
    TcpProxy proxy(etcd().port());
    EtcdSettings settings = settings_for(proxy.endpoint(), "/t/silent");
    settings.watch_silence_ms = 400;
    settings.request_timeout_ms = 500;
    ASSERT_TRUE(put(etcd(), "/t/silent/web/a", endpoint_a));
    EtcdFeed feed(settings, 8);
    EndpointSet view;
    ASSERT_TRUE(view_becomes(feed, {"web/a"}, view));

    // etcd sends nothing on an idle prefix (its progress notifications come
    // every 10 minutes by default): the watch is renewed in place, the feed
    // stays current.
    bool always_current = true;
    drive(feed, milliseconds(1500), [&] {
        always_current = always_current && feed.status().health == FeedHealth::current;
        return false;
    });
    EXPECT_TRUE(always_current) << feed.status().detail;
    EXPECT_GE(feed.counters().watches, 3u);
    EXPECT_EQ(feed.counters().range_reads, 1u);
    ASSERT_TRUE(put(etcd(), "/t/silent/web/b", endpoint_b));
    ASSERT_TRUE(view_becomes(feed, {"web/a", "web/b"}, view));

    // No byte passes any more, though connections open: a hung etcd.
    proxy.freeze();
    const auto frozen = Clock::now();
    ASSERT_TRUE(drive(feed, milliseconds(3000),
                      [&] { return feed.status().health == FeedHealth::stale; }));
    std::printf("[   info   ] hung etcd noticed after %.0f ms (silence 400 ms, request 500 ms)\n",
                ms_since(frozen));
    EXPECT_NE(feed.status().detail.find("did not answer /v3/watch within 500 ms"),
              std::string::npos) << feed.status().detail;
    EXPECT_FALSE(feed.take_endpoints(view));
    proxy.restore();
    ASSERT_TRUE(drive(feed, milliseconds(8000),
                      [&] { return feed.status().health == FeedHealth::current; }));
}

TEST_F(EtcdFeedTest, TenThousandEndpointsLoad) {
    constexpr int services = 100, per_service = 100, per_txn = 100;
    std::string body;
    int in_txn = 0;
    for (int s = 0; s < services; ++s) {
        for (int e = 0; e < per_service; ++e) {
            const std::string key = "/t/load/svc-" + std::to_string(s) + "/ep-" + std::to_string(e);
            const std::string value = R"({"address": "198.18.)" + std::to_string(s) + "." +
                                      std::to_string(e + 1) + R"(", "port": 8080})";
            body += std::string(in_txn ? "," : R"({"success": [)") +
                    R"({"request_put": {"key": ")" +
                    base64_encode(key) + R"(", "value": ")" + base64_encode(value) + R"("}})";
            if (++in_txn == per_txn) {
                ASSERT_NE(etcd().post("/v3/kv/txn", body + "]}").find("\"succeeded\":true"),
                          std::string::npos);
                body.clear();
                in_txn = 0;
            }
        }
    }
    const auto start = Clock::now();
    EtcdFeed feed(settings_for(etcd().endpoint(), "/t/load"), 9);
    EndpointSet view;
    ASSERT_TRUE(drive(feed, milliseconds(10000), [&] { return feed.take_endpoints(view); }));
    const double load = ms_since(start);
    std::printf("[   info   ] 10000 endpoints loaded by a new etcd feed in %.0f ms\n", load);
    size_t total = 0;
    for (const auto &[service, endpoints] : view) {
        total += endpoints.size();
        EXPECT_TRUE(std::is_sorted(endpoints.begin(), endpoints.end(),
                                   [](const Endpoint &a, const Endpoint &b) {
                                       return a.id < b.id;
                                   }));
    }
    EXPECT_EQ(view.size(), size_t(services));
    EXPECT_EQ(total, size_t(services * per_service));
    EXPECT_EQ(feed.status().health, FeedHealth::current);
    EXPECT_LT(load, 10000.0);
}

TEST(EtcdFeedAuth, UserAndPasswordWorkAndAWrongPasswordIsStale) {
    // Tokens unused for a second are dropped: a resumed watch finds its token gone.
    EtcdServer etcd({"--auth-token-ttl", "1"});
    ASSERT_TRUE(etcd.running());
    ASSERT_EQ(etcd.etcdctl({"user", "add", "root:rootpw"}), 0);
    ASSERT_EQ(etcd.etcdctl({"auth", "enable"}), 0);
    etcd.set_etcdctl_flags({"--user", "root:rootpw"});
    ASSERT_TRUE(put(etcd, "/t/auth/web/a", endpoint_a));
    TcpProxy proxy(etcd.port());

    EtcdSettings settings = settings_for(proxy.endpoint(), "/t/auth");
    settings.username = "root";
    settings.password = "rootpw";
    EtcdFeed feed(settings, 10);
    EndpointSet view;
    ASSERT_TRUE(view_becomes(feed, {"web/a"}, view)) << feed.status().detail;

    settings.password = "wrong";
    EtcdFeed refused(settings, 11);
    ASSERT_TRUE(drive(refused, milliseconds(3000),
                      [&] { return refused.status().health == FeedHealth::stale; }));
    EXPECT_NE(refused.status().detail.find("refused user \"root\": etcdserver: authentication "
                                           "failed, invalid user ID or password"),
              std::string::npos) << refused.status().detail;
    EXPECT_FALSE(refused.take_endpoints(view));

    // Without a user, etcd refuses the reads themselves.
    EtcdFeed anonymous(settings_for(etcd.endpoint(), "/t/auth"), 12);
    ASSERT_TRUE(drive(anonymous, milliseconds(3000),
                      [&] { return anonymous.status().health == FeedHealth::stale; }));
    EXPECT_NE(anonymous.status().detail.find("user name is empty"), std::string::npos)
        << anonymous.status().detail;

    // The first feed's token expires; cut off, it comes back with it, is
    // refused, authenticates again.
    drive_for(feed, milliseconds(2500));
    proxy.cut();
    ASSERT_TRUE(drive(feed, milliseconds(3000),
                      [&] { return feed.status().health == FeedHealth::stale; }));
    ASSERT_TRUE(put(etcd, "/t/auth/web/b", endpoint_b));
    proxy.restore();
    ASSERT_TRUE(view_becomes(feed, {"web/a", "web/b"}, view, milliseconds(8000)))
        << feed.status().detail;
    EXPECT_EQ(feed.status().health, FeedHealth::current);
}

TEST(EtcdFeedTls, VerifiedServerAndClientCertificates) {
    char name[] = "/tmp/sluice-tls-XXXXXX";
    ASSERT_NE(::mkdtemp(name), nullptr);
    const std::string dir = name;
    struct Removed {
        std::string dir;
        ~Removed() {
            std::error_code ignored;
            std::filesystem::remove_all(dir, ignored);
        }
    } removed{dir};  // also when an assertion ends the test early
    const auto openssl = [&](std::vector<std::string> args) {
        args.insert(args.begin(), "/usr/bin/openssl");
        std::string out;
        const int status = test::run_program(args, &out);
        EXPECT_EQ(status, 0) << out;
        return status == 0;
    };
    const auto file = [&](const std::string &leaf, const std::string &text) {
        FILE *f = std::fopen((dir + "/" + leaf).c_str(), "w");
        std::fputs(text.c_str(), f);
        std::fclose(f);
    };
    // etcd's gateway dials etcd's own gRPC with the server certificate as its
    // client certificate: with --client-cert-auth it needs clientAuth too.
    file("server.ext", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
    file("client.ext", "extendedKeyUsage=clientAuth\n");
    const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt",
                                         "ec_paramgen_curve:prime256v1", "-nodes"};
    const auto request = [&](const std::string &who, const std::string &cn) {
        std::vector<std::string> args = {"req"};
        args.insert(args.end(), ec.begin(), ec.end());
        args.insert(args.end(), {"-keyout", dir + "/" + who + ".key", "-out",
                                 dir + "/" + who + ".csr", "-subj", "/CN=" + cn});
        return openssl(args);
    };
    const auto sign = [&](const std::string &who) {
        return openssl({"x509", "-req", "-in", dir + "/" + who + ".csr", "-CA", dir + "/ca.pem",
                        "-CAkey", dir + "/ca.key", "-CAcreateserial", "-days", "1", "-out",
                        dir + "/" + who + ".pem", "-extfile", dir + "/" + who + ".ext"});
    };
    std::vector<std::string> ca = {"req", "-x509"};
    ca.insert(ca.end(), ec.begin(), ec.end());
    ca.insert(ca.end(), {"-keyout", dir + "/ca.key", "-out", dir + "/ca.pem", "-days", "1", "-subj",
                         "/CN=sluice test CA"});
    ASSERT_TRUE(openssl(ca) && request("server", "etcd") && sign("server") &&
                request("client", "sluice") && sign("client"));

    {
        EtcdServer etcd({"--cert-file", dir + "/server.pem", "--key-file", dir + "/server.key",
                         "--client-cert-auth", "--trusted-ca-file", dir + "/ca.pem"},
                        "https",
                        {"--cacert", dir + "/ca.pem", "--cert", dir + "/client.pem", "--key",
                         dir + "/client.key"});
        ASSERT_TRUE(etcd.running());
        ASSERT_TRUE(put(etcd, "/t/tls/web/a", endpoint_a));

        EtcdSettings settings = settings_for(etcd.url(), "/t/tls");
        settings.tls_ca = dir + "/ca.pem";
        settings.tls_cert = dir + "/client.pem";
        settings.tls_key = dir + "/client.key";
        EtcdFeed feed(settings, 13);
        EndpointSet view;
        ASSERT_TRUE(view_becomes(feed, {"web/a"}, view)) << feed.status().detail;
        ASSERT_TRUE(put(etcd, "/t/tls/web/b", endpoint_b));
        ASSERT_TRUE(view_becomes(feed, {"web/a", "web/b"}, view)) << feed.status().detail;

        // etcd's certificate does not carry this name.
        EtcdSettings misnamed = settings;
        misnamed.tls_server_name = "etcd.example";
        EtcdFeed wrong_name(misnamed, 14);
        ASSERT_TRUE(drive(wrong_name, milliseconds(3000),
                          [&] { return wrong_name.status().health == FeedHealth::stale; }));
        EXPECT_NE(wrong_name.status().detail.find("TLS handshake with " + etcd.endpoint() +
                                                  " failed: hostname mismatch"),
                  std::string::npos) << wrong_name.status().detail;

        // etcd asks for a client certificate.
        EtcdSettings anonymous = settings;
        anonymous.tls_cert.clear();
        anonymous.tls_key.clear();
        EtcdFeed no_certificate(anonymous, 15);
        ASSERT_TRUE(drive(no_certificate, milliseconds(3000),
                          [&] { return no_certificate.status().health == FeedHealth::stale; }));
        EXPECT_NE(no_certificate.status().detail.find(etcd.endpoint()), std::string::npos);
    }
}

TEST_F(EtcdFeedTest, RegistrationLivesWithItsLeaseAndGoesOnStop) {
    EtcdRegistration registration(settings_for(etcd().endpoint(), "/t/gateways"), "gw-1",
                                  R"({"vips": ["198.18.0.10"], "healthy": true})", 3, 16);
    EXPECT_FALSE(registration.status().registered);
    ASSERT_TRUE(drive(registration, milliseconds(3000),
                      [&] { return registration.status().registered; }))
        << registration.status().detail;
    EXPECT_EQ(registration.status().key, "/t/gateways/gw-1");
    EXPECT_EQ(get(etcd(), "/t/gateways/gw-1"), R"({"vips": ["198.18.0.10"], "healthy": true})");

    registration.set_value(R"({"vips": ["198.18.0.10"], "healthy": false})");
    ASSERT_TRUE(drive(registration, milliseconds(3000), [&] {
        return registration.status().registered &&
               get(etcd(), "/t/gateways/gw-1") == R"({"vips": ["198.18.0.10"], "healthy": false})";
    }));
    // Renewed every TTL / 3: alive well past its TTL.
    drive_for(registration, milliseconds(3500));
    EXPECT_GE(registration.status().keepalives, 2u);
    EXPECT_EQ(registration.status().grants, 1u);
    EXPECT_NE(get(etcd(), "/t/gateways/gw-1"), "");

    registration.stop();
    ASSERT_TRUE(drive(registration, milliseconds(2000), [&] { return registration.stopped(); }));
    EXPECT_EQ(registration.status().detail, "stopped");
    EXPECT_EQ(get(etcd(), "/t/gateways/gw-1"), "");  // revoked: gone at once
}

TEST_F(EtcdFeedTest, RegistrationGoesByLeaseExpiryWhenTheProcessDies) {
    auto registration = std::make_unique<EtcdRegistration>(
        settings_for(etcd().endpoint(), "/t/gateways"), "gw-2", R"({"healthy": true})", 3, 17);
    ASSERT_TRUE(drive(*registration, milliseconds(3000),
                      [&] { return registration->status().registered; }));
    registration.reset();  // no stop(): as if the process died
    const auto died = Clock::now();
    EXPECT_NE(get(etcd(), "/t/gateways/gw-2"), "");
    while (get(etcd(), "/t/gateways/gw-2") != "" && ms_since(died) < 8000)
        std::this_thread::sleep_for(milliseconds(200));
    const double gone = ms_since(died);
    std::printf("[   info   ] registration key gone %.0f ms after the process died (TTL 3 s)\n",
                gone);
    EXPECT_EQ(get(etcd(), "/t/gateways/gw-2"), "");
    EXPECT_GT(gone, 1000.0);  // by expiry, not at once
}

TEST_F(EtcdFeedTest, RegistrationComesBackAfterItsLeaseWasLost) {
    EtcdRegistration registration(settings_for(etcd().endpoint(), "/t/gateways"), "gw-3",
                                  R"({"healthy": true})", 3, 18);
    ASSERT_TRUE(drive(registration, milliseconds(3000),
                      [&] { return registration.status().registered; }));
    char lease[32];
    std::snprintf(lease, sizeof lease, "%llx",
                  static_cast<unsigned long long>(registration.status().lease));
    ASSERT_EQ(etcd().etcdctl({"lease", "revoke", lease}), 0);
    EXPECT_EQ(get(etcd(), "/t/gateways/gw-3"), "");
    ASSERT_TRUE(drive(registration, milliseconds(4000), [&] {
        return registration.status().grants == 2 && registration.status().registered;
    })) << registration.status().detail;
    EXPECT_EQ(get(etcd(), "/t/gateways/gw-3"), R"({"healthy": true})");
    registration.stop();
    ASSERT_TRUE(drive(registration, milliseconds(2000), [&] { return registration.stopped(); }));
}

} // namespace
} // namespace sluice::ctrl
