// The effective config written out: what the loader reads back is the same
// config, for every config of the fuzz corpus that loads, for the lab's, and
// for one that sets every key.
#include "ctrl/config_emit.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/fixtures/temp_file.h"

namespace sluice::ctrl {
namespace {

std::string read_file(const std::filesystem::path &path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Loads `yaml`, writes it out, loads that: the same config, written the same.
void expect_round_trip(const std::string &yaml, const std::string &name) {
    const Config first = load_config_text(yaml, name, 4);
    const std::string emitted = emit_config(first);
    Config second;
    try {
        second = load_config_text(emitted, name + " (emitted)", 4);
    } catch (const ConfigError &e) {
        FAIL() << name << ": the emitted config does not load: " << e.what() << "\n" << emitted;
    }
    EXPECT_EQ(first, second) << name << "\n" << emitted;
    EXPECT_EQ(emit_config(second), emitted) << name;
}

TEST(ConfigEmit, FuzzCorpusAndLabRoundTrip) {
    const std::filesystem::path source = SLUICE_SOURCE_DIR;
    size_t loaded = 0;
    for (const auto &entry :
         std::filesystem::directory_iterator(source / "tests/fuzz/corpus/config")) {
        const std::string yaml = read_file(entry.path());
        try {
            load_config_text(yaml, entry.path().filename(), 4);
        } catch (const ConfigError &) {
            continue;  // a seed of a bad config
        }
        ++loaded;
        expect_round_trip(yaml, entry.path().filename());
    }
    EXPECT_GE(loaded, 6u) << "the corpus's good configs went missing";
    expect_round_trip(read_file(source / "conf/lab.yaml"), "conf/lab.yaml");
}

TEST(ConfigEmit, EveryKeyRoundTrips) {
    const test::TempFile token("0123456789abcdef0123\n"), cert("c\n"), key("k\n"), ca("a\n");
    const std::string yaml = R"(
eal:
  hugepages: always
  memory_mb: 2048
  file_prefix: edge_1
  log_level: debug
  extra_args: ["--iova-mode=va", "--no-telemetry"]
cores: {control: 0, workers: [1, 2], cpus: {2: 1}}
worker: {burst_size: 16, tx_drain_us: 50, idle_sleep_max_us: 0}
ports:
  - name: back
    device: "0000:3b:00.1,rx_vec_en=0"
    addresses: [198.18.1.1/24, "2001:db8:0:2::1/64"]
    mtu: 9000
    rx_descriptors: 2048
    tx_descriptors: 512
    exception_path: {tap: tap-back}
  - name: spare
    device: net_null0
routes:
  - {prefix: 198.18.20.0/24, via: 198.18.1.254}
  - {prefix: "2001:db8:20::/48", via: "2001:db8:0:2::fe"}
lb:
  maglev_seed: 18446744073709551615
  flow_table_size: 1024
  timeouts: {tcp_syn: 1, tcp_established: 86400, tcp_closing: 2, udp: 3}
services:
  - name: web
    vip: 198.18.10.1
    protocol: tcp
    port: 80
    local_addresses: [198.18.1.100, 198.18.1.101]
    maglev_size: 65521
    removed_backend_flows: reset
    timeouts: {tcp_established: 600}
    health_check:
      type: http
      interval_ms: 100
      timeout_ms: 10
      rise: 100
      fall: 1
      port: 8081
      method: HEAD
      path: /healthz
      host: web.example
      expected_status: ["200", "300-302"]
    backends:
      - {address: 198.18.1.11, port: 8080, weight: 0}
      - {address: 198.18.1.12, weight: 65535, drained: true}
      - {address: 198.18.20.7, port: 8080}
  - name: dns
    vip: "2001:db8:10::1"
    protocol: udp
    port: 53
    mode: nat
    health_check: {port: 53}
    backends: [{address: "2001:db8:20::11"}]
  - name: tunnel
    vip: 198.18.10.2
    protocol: tcp
    mode: dsr
    encapsulation: gue
    gue_port: 6081
    health_check: {port: 9000, interval_ms: 3600000, timeout_ms: 3600000}
    backends: [{address: "2001:db8:0:2::12"}, {address: 198.18.1.13}]
  - name: tunnel6
    vip: "2001:db8:10::2"
    protocol: tcp
    port: 443
    mode: dsr
    backends: [{address: "2001:db8:0:2::13", port: 443}]
api:
  listen: "[2001:db8::1]:0"
  token_file: )" + token.path() + R"(
  max_body_bytes: 16777216
  max_clients: 1
  tls: {certificate: )" + cert.path() + ", private_key: " + key.path() +
                             ", client_ca: " + ca.path() + "}\n";
    expect_round_trip(yaml, "every-key.yaml");

    // An inline token, and TLS without client certificates.
    expect_round_trip("ports: [{name: a, device: net_null0}]\n"
                      "api: {token: s3cret, tls: {certificate: " + cert.path() +
                          ", private_key: " + key.path() + "}}\n",
                      "inline-token.yaml");
}

TEST(ConfigEmit, WritesTheFilesKeys) {
    const test::TempFile token("0123456789abcdef0123\n");
    const Config c = load_config_text(R"(
ports: [{name: back, device: net_null0, addresses: [198.18.1.1/24], exception_path: {tap: tb}}]
services:
  - name: web
    vip: 198.18.10.1
    protocol: tcp
    port: 80
    mode: nat
    backends: [{address: 198.18.1.11}]
api: {token_file: )" + token.path() + "}\n",
                                      "keys.yaml", 4);
    const Json j = config_json(c);
    // Section order as in the file and the docs.
    std::vector<std::string> sections;
    for (const auto &[key, value] : j.items())
        sections.push_back(key);
    EXPECT_EQ(sections, (std::vector<std::string>{"eal", "cores", "worker", "ports", "routes",
                                                  "lb", "tcp", "discovery", "services",
                                                  "api"}));
    EXPECT_FALSE(j["eal"].contains("file_prefix"));  // empty: sluice-<pid>
    EXPECT_EQ(j["lb"]["maglev_seed"], 0u);
    // The token's file, never the token read from it.
    EXPECT_EQ(j["api"]["token_file"], token.path());
    EXPECT_FALSE(j["api"].contains("token"));
    EXPECT_EQ(j["api"]["listen"], "127.0.0.1:8480");

    const Json &web = j["services"][0];
    EXPECT_EQ(web["mode"], "nat");
    EXPECT_FALSE(web.contains("local_addresses"));  // fullnat only
    EXPECT_FALSE(web.contains("encapsulation"));     // dsr only
    EXPECT_FALSE(web.contains("health_check"));      // none
    EXPECT_EQ(web["backends"][0],
              Json({{"address", "198.18.1.11"}, {"port", 0}, {"weight", 1}, {"drained", false}}));

    HealthCheckSpec tcp;
    EXPECT_EQ(health_check_json(tcp), Json({{"type", "tcp"},
                                             {"interval_ms", 2000},
                                             {"timeout_ms", 1000},
                                             {"rise", 2},
                                             {"fall", 3},
                                             {"port", 0}}));
    HealthCheckSpec http;
    http.type = HealthCheckType::http;  // an empty status list means 200-399
    EXPECT_EQ(health_check_json(http)["expected_status"], Json({"200-399"}));
}

} // namespace
} // namespace sluice::ctrl
