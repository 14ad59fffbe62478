// The configuration loader: good files load with the values and defaults they
// promise; every bad file is rejected with the position, key and message that
// point the operator at the problem.
#include "ctrl/config.h"

#include <gtest/gtest.h>

#include "tests/fixtures/temp_file.h"

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <string>

namespace sluice::ctrl {
namespace {

// conf/lab.yaml, as the lab runs it.
constexpr const char *lab_yaml = R"(
eal:
  hugepages: auto        # use hugepages when some are free, --no-huge otherwise
  memory_mb: 256
  file_prefix: sluice-lab
  log_level: notice

cores:
  control: 0             # EAL main lcore: config, counters, signals
  workers: [1]           # one worker; it polls one RX queue on each port

worker:
  burst_size: 32
  tx_drain_us: 100
  idle_sleep_max_us: 500 # the lab is idle most of the time: do not pin a core

ports:
  - name: client
    # net_af_xdp0,iface=gw-client works the same way (see docs/operations.md).
    device: net_af_packet0,iface=gw-client
    addresses: [198.18.0.1/24, "2001:db8:0:1::1/64"]
    exception_path:
      tap: tap-client    # the kernel's view of this port

  - name: backend
    device: net_af_packet1,iface=gw-backend
    addresses: [198.18.1.1/24, "2001:db8:0:2::1/64"]
    exception_path:
      tap: tap-backend
)";

constexpr const char *minimal_yaml = R"(
ports:
  - name: only
    device: net_null0
)";

InterfaceAddress address(const char *text) {
    auto a = parse_interface_address(text);
    EXPECT_TRUE(a) << text;
    return a.value_or(InterfaceAddress{});
}

TEST(Config, LabConfigLoads) {
    const Config c = load_config_text(lab_yaml, "lab.yaml", 4);
    EXPECT_EQ(c.source, "lab.yaml");
    EXPECT_EQ(c.eal.hugepages, HugepageMode::automatic);
    EXPECT_EQ(c.eal.memory_mb, 256u);
    EXPECT_EQ(c.eal.file_prefix, "sluice-lab");
    EXPECT_EQ(c.eal.log_level, "notice");
    EXPECT_TRUE(c.eal.extra_args.empty());
    EXPECT_EQ(c.cores.control, 0u);
    EXPECT_EQ(c.cores.workers, std::vector<unsigned>{1});
    EXPECT_EQ(c.worker.burst_size, 32u);
    EXPECT_EQ(c.worker.tx_drain_us, 100u);
    EXPECT_EQ(c.worker.idle_sleep_max_us, 500u);

    ASSERT_EQ(c.ports.size(), 2u);
    const PortConfig &client = c.ports[0], &backend = c.ports[1];
    EXPECT_EQ(client.name, "client");
    EXPECT_EQ(client.device, "net_af_packet0,iface=gw-client");
    EXPECT_EQ(client.device_name(), "net_af_packet0");
    EXPECT_FALSE(client.is_pci());
    EXPECT_EQ(client.addresses, (std::vector<InterfaceAddress>{address("198.18.0.1/24"),
                                                               address("2001:db8:0:1::1/64")}));
    EXPECT_EQ(client.mtu, 1500u);
    EXPECT_EQ(client.rx_descriptors, 1024u);
    EXPECT_EQ(client.tx_descriptors, 1024u);
    EXPECT_EQ(client.exception_tap, "tap-client");
    EXPECT_EQ(backend.name, "backend");
    EXPECT_EQ(backend.device_name(), "net_af_packet1");
    EXPECT_EQ(backend.addresses, (std::vector<InterfaceAddress>{address("198.18.1.1/24"),
                                                                address("2001:db8:0:2::1/64")}));
    EXPECT_EQ(backend.exception_tap, "tap-backend");
}

TEST(Config, MinimalConfigGetsDefaults) {
    const Config c = load_config_text(minimal_yaml, "min.yaml", 2);
    const Config defaults;
    EXPECT_EQ(c.eal.hugepages, HugepageMode::automatic);
    EXPECT_EQ(c.eal.memory_mb, 512u);
    EXPECT_EQ(c.eal.file_prefix, "");
    EXPECT_EQ(c.eal.log_level, "notice");
    EXPECT_EQ(c.cores.control, 0u);
    EXPECT_EQ(c.cores.workers, std::vector<unsigned>{1});
    EXPECT_EQ(c.worker.burst_size, defaults.worker.burst_size);
    EXPECT_EQ(c.worker.tx_drain_us, defaults.worker.tx_drain_us);
    EXPECT_EQ(c.worker.idle_sleep_max_us, defaults.worker.idle_sleep_max_us);
    ASSERT_EQ(c.ports.size(), 1u);
    EXPECT_EQ(c.ports[0].name, "only");
    EXPECT_EQ(c.ports[0].device, "net_null0");
    EXPECT_TRUE(c.ports[0].addresses.empty());
    EXPECT_EQ(c.ports[0].mtu, 1500u);
    EXPECT_EQ(c.ports[0].exception_tap, "");
    EXPECT_TRUE(c.routes.empty());
}

TEST(Config, TcpSectionDefaultsAndEveryKey) {
    const Config defaults = load_config_text(minimal_yaml, "min.yaml", 2);
    EXPECT_EQ(defaults.tcp.max_connections, 16384u);
    EXPECT_EQ(defaults.tcp.syn_backlog, 1024u);
    EXPECT_EQ(defaults.tcp.max_time_wait, 16384u);
    EXPECT_EQ(defaults.tcp.send_buffer, 262144u);
    EXPECT_EQ(defaults.tcp.receive_buffer, 262144u);
    EXPECT_EQ(defaults.tcp.mss, 1460u);
    EXPECT_EQ(defaults.tcp.backend_port_share, 25u);
    EXPECT_EQ(defaults.tcp.idle_timeout, 300u);
    EXPECT_TRUE(defaults.tcp.cubic);
    EXPECT_EQ(defaults.tcp.keepalive_idle, 0u);
    EXPECT_EQ(defaults.tcp.keepalive_interval, 75u);
    EXPECT_EQ(defaults.tcp.keepalive_probes, 9u);

    const Config c = load_config_text(R"(
ports:
  - {name: only, device: net_null0}
tcp:
  max_connections: 100000
  syn_backlog: 64
  max_time_wait: 0
  send_buffer: 65536
  receive_buffer: 1048576
  mss: 1400
  backend_port_share: 50
  idle_timeout: 30
  congestion: newreno
  keepalive_idle: 600
  keepalive_interval: 10
  keepalive_probes: 5
)",
                                      "tcp.yaml", 2);
    EXPECT_EQ(c.tcp.max_connections, 100000u);
    EXPECT_EQ(c.tcp.syn_backlog, 64u);
    EXPECT_EQ(c.tcp.max_time_wait, 0u);
    EXPECT_EQ(c.tcp.send_buffer, 65536u);
    EXPECT_EQ(c.tcp.receive_buffer, 1048576u);
    EXPECT_EQ(c.tcp.mss, 1400u);
    EXPECT_EQ(c.tcp.backend_port_share, 50u);
    EXPECT_EQ(c.tcp.idle_timeout, 30u);
    EXPECT_FALSE(c.tcp.cubic);
    EXPECT_EQ(c.tcp.keepalive_idle, 600u);
    EXPECT_EQ(c.tcp.keepalive_interval, 10u);
    EXPECT_EQ(c.tcp.keepalive_probes, 5u);
    EXPECT_FALSE(c == defaults);
}

TEST(Config, EveryKeySet) {
    const Config c = load_config_text(R"(
eal:
  hugepages: never
  memory_mb: 1048576
  file_prefix: A_b-9
  log_level: debug
  extra_args: ["--iova-mode=va", "--no-telemetry"]
cores: {control: 3, workers: [0, 2, 1]}
worker: {burst_size: 64, tx_drain_us: 1, idle_sleep_max_us: 0}
ports:
  - name: wan0
    device: "0000:3b:00.1,rx_vec_en=0"
    addresses: ["2001:db8::10/128", 198.18.7.1/32]
    mtu: 9000
    rx_descriptors: 64
    tx_descriptors: 16384
  - name: lan_1
    device: "af:1f.7"
    mtu: 68
    exception_path: {tap: "x"}
)",
                                      "all.yaml", 4);
    EXPECT_EQ(c.eal.hugepages, HugepageMode::never);
    EXPECT_EQ(c.eal.memory_mb, 1048576u);
    EXPECT_EQ(c.eal.file_prefix, "A_b-9");
    EXPECT_EQ(c.eal.log_level, "debug");
    EXPECT_EQ(c.eal.extra_args, (std::vector<std::string>{"--iova-mode=va", "--no-telemetry"}));
    EXPECT_EQ(c.cores.control, 3u);
    EXPECT_EQ(c.cores.workers, (std::vector<unsigned>{0, 2, 1}));
    EXPECT_EQ(c.worker.burst_size, 64u);
    EXPECT_EQ(c.worker.tx_drain_us, 1u);
    EXPECT_EQ(c.worker.idle_sleep_max_us, 0u);
    ASSERT_EQ(c.ports.size(), 2u);
    EXPECT_TRUE(c.ports[0].is_pci());
    EXPECT_EQ(c.ports[0].device_name(), "0000:3b:00.1");
    EXPECT_EQ(c.ports[0].addresses.size(), 2u);
    EXPECT_EQ(c.ports[0].mtu, 9000u);
    EXPECT_EQ(c.ports[0].rx_descriptors, 64u);
    EXPECT_EQ(c.ports[0].tx_descriptors, 16384u);
    EXPECT_TRUE(c.ports[1].is_pci());
    EXPECT_EQ(c.ports[1].mtu, 68u);
    EXPECT_EQ(c.ports[1].exception_tap, "x");
}

