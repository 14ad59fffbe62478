// The gateway's discovery as its loop drives it: the feeds of the config
// run and their views merge into the config; a reconfiguration keeps a feed
// whose settings did not change, replaces one whose settings did without
// losing its view, and drops one that is gone (its endpoints leave after
// the grace); a feed that cannot start refuses the configuration and
// changes nothing; the registration puts the gateway's key in a real etcd
// and takes it away on stop.
#include "ctrl/discovery.h"

#include <gtest/gtest.h>

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/fixtures/etcd_server.h"
#include "tests/fixtures/temp_file.h"

namespace sluice::ctrl {
namespace {

using Clock = Discovery::Clock;

class DiscoveryTest : public testing::Test {
protected:
    DiscoveryTest() {
        char pattern[] = "/tmp/sluice-discovery-XXXXXX";
        directory_ = ::mkdtemp(pattern);
    }
    ~DiscoveryTest() override { std::filesystem::remove_all(directory_); }

    std::string path(const std::string &name) const { return directory_ + "/" + name; }

    void write(const std::string &name, const std::string &text) const {
        std::ofstream(path(name) + ".tmp") << text;
        std::filesystem::rename(path(name) + ".tmp", path(name));
    }

    // A config whose service `web` takes the feeds named; each feed is a
    // file feed reading <name>.yaml, unless `extra` says otherwise.
    Config config(const std::vector<std::string> &feeds, const std::string &grace = "1000",
                  const std::string &extra = "") const {
        std::string yaml = "ports: [{name: back, device: net_null0, addresses: [198.18.1.1/24], "
                           "exception_path: {tap: tb}}]\n"
                           "discovery:\n  deletion_grace_ms: " + grace + "\n  feeds:\n";
        std::string names;
        for (const std::string &feed : feeds) {
            yaml += "    - {name: " + feed + ", type: file, path: " + path(feed + ".yaml") + "}\n";
            names += (names.empty() ? "" : ", ") + feed;
        }
        yaml += extra;
        yaml += "services:\n  - {name: web, vip: 198.18.10.1, protocol: tcp, port: 80, mode: nat, "
                "feeds: [" + names + "]}\n";
        return load_config_text(yaml, "discovery.yaml", 4);
    }

    static std::string endpoints(const std::string &id, const std::string &address) {
        return "services: {web: [{id: " + id + ", address: " + address + ", port: 80}]}\n";
    }

    // Drives `discovery` as the loop does until a merge is due, or `ms` pass.
    static bool run_until_merge(Discovery &discovery, int ms = 3000) {
        const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
        while (Clock::now() < deadline) {
            std::vector<pollfd> fds;
            discovery.poll_fds(fds);
            const int timeout = discovery.timeout_ms(Clock::now());
            ::poll(fds.data(), fds.size(), timeout < 0 || timeout > 50 ? 50 : timeout);
            if (discovery.service(Clock::now()))
                return true;
        }
        return false;
    }

    static std::vector<std::string> addresses(const MergeResult &merged) {
        std::vector<std::string> out;
        for (const BackendConfig &backend : merged.config.services.at(0).backends)
            out.push_back(backend.address.to_string() + (backend.drained ? " drained" : ""));
        return out;
    }

