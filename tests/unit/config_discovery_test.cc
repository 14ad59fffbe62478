// The config's `discovery` section and services' `feeds`: every key loads
// with its value, defaults are the documented ones, the section survives
// being written out and read back, and each mistake is refused with the key
// that holds it. Also the backend rules that feed endpoints are held to.
#include "ctrl/backend_rules.h"
#include "ctrl/config.h"
#include "ctrl/config_emit.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/fixtures/temp_file.h"

namespace sluice::ctrl {
namespace {

const std::string ports = R"(
ports:
  - name: back
    device: net_null0
    exception_path: {tap: tb}
    addresses: [198.18.1.1/24, "2001:db8:0:2::1/64"]
)";

const std::string web_service = R"(
services:
  - name: web
    vip: 198.18.10.1
    protocol: tcp
    port: 80
    mode: nat
    feeds: [registry]
)";

Config load(const std::string &yaml) { return load_config_text(yaml, "discovery.yaml", 4); }

TEST(ConfigDiscovery, Defaults) {
    const Config config = load(ports);
    EXPECT_EQ(config.discovery.deletion_grace_ms, 30'000u);
    EXPECT_TRUE(config.discovery.feeds.empty());
    EXPECT_FALSE(config.discovery.registration);

    const Config fed = load(ports + "discovery:\n  feeds:\n"
                                    "    - {name: registry, type: etcd}\n"
                                    "    - {name: dns, type: dns, services: {web: _http._tcp.web.test}}\n"
                                    "  registration: {}\n" +
                            web_service);
    const FeedConfig &etcd = fed.discovery.feeds.at(0);
    EXPECT_EQ(etcd.kind, FeedKind::etcd);
    EXPECT_EQ(etcd.etcd.endpoints, std::vector<std::string>{"127.0.0.1:2379"});
    EXPECT_EQ(etcd.etcd.prefix, "/sluice/endpoints");
    EXPECT_EQ(etcd.etcd.name, "registry");
    EXPECT_EQ(etcd.etcd.watch_silence_ms, 10'000u);
    const FeedConfig &dns = fed.discovery.feeds.at(1);
    EXPECT_EQ(dns.kind, FeedKind::dns);
    EXPECT_TRUE(dns.dns.servers.empty());  // /etc/resolv.conf's
    EXPECT_EQ(dns.dns.min_refresh_s, 1u);
    EXPECT_EQ(dns.dns.max_refresh_s, 300u);
    ASSERT_TRUE(fed.discovery.registration);
    EXPECT_EQ(fed.discovery.registration->etcd.prefix, "/sluice/gateways");
    EXPECT_EQ(fed.discovery.registration->ttl_s, 10u);
    EXPECT_EQ(fed.discovery.registration->instance, "");
    EXPECT_EQ(fed.services.at(0).feeds, std::vector<std::string>{"registry"});
    EXPECT_TRUE(fed.services.at(0).backends.empty());
}

TEST(ConfigDiscovery, EveryKeySetAndWrittenOutAndReadBack) {
    const test::TempFile password("s3cret-password\n");
    const test::TempFile ca("ca"), cert("cert"), key("key");
    const std::string yaml = ports + R"(
discovery:
  deletion_grace_ms: 0
  feeds:
    - name: registry
      type: etcd
      endpoints: ["198.18.0.2:2379", "https://[2001:db8::2]:2379"]
      prefix: /mesh/endpoints
      username: gateway
      password_file: )" + password.path() + R"(
      tls: {ca: )" + ca.path() + ", certificate: " + cert.path() + ", private_key: " +
                             key.path() + R"(, server_name: etcd.mesh.test}
      connect_timeout_ms: 250
      request_timeout_ms: 750
      watch_silence_ms: 2000
    - name: mesh-dns
      type: dns
      servers: ["198.18.0.53:5353", "2001:db8::53"]
      services: {web: _http._tcp.web.mesh.test., api: _grpc._tcp.api.mesh.test}
      query_timeout_ms: 300
      tries: 3
      min_refresh_s: 2
      max_refresh_s: 60
      negative_refresh_s: 7
    - name: local
      type: file
      path: /etc/sluice/endpoints.yaml
  registration:
    endpoints: ["198.18.0.2:2379"]
    prefix: /mesh/gateways
    username: gateway
    password: inline-password
    instance: edge-1
    ttl_s: 5
services:
  - name: web
    vip: 198.18.10.1
    protocol: tcp
    port: 80
    mode: nat
    backends: [{address: 198.18.1.11}]
    feeds: [mesh-dns, registry, local]
)";
    const Config config = load(yaml);
    const DiscoveryConfig &d = config.discovery;
    EXPECT_EQ(d.deletion_grace_ms, 0u);
    ASSERT_EQ(d.feeds.size(), 3u);
    const EtcdSettings &etcd = d.feeds[0].etcd;
    EXPECT_EQ(etcd.endpoints.size(), 2u);
    EXPECT_EQ(etcd.prefix, "/mesh/endpoints");
    EXPECT_EQ(etcd.username, "gateway");
    EXPECT_EQ(etcd.password, "s3cret-password");
    EXPECT_EQ(etcd.password_file, password.path());
    EXPECT_EQ(etcd.tls_ca, ca.path());
    EXPECT_EQ(etcd.tls_cert, cert.path());
    EXPECT_EQ(etcd.tls_key, key.path());
    EXPECT_EQ(etcd.tls_server_name, "etcd.mesh.test");
    EXPECT_EQ(etcd.connect_timeout_ms, 250u);
    EXPECT_EQ(etcd.request_timeout_ms, 750u);
    EXPECT_EQ(etcd.watch_silence_ms, 2000u);
    const DnsFeedSettings &dns = d.feeds[1].dns;
    EXPECT_EQ(dns.name, "mesh-dns");
    EXPECT_EQ(dns.servers.size(), 2u);
    EXPECT_EQ(dns.services.at("web"), "_http._tcp.web.mesh.test.");
    EXPECT_EQ(dns.query_timeout_ms, 300u);
    EXPECT_EQ(dns.tries, 3u);
    EXPECT_EQ(dns.min_refresh_s, 2u);
    EXPECT_EQ(dns.max_refresh_s, 60u);
    EXPECT_EQ(dns.negative_refresh_s, 7u);
    EXPECT_EQ(d.feeds[2].kind, FeedKind::file);
    EXPECT_EQ(d.feeds[2].file.path, "/etc/sluice/endpoints.yaml");
    ASSERT_TRUE(d.registration);
    EXPECT_EQ(d.registration->etcd.password, "inline-password");
    EXPECT_EQ(d.registration->instance, "edge-1");
    EXPECT_EQ(d.registration->ttl_s, 5u);
    EXPECT_EQ(config.services[0].feeds,
              (std::vector<std::string>{"mesh-dns", "registry", "local"}));

    const std::string emitted = emit_config(config);
    const Config again = load_config_text(emitted, "emitted", 4);
    EXPECT_EQ(again, config) << emitted;
    EXPECT_EQ(emit_config(again), emitted);
}

struct BadDiscovery {
    const char *description;
    std::string yaml;
    const char *key;
    const char *message;  // a substring of the message
};

std::string feed(const std::string &item) {
    return ports + "discovery:\n  feeds:\n    - " + item + "\n";
}

TEST(ConfigDiscovery, MistakesAreRefusedWithTheirKey) {
    const test::TempFile good_password("pw\n");
    const BadDiscovery cases[] = {
        {"unknown type", feed("{name: r, type: consul}"), "discovery.feeds[0].type",
         "expected one of etcd, dns, file"},
        {"missing type", feed("{name: r}"), "discovery.feeds[0].type", "required key"},
        {"feed is a scalar", feed("registry"), "discovery.feeds[0]", "expected a map"},
        {"bad name", feed("{name: Registry, type: etcd}"), "discovery.feeds[0].name",
         "a name of 1..63"},
        {"duplicate name",
         ports + "discovery:\n  feeds:\n    - {name: r, type: etcd}\n    - {name: r, type: "
                 "file, path: /x}\n",
         "discovery.feeds[1]", "duplicate feed name 'r'"},
        {"a key of another type", feed("{name: r, type: etcd, path: /x}"),
         "discovery.feeds[0].path", "unknown key"},
        {"an etcd endpoint by name", feed("{name: r, type: etcd, endpoints: [etcd:2379]}"),
         "discovery.feeds[0].endpoints[0]", "an address, not a name"},
        {"no etcd endpoints", feed("{name: r, type: etcd, endpoints: []}"),
         "discovery.feeds[0].endpoints", "at least one"},
        {"prefix with a trailing slash", feed("{name: r, type: etcd, prefix: /a/}"),
         "discovery.feeds[0].prefix", "without a trailing '/'"},
        {"username without password", feed("{name: r, type: etcd, username: u}"),
         "discovery.feeds[0].username", "needs a password"},
        {"password without username", feed("{name: r, type: etcd, password: p}"),
         "discovery.feeds[0].password", "needs a username"},
        {"password and password_file",
         feed("{name: r, type: etcd, username: u, password: p, password_file: " +
              good_password.path() + "}"),
         "discovery.feeds[0].password_file", "not both"},
        {"unreadable password_file",
         feed("{name: r, type: etcd, username: u, password_file: /nonexistent/pw}"),
         "discovery.feeds[0].password_file", "cannot read"},
        {"tls without an https endpoint",
         feed("{name: r, type: etcd, tls: {server_name: etcd.test}}"), "discovery.feeds[0].tls",
         "no endpoint is https://"},
        {"certificate without its key",
         feed("{name: r, type: etcd, endpoints: [\"https://198.18.0.2:2379\"], tls: "
              "{certificate: " + good_password.path() + "}}"),
         "discovery.feeds[0].tls.private_key", "required key is missing"},
        {"watch silence too short", feed("{name: r, type: etcd, watch_silence_ms: 10}"),
         "discovery.feeds[0].watch_silence_ms", "in 1000..3600000"},
        {"dns server with three parts",
         feed("{name: d, type: dns, servers: [\"1.2.3:53:1\"], services: {web: _a._tcp.b}}"),
         "discovery.feeds[0].servers[0]", "expected a resolver"},
        {"dns without services", feed("{name: d, type: dns}"), "discovery.feeds[0].services",
         "required key is missing"},
        {"dns services empty", feed("{name: d, type: dns, services: {}}"),
         "discovery.feeds[0].services", "an empty map"},
        {"dns SRV name with an empty label",
         feed("{name: d, type: dns, services: {web: _http._tcp..test}}"), "discovery.feeds[0]",
         "empty label"},
        {"dns max below min refresh",
         feed("{name: d, type: dns, services: {web: a.test}, min_refresh_s: 10, "
              "max_refresh_s: 5}"),
         "discovery.feeds[0].max_refresh_s", "at least min_refresh_s"},
        {"file without path", feed("{name: f, type: file}"), "discovery.feeds[0].path",
         "required key is missing"},
        {"grace too long", ports + "discovery: {deletion_grace_ms: 3600001}\n",
         "discovery.deletion_grace_ms", "in 0..3600000"},
        {"registration ttl too short", ports + "discovery: {registration: {ttl_s: 2}}\n",
         "discovery.registration.ttl_s", "in 3..3600"},
        {"registration instance with a slash",
         ports + "discovery: {registration: {instance: a/b}}\n",
         "discovery.registration.instance", "without '/'"},
        {"unknown discovery key", ports + "discovery: {feed: []}\n", "discovery.feed",
         "unknown key"},
        {"service names an unknown feed", ports + web_service, "services[0].feeds[0]",
         "no discovery feed is named \"registry\"; discovery.feeds defines none"},
        {"service names a feed twice",
         ports + "discovery: {feeds: [{name: registry, type: etcd}]}\n" +
             "services:\n  - {name: web, vip: 198.18.10.1, protocol: tcp, port: 80, mode: nat, "
             "feeds: [registry, registry]}\n",
         "services[0].feeds[1]", "duplicate feed 'registry'"},
    };
    for (const BadDiscovery &c : cases) {
        try {
            load(c.yaml);
            ADD_FAILURE() << c.description << ": loaded";
        } catch (const ConfigError &e) {
            EXPECT_EQ(e.key(), c.key) << c.description << ": " << e.what();
            EXPECT_NE(e.message().find(c.message), std::string::npos)
                << c.description << ": " << e.what();
        }
    }
}

TEST(BackendRules, FeedEndpointsMeetTheConfigsRules) {
    const Config config = load(ports + R"(
services:
  - {name: web, vip: 198.18.10.1, protocol: tcp, port: 80, mode: nat}
  - {name: all, vip: 198.18.10.2, protocol: tcp, mode: nat}
  - {name: tunnel, vip: 198.18.10.3, protocol: tcp, port: 80, mode: dsr}
)");
    const BackendRules rules(config);
    const auto problem = [&](size_t service, const char *address, uint16_t port) {
        const auto found =
            rules.check(config.services[service], {*parse_ip_address(address), port, 1, false});
        return found ? found->key + ": " + found->message : std::string();
    };
    EXPECT_EQ(problem(0, "198.18.1.11", 8080), "");
    EXPECT_EQ(problem(0, "198.18.1.11", 0), "");
    EXPECT_EQ(problem(0, "2001:db8:0:2::11", 80),
              "address: expected an IPv4 address like the VIP, got 2001:db8:0:2::11");
    EXPECT_EQ(problem(0, "198.18.1.1", 80), "address: 198.18.1.1 is a port address or the VIP");
    EXPECT_EQ(problem(0, "198.18.99.1", 80),
              "address: 198.18.99.1 is on no port's prefix and no route leads there");
    EXPECT_EQ(problem(1, "198.18.1.11", 80),
              "port: a service on every port keeps the client's port: leave port out");
    EXPECT_EQ(problem(2, "198.18.1.11", 8080),
              "port: dsr does not change ports: the backend port must be the service's (80)");
    EXPECT_EQ(problem(2, "198.18.1.11", 80), "");
}

} // namespace
} // namespace sluice::ctrl