TEST(Config, PortDeviceHelpers) {
    PortConfig p;
    p.device = "net_af_xdp0,iface=eth1,start_queue=0,queue_count=1";
    EXPECT_EQ(p.device_name(), "net_af_xdp0");
    EXPECT_FALSE(p.is_pci());
    p.device = "0000:03:00.0";
    EXPECT_EQ(p.device_name(), "0000:03:00.0");
    EXPECT_TRUE(p.is_pci());
    p.device = "03:00.0,x=1";
    EXPECT_EQ(p.device_name(), "03:00.0");
    EXPECT_TRUE(p.is_pci());
    p.device = "03:00.8";  // functions are 0-7
    EXPECT_FALSE(p.is_pci());
    p.device = "0000:03:20.0";  // devices are 00-1f
    EXPECT_FALSE(p.is_pci());
}

TEST(Config, OnlineCpuCountIsPositive) { EXPECT_GE(online_cpu_count(), 1u); }

TEST(Config, WhatIsFileLineColumnKeyMessage) {
    try {
        load_config_text("eal:\n  memory_mb: lots\nports: [{name: a, device: net_null0}]\n",
                         "test.yaml", 4);
        FAIL() << "expected a ConfigError";
    } catch (const ConfigError &e) {
        EXPECT_EQ(e.file(), "test.yaml");
        EXPECT_EQ(e.line(), 2);
        EXPECT_EQ(e.column(), 14);
        EXPECT_EQ(e.key(), "eal.memory_mb");
        EXPECT_EQ(std::string(e.what()), "test.yaml:2:14: eal.memory_mb: " + e.message());
        EXPECT_EQ(e.message(), "expected an integer in 64..1048576, got \"lots\"");
    }
}

TEST(Config, MissingFile) {
    try {
        load_config_file("/nonexistent/sluice.yaml");
        FAIL() << "expected a ConfigError";
    } catch (const ConfigError &e) {
        EXPECT_EQ(e.line(), 0);
        EXPECT_EQ(e.column(), 0);
        EXPECT_EQ(e.key(), "(file)");
        EXPECT_EQ(std::string(e.what()),
                  "/nonexistent/sluice.yaml:0:0: (file): cannot read: No such file or directory");
    }
}

TEST(Config, FileLoadsAndNamesItsSource) {
    char path[] = "/tmp/sluice-config-test-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    std::ofstream(path) << minimal_yaml;
    const Config c = load_config_file(path);
    EXPECT_EQ(c.source, path);
    EXPECT_EQ(c.ports.size(), 1u);
    std::remove(path);
}

std::string with_workers(unsigned count) {
    std::string yaml = std::string(minimal_yaml) + "cores:\n  control: 0\n  workers: [1";
    for (unsigned id = 2; id <= count; ++id)
        yaml += ", " + std::to_string(id);
    return yaml + "]\n";
}

TEST(Config, AtMost127Workers) {
    EXPECT_EQ(load_config_text(with_workers(127), "w.yaml", 200).cores.workers.size(), 127u);
    try {
        load_config_text(with_workers(128), "w.yaml", 200);
        FAIL() << "128 workers loaded";
    } catch (const ConfigError &e) {
        EXPECT_EQ(e.key(), "cores.workers");
        EXPECT_EQ(e.line(), 7);
        EXPECT_EQ(e.message(), "expected at most 127 workers, got 128");
    }
}

TEST(Config, LcoresPlacedOnSharedCpus) {
    const Config c = load_config_text(
        "ports: [{name: a, device: net_null0}]\n"
        "cores:\n  control: 0\n  workers: [1, 2]\n  cpus: {2: 1}\n", "cpus.yaml", 2);
    EXPECT_EQ(c.cores.workers, (std::vector<unsigned>{1, 2}));
    EXPECT_EQ(c.cores.cpus, (std::map<unsigned, unsigned>{{2, 1}}));
    ASSERT_EQ(c.warnings.size(), 1u);
    EXPECT_NE(c.warnings[0].find("lcores 1, 2 share CPU 1"), std::string::npos) << c.warnings[0];
}

struct BadConfig {
    const char *description;
    const char *yaml;
    int line;
    int column;  // -1: not checked
    const char *key;
    const char *message;  // a substring of the message
    unsigned cpus = 4;
};

std::ostream &operator<<(std::ostream &os, const BadConfig &b) { return os << b.description; }

// A test's name: its description with every other character an underscore.
std::string bad_config_name(const testing::TestParamInfo<BadConfig> &info) {
    std::string name;
    for (const char *c = info.param.description; *c; ++c)
        name += std::isalnum(static_cast<unsigned char>(*c)) ? *c : '_';
    return name;
}

class BadConfigTest : public testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, IsRejectedWithPosition) {
    const BadConfig &b = GetParam();
    try {
        load_config_text(b.yaml, "bad.yaml", b.cpus);
        FAIL() << b.description << ": loaded";
    } catch (const ConfigError &e) {
        EXPECT_EQ(e.line(), b.line) << e.what();
        if (b.column >= 0) {
            EXPECT_EQ(e.column(), b.column) << e.what();
        }
        EXPECT_EQ(e.key(), b.key) << e.what();
        EXPECT_NE(e.message().find(b.message), std::string::npos) << e.what();
        const std::string prefix = "bad.yaml:" + std::to_string(e.line()) + ":" +
                                   std::to_string(e.column()) + ": " + e.key() + ": ";
        EXPECT_EQ(std::string(e.what()).rfind(prefix, 0), 0u) << e.what();
    }
}

#define PORT "ports: [{name: a, device: net_null0}]\n"
#define LB_PORTS                                                                           \
    "ports:\n  - name: back\n    device: net_null0\n    exception_path: {tap: tb}\n"           \
    "    addresses: [198.18.1.1/24, \"2001:db8:0:2::1/64\"]\n"
#define SERVICE                                                                            \
    "services:\n  - name: web\n    vip: 198.18.10.1\n    protocol: tcp\n    port: 80\n"
// One route at line 7, after LB_PORTS.
#define ROUTE(prefix, via) "routes:\n  - {prefix: " prefix ", via: " via "}\n"

