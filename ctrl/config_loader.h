// The config loader's sections, one member function each, on top of the
// strict YAML readers. Private to ctrl/: config.cc holds the EAL, cores,
// worker and ports sections; config_routes.cc the static routes;
// config_services.cc the load-balancing ones; config_api.cc the management
// API's.
#pragma once

#include "ctrl/config.h"
#include "ctrl/route_table.h"
#include "ctrl/yaml_reader.h"

namespace sluice::ctrl {

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
    void read_services(const Field &f, Config &config) const;
    ServiceConfig read_service(const Field &f, const Config &config,
                               const RouteTable &routes) const;
    void read_backends(const Field &f, const Config &config, const RouteTable &routes,
                       ServiceConfig &service) const;
    std::optional<HealthCheckSpec> read_health_check(const Field &f,
                                                     const ServiceConfig &service) const;
    IpAddress unicast_address(const Field &f) const;

    // config_api.cc
    void read_api(const Field &f, Config &config) const;

    unsigned cpus_;
};

} // namespace sluice::ctrl