    std::string directory_;
};

TEST_F(DiscoveryTest, FeedsMergeIntoTheConfig) {
    write("a.yaml", endpoints("be1", "198.18.1.11"));
    Discovery discovery;
    const Config base = config({"a"});
    ASSERT_EQ(discovery.configure(base, "host", "{}"), "");
    ASSERT_TRUE(run_until_merge(discovery));
    const MergeResult merged = discovery.merge(base, Clock::now(), {});
    EXPECT_EQ(addresses(merged), std::vector<std::string>{"198.18.1.11"});
    EXPECT_EQ(merged.provenance.at("web").at(0).sources.at(0).source, "feed:a");

    const std::vector<FeedReport> reports = discovery.feeds();
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_EQ(reports[0].status.name, "a");
    EXPECT_EQ(reports[0].status.health, FeedHealth::current);
    EXPECT_EQ(reports[0].endpoints, 1u);
    EXPECT_EQ(reports[0].bound_to, std::vector<std::string>{"web"});
    const std::vector<std::string> events = discovery.take_events();
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events[0], "discovery: feed a (file) started with new settings");
    // Nothing changed: no merge is due.
    EXPECT_FALSE(run_until_merge(discovery, 200));
}

TEST_F(DiscoveryTest, ReconfiguringKeepsReplacesAndDropsFeeds) {
    write("a.yaml", endpoints("be1", "198.18.1.11"));
    write("b.yaml", endpoints("be2", "198.18.1.12"));
    Discovery discovery;
    ASSERT_EQ(discovery.configure(config({"a", "b"}), "host", "{}"), "");
    ASSERT_TRUE(run_until_merge(discovery));
    discovery.merge(config({"a", "b"}), Clock::now(), {});
    discovery.take_events();

    // The same settings: the same feeds, nothing restarted.
    ASSERT_EQ(discovery.configure(config({"a", "b"}), "host", "{}"), "");
    EXPECT_TRUE(discovery.take_events().empty());
    EXPECT_EQ(addresses(discovery.merge(config({"a", "b"}), Clock::now(), {})),
              (std::vector<std::string>{"198.18.1.11", "198.18.1.12"}));

    // Feed b reads another file that is not there yet: its last view stays.
    Config moved = config({"a", "b"});
    moved.discovery.feeds[1].file.path = path("missing.yaml");
    ASSERT_EQ(discovery.configure(moved, "host", "{}"), "");
    EXPECT_EQ(discovery.take_events(),
              std::vector<std::string>{"discovery: feed b (file) restarted with new settings"});
    run_until_merge(discovery, 300);
    EXPECT_EQ(addresses(discovery.merge(moved, Clock::now(), {})),
              (std::vector<std::string>{"198.18.1.11", "198.18.1.12"}));

    // Feed b gone: its endpoint drains for the grace, then leaves.
    discovery.take_events();
    const Config only_a = config({"a"});
    ASSERT_EQ(discovery.configure(only_a, "host", "{}"), "");
    EXPECT_EQ(discovery.take_events(), std::vector<std::string>{"discovery: feed b stopped"});
    const auto now = Clock::now();
    EXPECT_EQ(addresses(discovery.merge(only_a, now, {})),
              (std::vector<std::string>{"198.18.1.11", "198.18.1.12 drained"}));
    EXPECT_LE(discovery.timeout_ms(now), 1000);
    EXPECT_EQ(addresses(discovery.merge(only_a, now + std::chrono::milliseconds(1001), {})),
              std::vector<std::string>{"198.18.1.11"});
}

TEST_F(DiscoveryTest, AFeedThatCannotStartChangesNothing) {
    write("a.yaml", endpoints("be1", "198.18.1.11"));
    Discovery discovery;
    ASSERT_EQ(discovery.configure(config({"a"}), "host", "{}"), "");
    discovery.take_events();
    // The loader checks that the CA file can be read; OpenSSL finds no
    // certificate in it when the feed starts.
    const test::TempFile not_pem("not a certificate\n");
    const Config bad = config(
        {"a"}, "1000",
        "    - {name: tls, type: etcd, endpoints: [\"https://127.0.0.1:1\"], tls: {ca: " +
            not_pem.path() + "}}\n");
    const std::string refused = discovery.configure(bad, "host", "{}");
    EXPECT_NE(refused.find("discovery.feeds: tls: cannot load tls_ca"), std::string::npos)
        << refused;
    EXPECT_TRUE(discovery.take_events().empty());
    ASSERT_EQ(discovery.feeds().size(), 1u);
    EXPECT_EQ(discovery.feeds()[0].status.name, "a");
}

TEST_F(DiscoveryTest, TheRegistrationComesAndGoesWithTheGateway) {
    test::EtcdServer etcd;
    ASSERT_TRUE(etcd.running()) << "etcd did not start";
    const Config base = config(
        {"a"}, "1000",
        "  registration: {endpoints: [\"" + etcd.endpoint() + "\"], prefix: /gw, ttl_s: 3}\n");
    write("a.yaml", endpoints("be1", "198.18.1.11"));
    Discovery discovery;
    ASSERT_EQ(discovery.configure(base, "edge-7", R"({"health": "serving"})"), "");
    const auto registered = [&] {
        const auto status = discovery.registration();
        return status && status->registered;
    };
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!registered() && Clock::now() < deadline)
        run_until_merge(discovery, 50);
    ASSERT_TRUE(registered());
    EXPECT_EQ(discovery.registration()->key, "/gw/edge-7");
    std::string value;
    etcd.etcdctl({"get", "--print-value-only", "/gw/edge-7"}, &value);
    EXPECT_EQ(value, "{\"health\": \"serving\"}\n");

    discovery.stop();
    value.clear();
    etcd.etcdctl({"get", "--print-value-only", "/gw/edge-7"}, &value);
    EXPECT_EQ(value, "");
}

} // namespace
} // namespace sluice::ctrl