const BadConfig bad_configs[] = {
    // Structure.
    {"unknown top-level key", PORT "colour: blue\n", 2, 1, "colour",
     "unknown key, expected one of: eal, cores, worker, ports, routes, lb, tcp, discovery, "
     "services, api"},
    {"unknown key in a port", "ports:\n  - name: a\n    device: net_null0\n    speed: 10G\n", 4,
     5, "ports[0].speed", "unknown key, expected one of: name, device, addresses, mtu"},
    {"unknown key in exception_path",
     "ports:\n  - name: a\n    device: net_null0\n    exception_path: {tap: t, mode: x}\n", 4, 30,
     "ports[0].exception_path.mode", "unknown key, expected tap"},
    {"duplicate key in a map", PORT "worker:\n  burst_size: 32\n  burst_size: 16\n", 4, 3,
     "worker.burst_size", "duplicate key, first at line 3"},
    {"section is not a map", PORT "eal: [memory_mb]\n", 2, 6, "eal",
     "expected a map, got a sequence"},
    {"map where a string is expected", "ports:\n  - name: {first: a}\n    device: net_null0\n", 2,
     11, "ports[0].name", "got a map"},
    {"document is a sequence", "- ports\n", 1, 1, "(top level)",
     "expected a map, got a sequence"},
    {"ports is missing", "eal:\n  memory_mb: 256\n", 1, 1, "ports", "required key is missing"},
    {"ports is empty", "ports: []\n", 1, 8, "ports", "expected at least one port"},
    {"a port refers to itself", "ports: &p [*p]\n", 1, 8, "ports[0]",
     "expected a map, got a sequence"},
    {"empty document", "", 1, 1, "(top level)", "the file is empty; ports: is required"},
    {"only comments", "# nothing here\n\n", 1, 1, "(top level)", "the file is empty"},
    {"YAML syntax error", "ports: [{name: a, device: net_null0}\n", 2, 1, "(yaml)",
     "end of sequence flow not found"},
    {"two documents", PORT "---\n" PORT, 2, 1, "(yaml)", "expected one YAML document"},
    // yaml-cpp alone would hang (LoadAll) or ignore the rest of the file (Load).
    {"stray comma at the start", ",orts:\n  - name: a\n", 1, 1, "(yaml)",
     "unexpected \",\", expected a value, a map or a sequence"},
    {"text after a flow sequence", "[ports], b\n", 1, 8, "(yaml)", "unexpected \",\""},

    // Scalars.
    {"string for memory_mb", PORT "eal:\n  memory_mb: lots\n", 3, 14, "eal.memory_mb",
     "expected an integer in 64..1048576, got \"lots\""},
    {"negative integer", PORT "worker:\n  burst_size: -1\n", 3, 15, "worker.burst_size",
     "expected an integer in 1..64, got \"-1\""},
    {"fraction", PORT "worker:\n  tx_drain_us: 1.5\n", 3, 16, "worker.tx_drain_us",
     "got \"1.5\""},
    {"hexadecimal", PORT "worker:\n  tx_drain_us: 0x10\n", 3, 16, "worker.tx_drain_us",
     "got \"0x10\""},
    {"integer overflow", PORT "eal:\n  memory_mb: 99999999999999999999999\n", 3, 14,
     "eal.memory_mb", "expected an integer in 64..1048576, got 99999999999999999999999"},
    {"no value", PORT "eal:\n  file_prefix:\n", 3, 3, "eal.file_prefix", "got nothing"},
    {"bad enum value for hugepages", PORT "eal: {hugepages: sometimes}\n", 2, 18,
     "eal.hugepages", "expected one of auto, always, never, got \"sometimes\""},
    {"bad log level", PORT "eal: {log_level: verbose}\n", 2, 18, "eal.log_level",
     "expected one of emergency, alert"},
    {"bad file prefix", PORT "eal: {file_prefix: a/b}\n", 2, 20, "eal.file_prefix",
     "got \"a/b\""},
    {"empty extra arg", PORT "eal: {extra_args: [\"\"]}\n", 2, 20, "eal.extra_args[0]",
     "expected a non-empty EAL argument"},

    // Cores.
    {"more workers than CPUs", PORT "cores:\n  workers: [1, 2, 3]\n", 3, 12, "cores.workers",
     "3 workers and 1 control lcore need 4 CPUs, this machine has 2", 2},
    {"default worker on one CPU", PORT, 1, 1, "cores.workers",
     "1 worker (the default) and 1 control lcore need 2 CPUs, this machine has 1", 1},
    {"worker lcore that does not exist", PORT "cores:\n  workers: [1, 5]\n", 3, 16,
     "cores.workers[1]", "lcore 5 does not exist: this machine has 4 CPUs (0-3)"},
    {"control lcore that does not exist", PORT "cores:\n  control: 7\n  workers: [1]\n", 3, 12,
     "cores.control", "lcore 7 does not exist: this machine has 4 CPUs (0-3)"},
    {"placed lcore that is not in use", PORT "cores:\n  workers: [1]\n  cpus: {3: 1}\n", 4, 10,
     "cores.cpus", "lcore 3 is neither cores.control nor one of cores.workers", 2},
    {"placed on a CPU that does not exist", PORT "cores:\n  workers: [1, 2]\n  cpus: {2: 5}\n",
     4, 13, "cores.cpus.2", "CPU 5 does not exist: this machine has 2 CPUs (0-1)", 2},
    {"unplaced lcore beyond the CPUs", PORT "cores:\n  workers: [1, 2, 3]\n  cpus: {2: 1}\n",
     3, 19, "cores.workers[2]", "lcore 3 does not exist: this machine has 2 CPUs (0-1) "
     "(cores.cpus can place it on one)", 2},
    {"cpus not a map", PORT "cores:\n  cpus: [1]\n", 3, 9, "cores.cpus",
     "expected a map of lcore: CPU", 2},
    {"cpus key not a number", PORT "cores:\n  cpus: {one: 1}\n", 3, 10, "cores.cpus",
     "expected an lcore id (an integer)", 2},
    {"control lcore among workers", PORT "cores:\n  control: 1\n  workers: [2, 1]\n", 4, 16,
     "cores.workers[1]", "lcore 1 is the control lcore"},
    {"worker listed twice", PORT "cores:\n  workers: [1, 1]\n", 3, 16, "cores.workers[1]",
     "lcore 1 is listed twice, first at line 3"},
    {"no workers", PORT "cores:\n  workers: []\n", 3, 12, "cores.workers",
     "expected at least one worker lcore"},
    {"worker is not an integer", PORT "cores:\n  workers: [one]\n", 3, 13, "cores.workers[0]",
     "expected an lcore id (an integer), got \"one\""},

    // Ports.
    {"duplicate port name",
     "ports:\n  - name: a\n    device: net_null0\n  - name: a\n    device: net_null1\n", 4, 11,
     "ports[1].name", "duplicate port name 'a', first defined at line 2"},
    {"port name with a capital", "ports: [{name: Wan, device: net_null0}]\n", 1, 16,
     "ports[0].name", "expected a port name"},
    {"port without name", "ports:\n  - device: net_null0\n", 2, 5, "ports[0].name",
     "required key is missing"},
    {"port without device", "ports:\n  - name: a\n    mtu: 1500\n", 2, 5, "ports[0].device",
     "required key is missing"},
    {"bad device string", "ports: [{name: a, device: eth0}]\n", 1, 27, "ports[0].device",
     "\"eth0\" is neither a PCI address nor a net_ vdev name"},
    {"device argument without value", "ports: [{name: a, device: \"net_tap0,iface=\"}]\n", 1,
     27, "ports[0].device", "argument \"iface\" has no value"},
    {"device argument with a space", "ports: [{name: a, device: \"net_tap0,iface=a b\"}]\n", 1,
     27, "ports[0].device", "contains a space"},
    {"same PCI device twice",
     "ports:\n  - {name: a, device: \"03:00.0\"}\n  - {name: b, device: \"0000:03:00.0,x=1\"}\n",
     3, 23, "ports[1].device", "duplicate device '0000:03:00.0', first defined at line 2"},
    {"malformed address", "ports: [{name: a, device: net_null0, addresses: [198.18.0.300/24]}]\n",
     1, 50, "ports[0].addresses[0]", "got \"198.18.0.300/24\""},
    {"address without prefix length",
     "ports: [{name: a, device: net_null0, addresses: [198.18.0.1]}]\n", 1, 50,
     "ports[0].addresses[0]", "the prefix length is missing"},
    {"loopback address", "ports: [{name: a, device: net_null0, addresses: [\"::1/128\"]}]\n", 1,
     50, "ports[0].addresses[0]", "a loopback address"},
    {"multicast address",
     "ports: [{name: a, device: net_null0, addresses: [224.0.0.5/24]}]\n", 1, 50,
     "ports[0].addresses[0]", "a multicast address"},
    {"address on two ports",
     "ports:\n  - {name: a, device: net_null0, addresses: [198.18.0.1/24]}\n"
     "  - {name: b, device: net_null1, addresses: [198.18.0.1/16]}\n",
     3, 46, "ports[1].addresses[0]", "duplicate address '198.18.0.1', first defined at line 2"},
    {"out-of-range mtu", "ports: [{name: a, device: net_null0, mtu: 9001}]\n", 1, 43,
     "ports[0].mtu", "expected an integer in 68..9000, got 9001"},
    {"descriptors not a power of two",
     "ports: [{name: a, device: net_null0, rx_descriptors: 1000}]\n", 1, 54,
     "ports[0].rx_descriptors", "expected a power of two in 64..16384, got 1000"},
    {"descriptors too many", "ports: [{name: a, device: net_null0, tx_descriptors: 32768}]\n",
     1, 54, "ports[0].tx_descriptors", "expected a power of two in 64..16384, got 32768"},
    {"exception path without tap",
     "ports:\n  - name: a\n    device: net_null0\n    exception_path:\n      mtu: 1\n", 5, 7,
     "ports[0].exception_path.mtu", "unknown key, expected tap"},
    {"exception path empty", "ports: [{name: a, device: net_null0, exception_path: {}}]\n", 1,
     54, "ports[0].exception_path.tap", "required key is missing"},
    {"bad tap name", "ports: [{name: a, device: net_null0, exception_path: {tap: \"..\"}}]\n", 1,
     60, "ports[0].exception_path.tap", "expected a Linux interface name"},
    {"tap name too long",
     "ports: [{name: a, device: net_null0, exception_path: {tap: sixteen-chars-xx}}]\n", 1, 60,
     "ports[0].exception_path.tap", "got \"sixteen-chars-xx\""},
    {"duplicate tap name",
     "ports:\n  - name: a\n    device: net_null0\n    exception_path: {tap: t0}\n"
     "  - name: b\n    device: net_null1\n    exception_path: {tap: t0}\n",
     7, 27, "ports[1].exception_path.tap", "duplicate TAP name 't0', first defined at line 4"},
    // Routes (the ports' lines come first: the first route is at line 7).
    {"route to a network with host bits", LB_PORTS ROUTE("198.18.20.1/24", "198.18.1.11"), 7, 14,
     "routes[0].prefix",
     "bits are set after the prefix length; the network is 198.18.20.0/24"},
    {"route to an address without a prefix length", LB_PORTS ROUTE("198.18.20.0", "198.18.1.11"),
     7, 14, "routes[0].prefix", "the prefix length is missing (/32 or /128 for one address)"},
    {"route to a prefix too long", LB_PORTS ROUTE("\"2001:db8:20::/129\"", "\"2001:db8:0:2::11\""),
     7, 14, "routes[0].prefix",
     "expected a network like 198.18.20.0/24 or 2001:db8:20::/48, got \"2001:db8:20::/129\""},
    {"route without via", LB_PORTS "routes:\n  - {prefix: 198.18.20.0/24}\n", 7, 5,
     "routes[0].via", "required key is missing"},
    {"unknown key in a route",
     LB_PORTS "routes:\n  - {prefix: 198.18.20.0/24, via: 198.18.1.11, metric: 10}\n", 7, 48,
     "routes[0].metric", "unknown key, expected one of: prefix, via"},
    {"routes is a map", LB_PORTS "routes: {prefix: 198.18.20.0/24}\n", 6, 9, "routes",
     "expected a sequence, got a map"},
    {"gateway on no port's prefix", LB_PORTS ROUTE("198.18.20.0/24", "198.18.7.1"), 7, 35,
     "routes[0].via", "198.18.7.1 is on no port's prefix: a gateway must be on-link"},
    {"gateway of the other family", LB_PORTS ROUTE("198.18.20.0/24", "\"2001:db8:0:2::11\""), 7,
     35, "routes[0].via", "expected an IPv4 gateway like the prefix, got 2001:db8:0:2::11"},
    {"gateway is a port's own address", LB_PORTS ROUTE("198.18.20.0/24", "198.18.1.1"), 7, 35,
     "routes[0].via", "198.18.1.1 is a port's own address, not a gateway"},
    {"gateway is multicast", LB_PORTS ROUTE("198.18.20.0/24", "224.0.0.1"), 7, 35,
     "routes[0].via", "expected a unicast address, got 224.0.0.1, a multicast address"},
    {"route to a connected prefix", LB_PORTS ROUTE("198.18.1.0/24", "198.18.1.11"), 7, 14,
     "routes[0].prefix",
     "198.18.1.0/24 is the connected prefix of port back: its addresses are on-link"},
    {"duplicate route, written another way",
     LB_PORTS ROUTE("\"2001:db8:20::/48\"", "\"2001:db8:0:2::11\"")
     "  - {prefix: \"2001:db8:20:0::/48\", via: \"2001:db8:0:2::12\"}\n",
     8, 14, "routes[1].prefix", "duplicate route '2001:db8:20::/48', first defined at line 7"},
    {"backend behind a gateway on a port without exception path",
     "ports:\n  - {name: back, device: net_null0, addresses: [198.18.1.1/24]}\n"
     "routes: [{prefix: 198.18.20.0/24, via: 198.18.1.11}]\n"
     SERVICE "    mode: nat\n    backends: [{address: 198.18.20.11}]\n", 10, 26,
     "services[0].backends[0].address",
     "port back, where 198.18.20.11's gateway 198.18.1.11 is, has no exception_path"},
    {"SNAT address behind a gateway", LB_PORTS ROUTE("198.18.5.0/24", "198.18.1.11")
     SERVICE "    local_addresses: [198.18.5.5]\n", 13, 23, "services[0].local_addresses[0]",
     "198.18.5.5 is on no port's prefix (it is routed via 198.18.1.11): backends could not"},
    {"backend where no route leads", LB_PORTS ROUTE("198.18.20.0/24", "198.18.1.11")
     SERVICE "    mode: nat\n    backends: [{address: 198.18.21.1}]\n", 14, 26,
     "services[0].backends[0].address",
     "198.18.21.1 is on no port's prefix and no route leads there"},

    // Services (the ports' lines come first: services start at line 6).
    {"fullnat without SNAT addresses", LB_PORTS SERVICE "    backends: [{address: 198.18.1.11}]\n",
     7, 5, "services[0].local_addresses", "required key is missing: fullnat needs"},
    {"SNAT address on no port's prefix", LB_PORTS SERVICE "    local_addresses: [198.18.5.5]\n",
     11, 23, "services[0].local_addresses[0]", "is on no port's prefix"},
    {"SNAT address of the other family", LB_PORTS SERVICE
     "    local_addresses: [\"2001:db8:0:2::100\"]\n", 11, 23,
     "services[0].local_addresses[0]", "expected an IPv4 address like the VIP"},
    {"VIP is a port address",
     LB_PORTS "services:\n  - name: web\n    vip: 198.18.1.1\n    protocol: tcp\n", 8, 10,
     "services[0].vip", "is a port's own address"},
    {"VIP with a prefix length",
     LB_PORTS "services:\n  - name: web\n    vip: 198.18.10.1/32\n    protocol: tcp\n", 8, 10,
     "services[0].vip", "expected an IPv4 or IPv6 address"},
    {"protocol missing", LB_PORTS "services:\n  - name: web\n    vip: 198.18.10.1\n", 7, 5,
     "services[0].protocol", "required key is missing"},
    {"unknown protocol", LB_PORTS "services:\n  - name: web\n    vip: 198.18.10.1\n"
     "    protocol: sctp\n", 9, 15, "services[0].protocol", "expected one of tcp, udp"},
    {"unknown mode", LB_PORTS SERVICE "    mode: tunnel\n", 11, 11, "services[0].mode",
     "expected one of fullnat, nat, dsr, proxy, got \"tunnel\""},
    {"backend of the other family", LB_PORTS SERVICE
     "    local_addresses: [198.18.1.100]\n    backends:\n      - address: \"2001:db8:0:2::11\"\n",
     13, 18, "services[0].backends[0].address", "expected an IPv4 address like the VIP"},
    {"weight out of range", LB_PORTS SERVICE
     "    local_addresses: [198.18.1.100]\n    backends:\n      - {address: 198.18.1.11, weight: 70000}\n",
     13, 40, "services[0].backends[0].weight", "expected a weight in 0..65535, got 70000"},
    {"duplicate backend", LB_PORTS SERVICE
     "    local_addresses: [198.18.1.100]\n    backends:\n      - {address: 198.18.1.11}\n"
     "      - {address: 198.18.1.11}\n",
     14, 9, "services[0].backends[1]", "duplicate backend '198.18.1.11 port 0', first defined at line 13"},
    {"Maglev size not prime", LB_PORTS SERVICE "    local_addresses: [198.18.1.100]\n"
     "    maglev_size: 65536\n", 12, 18, "services[0].maglev_size",
     "expected a prime, got 65536; the next prime is 65537"},
    {"encapsulation on a fullnat service", LB_PORTS SERVICE "    local_addresses: [198.18.1.100]\n"
     "    encapsulation: gue\n", 12, 20, "services[0].encapsulation", "only dsr services encapsulate"},
    {"dsr to another port", LB_PORTS SERVICE "    mode: dsr\n    backends:\n"
     "      - {address: 198.18.1.11, port: 8080}\n", 13, 38, "services[0].backends[0].port",
     "dsr does not change ports"},
    {"backend on no port's prefix", LB_PORTS SERVICE "    mode: nat\n    backends:\n"
     "      - address: 198.18.7.7\n", 13, 18, "services[0].backends[0].address",
     "is on no port's prefix"},
    {"backend behind a port without exception path",
     "ports:\n  - {name: back, device: net_null0, addresses: [198.18.1.1/24]}\n"
     SERVICE "    mode: nat\n    backends: [{address: 198.18.1.11}]\n", 9, 26,
     "services[0].backends[0].address", "has no exception_path to resolve its MAC through"},
    {"proxy service for udp", LB_PORTS "services:\n  - name: web\n    vip: 198.18.10.1\n"
     "    protocol: udp\n    port: 53\n    mode: proxy\n    local_addresses: [198.18.1.100]\n",
     9, 15, "services[0].protocol", "proxy services are tcp: the workers' TCP ends them"},
    {"proxy service on every port", LB_PORTS "services:\n  - name: web\n    vip: 198.18.10.1\n"
     "    protocol: tcp\n    mode: proxy\n    local_addresses: [198.18.1.100]\n",
     7, 5, "services[0].port",
     "a proxy service listens on one port: port 0 (every port) is for L4 modes"},
    {"proxy service without local addresses", LB_PORTS SERVICE "    mode: proxy\n", 7, 5,
     "services[0].local_addresses",
     "required key is missing: proxy needs at least one local address"},
    {"proxy service without TCP ports", LB_PORTS "tcp: {backend_port_share: 0}\n" SERVICE
     "    mode: proxy\n    local_addresses: [198.18.1.100]\n", 12, 11, "services[0].mode",
     "tcp.backend_port_share is 0, which leaves the proxy no local ports for its backend "
     "connections"},
    {"TCP buffer too small", LB_PORTS "tcp: {send_buffer: 1000}\n", 6, 20, "tcp.send_buffer",
     "expected bytes in 16384..1073741824, got 1000"},
    {"TCP MSS too large", LB_PORTS "tcp: {mss: 9000}\n", 6, 12, "tcp.mss",
     "expected bytes of segment payload in 536..1460, got 9000"},
    {"unknown TCP key", LB_PORTS "tcp: {nagle: true}\n", 6, 7, "tcp.nagle",
     "unknown key, expected one of: max_connections, syn_backlog, max_time_wait, send_buffer, "
     "receive_buffer, mss, backend_port_share, idle_timeout, congestion, keepalive_idle, "
     "keepalive_interval, keepalive_probes"},
    {"unknown congestion control", LB_PORTS "tcp: {congestion: bbr}\n", 6, 19, "tcp.congestion",
     "expected one of cubic, newreno, got \"bbr\""},
    {"SNAT addresses on a nat service", LB_PORTS SERVICE "    mode: nat\n"
     "    local_addresses: [198.18.1.100]\n", 12, 22, "services[0].local_addresses",
     "only fullnat and proxy services have local addresses"},
    {"duplicate service", LB_PORTS SERVICE "    mode: nat\n"
     "  - {name: web2, vip: 198.18.10.1, protocol: tcp, port: 80, mode: nat}\n", 12, 23,
     "services[1].vip", "duplicate service 198.18.10.1 tcp port 80, first defined at line 7"},
    {"service on every port overlapping one port", LB_PORTS SERVICE "    mode: nat\n"
     "  - {name: all, vip: 198.18.10.1, protocol: tcp, mode: nat}\n", 12, 22,
     "services[1].vip", "service on every port of 198.18.10.1 tcp overlaps"},
    {"duplicate service name", LB_PORTS SERVICE "    mode: nat\n"
     "  - {name: web, vip: 198.18.10.2, protocol: tcp, mode: nat}\n", 12, 5, "services[1]",
     "duplicate service name 'web'"},
    {"maglev seed negative", PORT "lb: {maglev_seed: -1}\n", 2, 19, "lb.maglev_seed",
     "expected an integer seed"},
    {"zero timeout", PORT "lb:\n  timeouts: {udp: 0}\n", 3, 19, "lb.timeouts.udp",
     "expected seconds in 1..86400, got 0"},
    {"flow table too small", PORT "lb: {flow_table_size: 10}\n", 2, 23, "lb.flow_table_size",
     "expected a number of flows in 1024..16777216"},
    {"service timeout out of range", LB_PORTS SERVICE "    mode: nat\n    timeouts: {udp: 86401}\n",
     12, 21, "services[0].timeouts.udp", "expected seconds in 1..86400, got 86401"},
    {"unknown service timeout", LB_PORTS SERVICE "    mode: nat\n    timeouts: {tcp_fin: 5}\n",
     12, 16, "services[0].timeouts.tcp_fin", "unknown key, expected one of: tcp_syn"},
    {"timeouts of a proxy service", LB_PORTS SERVICE
     "    mode: proxy\n    local_addresses: [198.18.1.100]\n    timeouts: {tcp_syn: 5}\n",
     13, 15, "services[0].timeouts", "proxy services have no flows"},
};

