// sluiced's configuration: one YAML file, validated strictly before the EAL
// starts. A Config that load_config() returns is complete and consistent; the
// rest of the program never re-checks it.
#pragma once

#include <stdexcept>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ctrl/discovery_settings.h"
#include "ctrl/health_check_spec.h"
#include "dataplane/net_addr.h"
#include "lb/snapshot.h"

namespace sluice::ctrl {

enum class HugepageMode { automatic, always, never };

struct EalConfig {
    // auto: use hugepages when some are free and hugetlbfs is mounted.
    HugepageMode hugepages = HugepageMode::automatic;
    unsigned memory_mb = 512;
    // Empty: "sluice-<pid>", so that instances never share runtime files.
    std::string file_prefix;
    std::string log_level = "notice";
    std::vector<std::string> extra_args;

    bool operator==(const EalConfig &) const = default;
};

struct CoreConfig {
    unsigned control = 0;                 // EAL main lcore: control plane
    std::vector<unsigned> workers = {1};  // one worker per lcore
    // lcore → CPU for the lcores that do not run on the CPU of their number
    // (EAL --lcores); two lcores may then share a CPU.
    std::map<unsigned, unsigned> cpus;

    bool operator==(const CoreConfig &) const = default;
};

struct WorkerTuning {
    unsigned burst_size = 32;         // packets per rx_burst
    unsigned tx_drain_us = 100;       // a partial TX burst waits at most this long
    unsigned idle_sleep_max_us = 500; // backoff ceiling for an idle worker; 0 = busy poll

    bool operator==(const WorkerTuning &) const = default;
};

struct PortConfig {
    std::string name;
    std::string device;  // PCI address or vdev spec, with optional ",key=value" args
    std::vector<InterfaceAddress> addresses;
    unsigned mtu = 1500;
    unsigned rx_descriptors = 1024;
    unsigned tx_descriptors = 1024;
    std::string exception_tap;  // kernel interface name of the TAP; empty = none

    // "net_af_packet0" of "net_af_packet0,iface=x": the DPDK device name.
    std::string device_name() const;
    bool is_pci() const;

    bool operator==(const PortConfig &) const = default;
};

// The data plane's own words for a service's behaviour.
using lb::DsrEncapsulation;
using lb::ForwardingMode;
using lb::RemovedBackendFlows;

struct BackendConfig {
    IpAddress address;
    uint16_t port = 0;    // 0: the port the client connected to
    uint32_t weight = 1;  // 0: takes no new flows
    // Takes no new flows whatever its weight, which it keeps for when it is
    // undrained; its flows run on (whatever removed_backend_flows says).
    bool drained = false;

    bool operator==(const BackendConfig &) const = default;
};

// Idle timeouts of flows, in seconds.
struct FlowTimeoutConfig {
    unsigned tcp_syn = 5;
    unsigned tcp_established = 300;
    unsigned tcp_closing = 10;
    unsigned udp = 30;

    bool operator==(const FlowTimeoutConfig &) const = default;
};

// An L4 service: a VIP, protocol and port balanced over backends.
struct ServiceConfig {
    std::string name;
    IpAddress vip;
    uint8_t protocol = 6;  // IPPROTO_TCP or IPPROTO_UDP
    uint16_t port = 0;     // 0: every port of the VIP
    ForwardingMode mode = ForwardingMode::fullnat;
    std::vector<IpAddress> local_addresses;  // fullnat: SNAT; proxy: the backend connections' source
    DsrEncapsulation encapsulation = DsrEncapsulation::ipip;
    uint16_t gue_port = 6080;
    uint32_t maglev_size = 65537;
    RemovedBackendFlows removed_backend_flows = RemovedBackendFlows::keep;
    // Its flows' idle timeouts when they differ from lb.timeouts (the keys
    // the service leaves out are lb.timeouts' own). Absent: lb.timeouts.
    std::optional<FlowTimeoutConfig> timeouts;
    // Absent: the backends are always up.
    std::optional<HealthCheckSpec> health_check;
    std::vector<BackendConfig> backends;
    // Discovery feeds (DiscoveryConfig::feeds) whose endpoints join the
    // backends, in precedence order (ctrl/endpoint_merger.h).
    std::vector<std::string> feeds;

    bool operator==(const ServiceConfig &) const = default;
};

// A static route: `prefix` is reached through the gateway `via`, which is
// on-link on some port (ctrl/route_table.h looks routes up).
struct RouteConfig {
    IpPrefix prefix;
    IpAddress via;

