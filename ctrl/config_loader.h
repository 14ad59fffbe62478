// The config loader's sections, one member function each, on top of the
// strict YAML readers. Private to ctrl/: config.cc holds the EAL, cores,
// worker and ports sections; config_routes.cc the static routes;
// config_services.cc the load-balancing ones; config_api.cc the management
// API's.
#pragma once

#include <sys/types.h>

#include "ctrl/backend_rules.h"
#include "ctrl/config.h"
#include "ctrl/route_table.h"
#include "ctrl/yaml_reader.h"

namespace sluice::ctrl {

// config_api.cc: a file name of up to PATH_MAX bytes.
bool is_path(std::string_view s);
// Opens `path` as a regular file; "" or why it cannot be read. With
// `first_line`, also reads the file's first line (without its line end),
// up to 4097 characters; `mode` gets its permission bits.
std::string read_start(const std::string &path, std::string *first_line, mode_t &mode);

// 1..63 characters of a-z, 0-9, '-', '_': services and feeds.
bool is_service_name(std::string_view s);
const char *const service_name_rule = "a name of 1..63 characters of a-z, 0-9, '_', '-'";

// True when `address` is one of the ports' own addresses.
bool is_port_address(const Config &config, const IpAddress &address);

class ConfigLoader : public YamlReader {
public:
    ConfigLoader(const std::string &source, unsigned cpu_count)
        : YamlReader(source), cpus_(cpu_count) {}

    Config load(std::string_view yaml) const;

private:
    Config read(const YAML::Node &document) const;

    void read_eal(const Field &f, EalConfig &eal) const;
    void read_cores(const Section &top, Config &config) const;
    void read_worker(const Field &f, WorkerTuning &worker) const;
    void read_ports(const Field &f, std::vector<PortConfig> &ports) const;
    void read_addresses(const Field &f, std::map<std::string, int> &seen,
                        std::vector<InterfaceAddress> &addresses) const;

    // config_routes.cc
    void read_routes(const Field &f, Config &config) const;

    // config_services.cc
    void read_lb(const Field &f, LbConfig &lb) const;
    void read_timeouts(const Field &f, FlowTimeoutConfig &timeouts) const;
    void read_tcp(const Field &f, TcpConfig &tcp) const;
    void read_services(const Field &f, Config &config) const;
    ServiceConfig read_service(const Field &f, const Config &config,
                               const BackendRules &rules) const;
    void read_backends(const Field &f, const BackendRules &rules, ServiceConfig &service) const;
    std::optional<HealthCheckSpec> read_health_check(const Field &f,
                                                     const ServiceConfig &service) const;
    IpAddress unicast_address(const Field &f) const;

    // config_api.cc
    void read_api(const Field &f, Config &config) const;
    // The file `f` names, which must be readable now (TLS files).
    std::string readable_file(const Field &f) const;
    // The first line of the file `f` names (secrets: tokens, passwords);
    // `path` and `mode` get its name and permission bits.
    std::string first_line_of(const Field &f, std::string &path, mode_t &mode) const;

    // config_discovery.cc
    void read_discovery(const Field &f, DiscoveryConfig &discovery) const;
    FeedConfig read_feed(const Field &f) const;
    // The keys of an etcd connection, shared by etcd feeds and the registration.
    void read_etcd_connection(const Section &s, EtcdSettings &etcd) const;
    RegistrationConfig read_registration(const Field &f) const;
    std::vector<std::string> read_service_feeds(const Field &f, const Config &config) const;

    unsigned cpus_;
};

} // namespace sluice::ctrl