INSTANTIATE_TEST_SUITE_P(Config, BadConfigTest, testing::ValuesIn(bad_configs),
                         bad_config_name);

} // namespace
} // namespace sluice::ctrl

namespace sluice::ctrl {
namespace {

TEST(Config, ServicesInEveryMode) {
    const Config c = load_config_text(R"(
ports:
  - name: back
    device: net_null0
    addresses: [198.18.1.1/24, "2001:db8:0:2::1/64"]
    exception_path: {tap: tb}
lb:
  maglev_seed: 18446744073709551615
  flow_table_size: 65536
  timeouts: {tcp_syn: 3, udp: 60}
services:
  - name: web
    vip: 198.18.10.1
    protocol: tcp
    port: 80
    local_addresses: [198.18.1.100, 198.18.1.101]
    backends:
      - {address: 198.18.1.11, weight: 2}
      - {address: 198.18.1.12, port: 8080, weight: 0}
  - name: dns
    vip: "2001:db8:10::1"
    protocol: udp
    port: 53
    mode: nat
    maglev_size: 251
    removed_backend_flows: reset
    timeouts: {udp: 5}
    backends: [{address: "2001:db8:0:2::11"}]
  - name: everything
    vip: 198.18.10.2
    protocol: tcp
    mode: dsr
    encapsulation: gue
    gue_port: 6081
    backends: [{address: "2001:db8:0:2::12"}]
  - name: proxied
    vip: 198.18.10.3
    protocol: tcp
    port: 443
    mode: proxy
    local_addresses: [198.18.1.102]
    backends: [{address: 198.18.1.13, port: 8443}]
)",
                                      "good.yaml", 4);
    EXPECT_EQ(c.lb.maglev_seed, UINT64_MAX);
    EXPECT_EQ(c.lb.flow_table_size, 65536u);
    EXPECT_EQ(c.lb.timeouts.tcp_syn, 3u);
    EXPECT_EQ(c.lb.timeouts.tcp_established, 300u);
    EXPECT_EQ(c.lb.timeouts.udp, 60u);
    ASSERT_EQ(c.services.size(), 4u);