    bool operator==(const RouteConfig &) const = default;
};

// The workers' userspace TCP, which proxy services run on. Per worker.
struct TcpConfig {
    unsigned max_connections = 16384;  // client and backend connections together
    unsigned syn_backlog = 1024;       // half-open connections before SYN cookies
    unsigned max_time_wait = 16384;
    unsigned send_buffer = 262144;     // bytes, per connection
    unsigned receive_buffer = 262144;
    unsigned mss = 1460;
    // Of each worker's slice of local ports, the percentage the proxy's
    // backend connections take (the rest is fullnat's); 0: no userspace TCP.
    unsigned backend_port_share = 25;
    unsigned idle_timeout = 300;       // seconds without a byte either way
    bool cubic = true;                 // else NewReno
    unsigned keepalive_idle = 0;       // seconds; 0: no keepalives
    unsigned keepalive_interval = 75;  // seconds between unanswered probes
    unsigned keepalive_probes = 9;     // unanswered, then the connection is reset

    bool operator==(const TcpConfig &) const = default;
};

struct LbConfig {
    uint64_t maglev_seed = 0;            // the same on every instance of a cluster
    unsigned flow_table_size = 262144;   // flows per worker
    FlowTimeoutConfig timeouts;

    bool operator==(const LbConfig &) const = default;
};

// The management API's TLS: HTTPS instead of HTTP. The files are PEM; the
// loader only checks that they can be read, the API server loads them.
struct ApiTlsConfig {
    std::string certificate;  // the server's certificate chain
    std::string private_key;
    std::string client_ca;    // non-empty: clients must show a certificate it signed

    bool operator==(const ApiTlsConfig &) const = default;
};

// The REST management API (docs/api.md). It runs on the control plane's
// kernel sockets, not on the DPDK ports.
struct ApiConfig {
    IpAddress listen_address{AddressFamily::ipv4, {127, 0, 0, 1}};
    uint16_t listen_port = 8480;  // 0: any free port (tests)
    // The bearer token of mutating calls; empty: the API is read-only.
    std::string token;
    // The file whose first line `token` is, or empty when api.token gave
    // the token itself.
    std::string token_file;
    size_t max_body_bytes = 65536;  // bigger request bodies get 413
    unsigned max_clients = 64;      // more connections are refused (503)
    std::optional<ApiTlsConfig> tls;

    bool read_only() const { return token.empty(); }
    // "127.0.0.1:8480" or "[::1]:8480", as the config writes it.
    std::string listen() const;

    bool operator==(const ApiConfig &) const = default;
};

enum class FeedKind { etcd, dns, file };
const char *to_string(FeedKind kind);

// A discovery feed: a registry the gateway follows for services' endpoints.
// Only the settings of its kind are used.
struct FeedConfig {
    std::string name;
    FeedKind kind = FeedKind::etcd;
    EtcdSettings etcd;
    DnsFeedSettings dns;
    FileFeedSettings file;

    bool operator==(const FeedConfig &) const = default;
};

// The gateway's own key in etcd, under a lease (ctrl/etcd_registration.h).
struct RegistrationConfig {
    EtcdSettings etcd;     // prefix defaults to /sluice/gateways
    std::string instance;  // the key's last segment; empty: the host's name
    uint32_t ttl_s = 10;

    bool operator==(const RegistrationConfig &) const = default;
};

struct DiscoveryConfig {
    // How long an endpoint deleted from its feed stays, drained.
    uint32_t deletion_grace_ms = 30'000;
    std::vector<FeedConfig> feeds;
    std::optional<RegistrationConfig> registration;

    bool operator==(const DiscoveryConfig &) const = default;
};

struct Config {
    std::string source;  // file the config came from, for messages
    EalConfig eal;
    CoreConfig cores;
    WorkerTuning worker;
    std::vector<PortConfig> ports;
    std::vector<RouteConfig> routes;
    LbConfig lb;
    TcpConfig tcp;
    std::vector<ServiceConfig> services;
    ApiConfig api;
    DiscoveryConfig discovery;
    // Not errors, but worth saying at start-up ("FILE:LINE:COLUMN: KEY: ...").
    std::vector<std::string> warnings;

    // The settings, not where they came from: `source` and `warnings` (whose
    // positions are the file's) are left out, so that a config equals itself
    // written out and read back (ctrl/config_emit.h).
    bool operator==(const Config &other) const;
};

// Thrown by the loader; what() is "FILE:LINE:COLUMN: KEY: MESSAGE".
class ConfigError : public std::runtime_error {
public:
    ConfigError(std::string file, int line, int column, std::string key, std::string message);
    const std::string &file() const { return file_; }
    int line() const { return line_; }
    int column() const { return column_; }
    const std::string &key() const { return key_; }
    const std::string &message() const { return message_; }

private:
    std::string file_, key_, message_;
    int line_, column_;
};

Config load_config_file(const std::string &path);
// With the CPU count of the machine as the process first saw it: once the
// EAL has pinned the main thread to its lcore, the affinity mask says 1.
Config load_config_file(const std::string &path, unsigned cpu_count);
Config load_config_text(std::string_view yaml, const std::string &source_name);

// CPUs this process may run on; the loader checks lcores against it. Tests
// pass their own.
unsigned online_cpu_count();
Config load_config_text(std::string_view yaml, const std::string &source_name,
                        unsigned cpu_count);

} // namespace sluice::ctrl