    const ServiceConfig &web = c.services[0];
    EXPECT_EQ(web.vip.to_string(), "198.18.10.1");
    EXPECT_EQ(web.protocol, 6);
    EXPECT_EQ(web.port, 80);
    EXPECT_EQ(web.mode, ForwardingMode::fullnat);
    ASSERT_EQ(web.local_addresses.size(), 2u);
    EXPECT_EQ(web.maglev_size, 65537u);
    EXPECT_EQ(web.removed_backend_flows, RemovedBackendFlows::keep);
    ASSERT_EQ(web.backends.size(), 2u);
    EXPECT_EQ(web.backends[0].port, 0);
    EXPECT_EQ(web.backends[0].weight, 2u);
    EXPECT_EQ(web.backends[1].port, 8080);
    EXPECT_EQ(web.backends[1].weight, 0u);

    const ServiceConfig &dns = c.services[1];
    EXPECT_FALSE(dns.vip.is_v4());
    EXPECT_EQ(dns.protocol, 17);
    EXPECT_EQ(dns.mode, ForwardingMode::nat);
    EXPECT_EQ(dns.removed_backend_flows, RemovedBackendFlows::reset);
    // What it leaves out is lb.timeouts'.
    ASSERT_TRUE(dns.timeouts);
    EXPECT_EQ(dns.timeouts->udp, 5u);
    EXPECT_EQ(dns.timeouts->tcp_syn, 3u);
    EXPECT_EQ(dns.timeouts->tcp_established, 300u);
    EXPECT_FALSE(web.timeouts) << "none of its own: lb.timeouts";

    const ServiceConfig &everything = c.services[2];
    EXPECT_EQ(everything.port, 0);
    EXPECT_EQ(everything.mode, ForwardingMode::dsr);
    EXPECT_EQ(everything.encapsulation, DsrEncapsulation::gue);
    EXPECT_EQ(everything.gue_port, 6081);

    const ServiceConfig &proxied = c.services[3];
    EXPECT_EQ(proxied.mode, ForwardingMode::proxy);
    ASSERT_EQ(proxied.local_addresses.size(), 1u);
    EXPECT_EQ(proxied.local_addresses[0].to_string(), "198.18.1.102");
    EXPECT_EQ(proxied.backends[0].port, 8443);

    // Every table holds at least 100 slots per backend: nothing to warn about.
    EXPECT_TRUE(c.warnings.empty());
}

TEST(Config, RoutesLoadAndLeadToBackends) {
    const Config c = load_config_text(R"(
ports:
  - name: back
    device: net_null0
    addresses: [198.18.1.1/24, "2001:db8:0:2::1/64"]
    exception_path: {tap: tb}
routes:
  - {prefix: 198.18.20.0/24, via: 198.18.1.11}
  - {prefix: 0.0.0.0/0, via: 198.18.1.254}
  - {prefix: "2001:db8:20::/48", via: "2001:db8:0:2::11"}
  - {prefix: 198.18.20.7/32, via: 198.18.1.12}
services:
  - name: web
    vip: 198.18.10.1
    protocol: tcp
    port: 80
    local_addresses: [198.18.1.100]
    backends: [{address: 198.18.20.11}, {address: 203.0.113.1}, {address: 198.18.1.11}]
  - name: web6
    vip: "2001:db8:10::1"
    protocol: tcp
    mode: nat
    backends: [{address: "2001:db8:20::11"}]
)",
                                      "routes.yaml", 4);
    ASSERT_EQ(c.routes.size(), 4u);
    EXPECT_EQ(c.routes[0].prefix.to_string(), "198.18.20.0/24");
    EXPECT_EQ(c.routes[0].via.to_string(), "198.18.1.11");
    EXPECT_EQ(c.routes[1].prefix.to_string(), "0.0.0.0/0");
    EXPECT_EQ(c.routes[2].prefix.to_string(), "2001:db8:20::/48");
    EXPECT_EQ(c.routes[2].via.to_string(), "2001:db8:0:2::11");
    EXPECT_EQ(c.routes[3].prefix.to_string(), "198.18.20.7/32");
    ASSERT_EQ(c.services.size(), 2u);
    EXPECT_EQ(c.services[0].backends.size(), 3u);
}

TEST(Config, SmallMaglevTableIsAWarning) {
    const Config c = load_config_text(R"(
ports: [{name: back, device: net_null0, addresses: [198.18.1.1/24], exception_path: {tap: tb}}]
services:
  - name: web
    vip: 198.18.10.1
    protocol: tcp
    mode: nat
    maglev_size: 7
    backends: [{address: 198.18.1.11}, {address: 198.18.1.12}]
)",
                                      "small.yaml", 4);
    ASSERT_EQ(c.warnings.size(), 1u);
    EXPECT_EQ(c.warnings[0].rfind("small.yaml:4:5: services[0].maglev_size: 7 is less than 100 x 2 backends", 0), 0u)
        << c.warnings[0];
}

} // namespace
} // namespace sluice::ctrl

// The management API's section, health checks and drained backends.
namespace sluice::ctrl {
namespace {

using test::TempFile;

#define API_PORTS                                                                          \
    "ports:\n  - name: back\n    device: net_null0\n    exception_path: {tap: tb}\n"           \
    "    addresses: [198.18.1.1/24, \"2001:db8:0:2::1/64\"]\n"
// A nat service on port 80, its health check at line 12.
#define NAT_SERVICE(check)                                                                 \
    API_PORTS "services:\n  - name: web\n    vip: 198.18.10.1\n    protocol: tcp\n"            \
              "    port: 80\n    mode: nat\n    health_check: " check "\n"                     \
              "    backends: [{address: 198.18.1.11}]\n"
// A nat service on port 80 with one backend, at line 13.
#define NAT_BACKEND(backend)                                                               \
    API_PORTS "services:\n  - name: web\n    vip: 198.18.10.1\n    protocol: tcp\n"            \
              "    port: 80\n    mode: nat\n    backends:\n      - " backend "\n"

TEST(ConfigApi, Defaults) {
    const Config c = load_config_text(minimal_yaml, "min.yaml", 2);
    EXPECT_EQ(c.api.listen(), "127.0.0.1:8480");
    EXPECT_TRUE(c.api.listen_address.is_loopback());
    EXPECT_EQ(c.api.listen_port, 8480);
    EXPECT_EQ(c.api.token, "");
    EXPECT_EQ(c.api.token_file, "");
    EXPECT_TRUE(c.api.read_only());
    EXPECT_EQ(c.api.max_body_bytes, 65536u);
    EXPECT_EQ(c.api.max_clients, 64u);
    EXPECT_FALSE(c.api.tls);
    EXPECT_TRUE(c.warnings.empty());
}

TEST(ConfigApi, EveryKeySet) {
    const TempFile token("0123456789abcdef-token\r\nsecond line is ignored\n");
    const TempFile cert("-----BEGIN CERTIFICATE-----\n"), key("key\n"), ca("ca\n");
    const Config c = load_config_text(std::string(minimal_yaml) +
                                          "api:\n"
                                          "  listen: \"[::1]:9000\"\n"
                                          "  token_file: " + token.path() + "\n"
                                          "  max_body_bytes: 1024\n"
                                          "  max_clients: 4096\n"
                                          "  tls:\n"
                                          "    certificate: " + cert.path() + "\n"
                                          "    private_key: " + key.path() + "\n"
                                          "    client_ca: " + ca.path() + "\n",
                                      "api.yaml", 2);
    EXPECT_FALSE(c.api.listen_address.is_v4());
    EXPECT_EQ(c.api.listen(), "[::1]:9000");
    EXPECT_EQ(c.api.token, "0123456789abcdef-token");
    EXPECT_EQ(c.api.token_file, token.path());
    EXPECT_FALSE(c.api.read_only());
    EXPECT_EQ(c.api.max_body_bytes, 1024u);
    EXPECT_EQ(c.api.max_clients, 4096u);
    ASSERT_TRUE(c.api.tls);
    EXPECT_EQ(c.api.tls->certificate, cert.path());
    EXPECT_EQ(c.api.tls->private_key, key.path());
    EXPECT_EQ(c.api.tls->client_ca, ca.path());
    EXPECT_TRUE(c.warnings.empty()) << c.warnings[0];
}

TEST(ConfigApi, InlineTokenAndAnyPort) {
    const Config c = load_config_text(std::string(minimal_yaml) +
                                          "api: {listen: 198.18.0.1:0, token: s3cret}\n",
                                      "api.yaml", 2);
    EXPECT_EQ(c.api.listen(), "198.18.0.1:0");
    EXPECT_EQ(c.api.token, "s3cret");
    EXPECT_EQ(c.api.token_file, "");
    EXPECT_FALSE(c.api.tls);
    // Short, and in clear text on an address other hosts reach.
    ASSERT_EQ(c.warnings.size(), 2u);
    EXPECT_EQ(c.warnings[0], "api.yaml:5:36: api.token: a token of 6 characters is easy to "
                             "guess; use 16 or more");
    EXPECT_EQ(c.warnings[1], "api.yaml:5:15: api.listen: 198.18.0.1:0 is not a loopback "
                             "address and api.tls is not set: the token travels in clear text");
}

TEST(ConfigApi, TokenFileReadableByAllIsAWarning) {
    const TempFile token("0123456789abcdef0123\n", 0644);
    const Config c = load_config_text(
        std::string(minimal_yaml) + "api: {token_file: " + token.path() + "}\n", "api.yaml", 2);
    EXPECT_EQ(c.api.token, "0123456789abcdef0123");
    ASSERT_EQ(c.warnings.size(), 1u);
    EXPECT_NE(c.warnings[0].find("api.token_file: \"" + token.path() +
                                 "\" can be read by every user of this host"),
              std::string::npos)
        << c.warnings[0];
}

// Rejected with `key` and a message containing `message`.
void expect_rejected(const std::string &yaml, const std::string &key, const std::string &message) {
    try {
        load_config_text(yaml, "bad.yaml", 2);
        FAIL() << "loaded: " << yaml;
    } catch (const ConfigError &e) {
        EXPECT_EQ(e.key(), key) << e.what();
        EXPECT_NE(e.message().find(message), std::string::npos) << e.what();
    }
}

TEST(ConfigApi, BadTokenFiles) {
    const TempFile empty(""), blank("\nsecond\n"), spaced("two words\n");
    const TempFile huge(std::string(5000, 'x'));
    const std::string api = std::string(minimal_yaml) + "api: {token_file: ";
    expect_rejected(api + empty.path() + "}\n", "api.token_file",
                    "the first line of \"" + empty.path() + "\" is empty: it must hold the token");
    expect_rejected(api + blank.path() + "}\n", "api.token_file", "is empty");
    expect_rejected(api + spaced.path() + "}\n", "api.token_file",
                    "is not a token: expected 1..4096 visible ASCII characters, without spaces");
    expect_rejected(api + huge.path() + "}\n", "api.token_file", "is not a token");
    // The message never shows the token.
    try {
        load_config_text(api + spaced.path() + "}\n", "bad.yaml", 2);
    } catch (const ConfigError &e) {
        EXPECT_EQ(std::string(e.what()).find("two words"), std::string::npos) << e.what();
    }
}

TEST(ConfigApi, UnreadableTlsFile) {
    const TempFile cert("cert\n"), locked("key\n", 0);
    if (geteuid() == 0)
        GTEST_SKIP() << "root reads files whatever their mode";
    expect_rejected(std::string(minimal_yaml) + "api:\n  tls: {certificate: " + cert.path() +
                        ", private_key: " + locked.path() + "}\n",
                    "api.tls.private_key",
                    "cannot read \"" + locked.path() + "\": Permission denied");
}

TEST(ConfigHealthCheck, EveryKeySet) {
    const Config c = load_config_text(NAT_SERVICE(R"({type: http, interval_ms: 500,
      timeout_ms: 500, rise: 1, fall: 100, port: 8081, method: HEAD,
      path: "/healthz?full=1", host: web.example, expected_status: ["200", "204-299", 302]})"),
                                      "hc.yaml", 4);
    ASSERT_EQ(c.services.size(), 1u);
    ASSERT_TRUE(c.services[0].health_check);
    const HealthCheckSpec &h = *c.services[0].health_check;
    EXPECT_EQ(h.type, HealthCheckType::http);
    EXPECT_EQ(h.interval_ms, 500u);
    EXPECT_EQ(h.timeout_ms, 500u);
    EXPECT_EQ(h.rise, 1u);
    EXPECT_EQ(h.fall, 100u);
    EXPECT_EQ(h.port, 8081);
    EXPECT_EQ(h.method, "HEAD");
    EXPECT_EQ(h.path, "/healthz?full=1");
    EXPECT_EQ(h.host, "web.example");
    EXPECT_EQ(h.expected_status, (std::vector<std::pair<uint16_t, uint16_t>>{
                                     {200, 200}, {204, 299}, {302, 302}}));
}

TEST(ConfigHealthCheck, Defaults) {
    const Config none = load_config_text(NAT_SERVICE("{}"), "hc.yaml", 4);
    ASSERT_TRUE(none.services[0].health_check);
    EXPECT_EQ(*none.services[0].health_check, HealthCheckSpec{});

    const Config http = load_config_text(NAT_SERVICE("{type: http}"), "hc.yaml", 4);
    HealthCheckSpec expected;
    expected.type = HealthCheckType::http;
    expected.expected_status = {{200, 399}};
    EXPECT_EQ(*http.services[0].health_check, expected);
    EXPECT_EQ(http.services[0].health_check->method, "GET");
    EXPECT_EQ(http.services[0].health_check->path, "/");
    EXPECT_EQ(http.services[0].health_check->host, "");

    // No health_check: no checks, backends always up.
    const Config lab = load_config_text(lab_yaml, "lab.yaml", 4);
    EXPECT_TRUE(lab.services.empty());
    const Config plain = load_config_text(
        API_PORTS "services: [{name: web, vip: 198.18.10.1, protocol: tcp, mode: nat}]\n",
        "plain.yaml", 4);
    EXPECT_FALSE(plain.services[0].health_check);
}

TEST(ConfigBackend, DrainedAndPortZero) {
    const Config c = load_config_text(API_PORTS R"(services:
  - name: web
    vip: 198.18.10.1
    protocol: tcp
    port: 80
    mode: dsr
    backends:
      - {address: 198.18.1.11, drained: true, weight: 3}
      - {address: 198.18.1.12, drained: false, port: 0}
      - {address: 198.18.1.13, port: 80}
  - name: all
    vip: 198.18.10.2
    protocol: udp
    mode: nat
    health_check: {port: 53}
    backends: [{address: 198.18.1.11, port: 0}]
)",
                                      "drained.yaml", 4);
    const auto &web = c.services[0].backends;
    ASSERT_EQ(web.size(), 3u);
    EXPECT_TRUE(web[0].drained);
    EXPECT_EQ(web[0].weight, 3u);  // kept for when it is undrained
    EXPECT_FALSE(web[1].drained);
    EXPECT_EQ(web[1].port, 0);
    EXPECT_FALSE(web[2].drained);
    EXPECT_EQ(web[2].port, 80);
    EXPECT_EQ(c.services[1].backends[0].port, 0);
    EXPECT_EQ(c.services[1].health_check->port, 53);
}

const BadConfig bad_api_configs[] = {
    // api (at line 2).
    {"api is a sequence", PORT "api: [listen]\n", 2, 6, "api", "expected a map, got a sequence"},
    {"unknown key in api", PORT "api: {port: 80}\n", 2, 7, "api.port",
     "unknown key, expected one of: listen, token, token_file, max_body_bytes, max_clients, "
     "tls"},
    {"listen without a port", PORT "api: {listen: 127.0.0.1}\n", 2, 15, "api.listen",
     "expected ADDRESS:PORT or [IPV6]:PORT like 127.0.0.1:8480 or [::1]:8480, got "
     "\"127.0.0.1\""},
    {"listen on IPv6 without brackets", PORT "api: {listen: \"::1:8480\"}\n", 2, 15, "api.listen",
     "got \"::1:8480\""},
    {"listen on IPv4 in brackets", PORT "api: {listen: \"[127.0.0.1]:80\"}\n", 2, 15,
     "api.listen", "got \"[127.0.0.1]:80\""},
    {"listen port out of range", PORT "api: {listen: \"127.0.0.1:65536\"}\n", 2, 15,
     "api.listen", "got \"127.0.0.1:65536\""},
    {"listen on a name", PORT "api: {listen: \"localhost:8480\"}\n", 2, 15, "api.listen",
     "got \"localhost:8480\""},
    {"listen on a multicast address", PORT "api: {listen: \"224.0.0.1:80\"}\n", 2, 15,
     "api.listen", "expected an address of this host, got 224.0.0.1"},
    {"token and token_file", PORT "api: {token: abcdefghijklmnopq, token_file: /x}\n", 2, 45,
     "api.token_file", "give token or token_file, not both"},
    {"token with a space", PORT "api: {token: \"two words\"}\n", 2, 14, "api.token",
     "expected a token of 1..4096 visible ASCII characters, without spaces, got 9 characters "
     "with a space or a control or non-ASCII character"},
    {"empty token", PORT "api: {token: \"\"}\n", 2, 14, "api.token",
     "expected a token of 1..4096 visible ASCII characters, without spaces, got 0 characters"},
    {"token is a map", PORT "api: {token: {a: b}}\n", 2, 14, "api.token", "got a map"},
    {"token file that does not exist", PORT "api: {token_file: /nonexistent/sluice-token}\n", 2,
     19, "api.token_file",
     "cannot read \"/nonexistent/sluice-token\": No such file or directory"},
    {"token file is a directory", PORT "api: {token_file: /}\n", 2, 19, "api.token_file",
     "cannot read \"/\": it is a directory"},
    {"token file is a device", PORT "api: {token_file: /dev/null}\n", 2, 19, "api.token_file",
     "cannot read \"/dev/null\": it is not a regular file"},
    {"empty token file name", PORT "api: {token_file: \"\"}\n", 2, 19, "api.token_file",
     "expected a file name, got \"\""},
    {"max_body_bytes too small", PORT "api: {max_body_bytes: 100}\n", 2, 23,
     "api.max_body_bytes", "expected a number of bytes in 1024..16777216, got 100"},
    {"max_clients zero", PORT "api: {max_clients: 0}\n", 2, 20, "api.max_clients",
     "expected a number of connections in 1..4096, got 0"},
    {"max_clients negative", PORT "api: {max_clients: -1}\n", 2, 20, "api.max_clients",
     "got \"-1\""},
    {"tls without private_key", PORT "api:\n  tls: {certificate: /etc/os-release}\n", 3, 8,
     "api.tls.private_key", "required key is missing"},
    {"tls certificate that does not exist",
     PORT "api:\n  tls: {certificate: /nonexistent/cert.pem, private_key: /nonexistent/k}\n", 3,
     22, "api.tls.certificate", "cannot read \"/nonexistent/cert.pem\": No such file"},
    {"tls certificate is a device", PORT "api:\n  tls:\n    certificate: /dev/null\n", 4,
     18, "api.tls.certificate", "it is not a regular file"},
    {"tls client_ca that does not exist",
     PORT "api:\n  tls: {certificate: /etc/os-release, private_key: /etc/os-release,\n"
          "        client_ca: /nonexistent/ca.pem}\n",
     4, 20, "api.tls.client_ca", "cannot read \"/nonexistent/ca.pem\": No such file"},
    {"unknown key in tls", PORT "api:\n  tls: {ca: x}\n", 3, 9, "api.tls.ca",
     "unknown key, expected one of: certificate, private_key, client_ca"},

    // health_check (at line 12, its value at column 19).
    {"health_check is a scalar", NAT_SERVICE("tcp"), 12, 19, "services[0].health_check",
     "expected a map, got \"tcp\""},
    {"unknown key in a health check", NAT_SERVICE("{interval: 5}"), 12, 20,
     "services[0].health_check.interval",
     "unknown key, expected one of: type, interval_ms, timeout_ms, rise, fall, port, method, "
     "path, host, expected_status"},
    {"unknown health check type", NAT_SERVICE("{type: icmp}"), 12, 26,
     "services[0].health_check.type", "expected one of tcp, http, got \"icmp\""},
    {"interval too short", NAT_SERVICE("{interval_ms: 99}"), 12, 33,
     "services[0].health_check.interval_ms", "expected milliseconds in 100..3600000, got 99"},
    {"interval too long", NAT_SERVICE("{interval_ms: 3600001}"), 12, 33,
     "services[0].health_check.interval_ms", "got 3600001"},
    {"timeout longer than the interval", NAT_SERVICE("{interval_ms: 500, timeout_ms: 501}"), 12,
     50, "services[0].health_check.timeout_ms",
     "expected milliseconds (up to interval_ms) in 10..500, got 501"},
    {"timeout too short", NAT_SERVICE("{timeout_ms: 9}"), 12, 32,
     "services[0].health_check.timeout_ms", "in 10..2000, got 9"},
    {"default timeout longer than the interval", NAT_SERVICE("{interval_ms: 500}"), 12, 19,
     "services[0].health_check.timeout_ms",
     "the default of 1000 ms is longer than interval_ms: set a timeout up to 500"},
    {"rise zero", NAT_SERVICE("{rise: 0}"), 12, 26, "services[0].health_check.rise",
     "expected a number of checks in 1..100, got 0"},
    {"fall too many", NAT_SERVICE("{fall: 101}"), 12, 26, "services[0].health_check.fall",
     "expected a number of checks in 1..100, got 101"},
    {"check port out of range", NAT_SERVICE("{port: 65536}"), 12, 26,
     "services[0].health_check.port", "expected a port (0: the backend's) in 0..65535"},
    {"method on a tcp check", NAT_SERVICE("{method: GET}"), 12, 28,
     "services[0].health_check.method",
     "only http health checks send a request: leave method out or set type: http"},
    {"expected_status on a tcp check", NAT_SERVICE("{type: tcp, expected_status: [200]}"), 12,
     48, "services[0].health_check.expected_status", "only http health checks send a request"},
    {"unknown method", NAT_SERVICE("{type: http, method: POST}"), 12, 40,
     "services[0].health_check.method", "expected one of GET, HEAD, got \"POST\""},
    {"path without a slash", NAT_SERVICE("{type: http, path: healthz}"), 12, 38,
     "services[0].health_check.path",
     "expected a path starting with '/', of up to 1024 visible ASCII characters, got "
     "\"healthz\""},
    {"path with a space", NAT_SERVICE("{type: http, path: \"/a b\"}"), 12, 38,
     "services[0].health_check.path", "got \"/a b\""},
    {"host with a space", NAT_SERVICE("{type: http, host: \"a b\"}"), 12, 38,
     "services[0].health_check.host",
     "expected a Host header of up to 255 visible ASCII characters, got \"a b\""},
    {"status out of range", NAT_SERVICE("{type: http, expected_status: [600]}"), 12, 50,
     "services[0].health_check.expected_status[0]",
     "expected a status like \"200\" or a range like \"200-399\", in 100..599, got \"600\""},
    {"status that is no number", NAT_SERVICE("{type: http, expected_status: [\"2xx\"]}"), 12,
     50, "services[0].health_check.expected_status[0]", "got \"2xx\""},
    {"status range upside down", NAT_SERVICE("{type: http, expected_status: [\"399-200\"]}"),
     12, 50, "services[0].health_check.expected_status[0]",
     "expected the lower status first, got \"399-200\""},
    {"status range open", NAT_SERVICE("{type: http, expected_status: [\"200-\"]}"), 12, 50,
     "services[0].health_check.expected_status[0]", "got \"200-\""},
    {"no expected status", NAT_SERVICE("{type: http, expected_status: []}"), 12, 49,
     "services[0].health_check.expected_status",
     "expected at least one status or range, got an empty sequence"},
    {"expected_status is a scalar", NAT_SERVICE("{type: http, expected_status: 200}"), 12, 49,
     "services[0].health_check.expected_status", "expected a sequence, got \"200\""},
    {"every-port service without a check port",
     API_PORTS "services:\n  - {name: all, vip: 198.18.10.1, protocol: tcp, mode: nat,\n"
               "     health_check: {type: tcp}}\n",
     8, 20, "services[0].health_check.port",
     "a service on every port has no port to check: set health_check.port"},
    {"every-port service with check port 0",
     API_PORTS "services:\n  - {name: all, vip: 198.18.10.1, protocol: tcp, mode: nat,\n"
               "     health_check: {port: 0}}\n",
     8, 27, "services[0].health_check.port", "a service on every port has no port to check"},

    // drained (the backend at line 13, drained's value at column 41).
    {"drained is yes", NAT_BACKEND("{address: 198.18.1.11, drained: yes}"), 13, 41,
     "services[0].backends[0].drained", "expected one of false, true, got \"yes\""},
    {"drained is 1", NAT_BACKEND("{address: 198.18.1.11, drained: 1}"), 13, 41,
     "services[0].backends[0].drained", "expected one of false, true, got \"1\""},
    {"drained is empty", NAT_BACKEND("{address: 198.18.1.11, drained: }"), 13, 32,
     "services[0].backends[0].drained", "got nothing"},
    {"unknown key in a backend", NAT_BACKEND("{address: 198.18.1.11, drain: true}"), 13, 32,
     "services[0].backends[0].drain",
     "unknown key, expected one of: address, port, weight, drained"},
    {"backend port out of range", NAT_BACKEND("{address: 198.18.1.11, port: 65536}"), 13, 38,
     "services[0].backends[0].port", "expected a port (0: the client's) in 0..65535"},
};

INSTANTIATE_TEST_SUITE_P(ConfigApi, BadConfigTest, testing::ValuesIn(bad_api_configs),
                         bad_config_name);

} // namespace
} // namespace sluice::ctrl

namespace sluice::ctrl {
namespace {

// Backends on one /20: `count` of them, as a flow sequence.
std::string many_backends(unsigned first, unsigned count) {
    std::string list;
    for (unsigned i = first; i < first + count; ++i)
        list += std::string(list.empty() ? "" : ", ") + "{address: 198.18." +
                std::to_string(16 + i / 256) + "." + std::to_string(i % 256) + "}";
    return "[" + list + "]";
}

TEST(Config, BackendsBeyondTheCounterSlotsAreRefused) {
    const auto config_with = [](unsigned second) {
        return std::string("ports:\n"
                           "  - {name: back, device: net_null0, addresses: [198.18.16.1/20],\n"
                           "     exception_path: {tap: tb}}\n"
                           "services:\n"
                           "  - {name: a, vip: 198.18.10.1, protocol: udp, port: 53, mode: nat,\n"
                           "     backends: ") + many_backends(2, 2048) + "}\n" +
               "  - {name: b, vip: 198.18.10.2, protocol: udp, port: 53, mode: nat,\n"
               "     backends: " + many_backends(2, second) + "}\n";
    };
    EXPECT_EQ(load_config_text(config_with(2048), "full.yaml", 2).services.size(), 2u);
    try {
        load_config_text(config_with(2049), "over.yaml", 2);
        ADD_FAILURE() << "4097 backends were accepted";
    } catch (const ConfigError &e) {
        EXPECT_EQ(e.key(), "services[1]");
        EXPECT_NE(e.message().find("too many backends: the services have 4097"),
                  std::string::npos)
            << e.what();
    }
}

// Each set of service timeouts is a profile of the workers' flow tables,
// which tell 255 apart besides lb.timeouts.
TEST(Config, MoreSetsOfServiceTimeoutsThanProfilesAreRefused) {
    const auto config_with = [](unsigned services) {
        std::string text = "ports:\n"
                           "  - {name: back, device: net_null0, addresses: [198.18.1.1/24],\n"
                           "     exception_path: {tap: tb}}\n"
                           "services:\n";
        for (unsigned i = 1; i <= services; ++i)
            text += "  - {name: s" + std::to_string(i) +
                    ", vip: 198.18.10.1, protocol: udp, mode: nat, port: " + std::to_string(i) +
                    ", timeouts: {udp: " + std::to_string(30 + i) + "}}\n";
        // The same set again, and lb.timeouts' own: no new profile.
        text += "  - {name: again, vip: 198.18.10.2, protocol: udp, mode: nat, port: 1,"
                " timeouts: {udp: 31}}\n"
                "  - {name: lbs, vip: 198.18.10.2, protocol: udp, mode: nat, port: 2,"
                " timeouts: {udp: 30}}\n";
        return text;
    };
    EXPECT_EQ(load_config_text(config_with(255), "full.yaml", 2).services.size(), 257u);
    try {
        load_config_text(config_with(256), "over.yaml", 2);
        ADD_FAILURE() << "256 sets of timeouts were accepted";
    } catch (const ConfigError &e) {
        EXPECT_EQ(e.key(), "services[255].timeouts");
        EXPECT_NE(e.message().find("more than 255 different sets of service timeouts"),
                  std::string::npos)
            << e.what();
    }
}

} // namespace
} // namespace sluice::ctrl
