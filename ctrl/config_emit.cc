#include "ctrl/config_emit.h"

namespace sluice::ctrl {

namespace {

// The loader's words for enums, in their order.
const char *hugepages_name(HugepageMode mode) {
    switch (mode) {
    case HugepageMode::automatic: return "auto";
    case HugepageMode::always: return "always";
    case HugepageMode::never: return "never";
    }
    return "auto";
}

const char *mode_name(ForwardingMode mode) {
    switch (mode) {
    case ForwardingMode::fullnat: return "fullnat";
    case ForwardingMode::nat: return "nat";
    case ForwardingMode::dsr: return "dsr";
    case ForwardingMode::proxy: return "proxy";
    }
    return "fullnat";
}

Json addresses_json(const std::vector<IpAddress> &addresses) {
    Json list = Json::array();
    for (const IpAddress &address : addresses)
        list.push_back(address.to_string());
    return list;
}

Json port_json(const PortConfig &port) {
    Json addresses = Json::array();
    for (const InterfaceAddress &address : port.addresses)
        addresses.push_back(address.to_string());
    Json j = {{"name", port.name},
              {"device", port.device},
              {"addresses", addresses},
              {"mtu", port.mtu},
              {"rx_descriptors", port.rx_descriptors},
              {"tx_descriptors", port.tx_descriptors}};
    if (!port.exception_tap.empty())
        j["exception_path"] = {{"tap", port.exception_tap}};
    return j;
}

Json api_json(const ApiConfig &api) {
    Json j = {{"listen", api.listen()}};
    // The file's way of giving the token: a file is read again on load.
    if (!api.token_file.empty())
        j["token_file"] = api.token_file;
    else if (!api.token.empty())
        j["token"] = api.token;
    j["max_body_bytes"] = api.max_body_bytes;
    j["max_clients"] = api.max_clients;
    if (api.tls) {
        Json tls = {{"certificate", api.tls->certificate}, {"private_key", api.tls->private_key}};
        if (!api.tls->client_ca.empty())
            tls["client_ca"] = api.tls->client_ca;
        j["tls"] = tls;
    }
    return j;
}

// The connection keys an etcd feed and the registration share.
void add_etcd_connection(Json &j, const EtcdSettings &etcd) {
    j["endpoints"] = etcd.endpoints;
    j["prefix"] = etcd.prefix;
    if (!etcd.username.empty()) {
        j["username"] = etcd.username;
        // The file's way of giving the password: a file is read again on load.
        if (!etcd.password_file.empty())
            j["password_file"] = etcd.password_file;
        else
            j["password"] = etcd.password;
    }
    if (!etcd.tls_ca.empty() || !etcd.tls_cert.empty() || !etcd.tls_server_name.empty()) {
        Json tls = Json::object();
        if (!etcd.tls_ca.empty())
            tls["ca"] = etcd.tls_ca;
        if (!etcd.tls_cert.empty()) {
            tls["certificate"] = etcd.tls_cert;
            tls["private_key"] = etcd.tls_key;
        }
        if (!etcd.tls_server_name.empty())
            tls["server_name"] = etcd.tls_server_name;
        j["tls"] = tls;
    }
    j["connect_timeout_ms"] = etcd.connect_timeout_ms;
    j["request_timeout_ms"] = etcd.request_timeout_ms;
}

Json feed_json(const FeedConfig &feed) {
    Json j = {{"name", feed.name}, {"type", to_string(feed.kind)}};
    switch (feed.kind) {
    case FeedKind::etcd:
        add_etcd_connection(j, feed.etcd);
        j["watch_silence_ms"] = feed.etcd.watch_silence_ms;
        break;
    case FeedKind::dns: {
        const DnsFeedSettings &dns = feed.dns;
        Json services = Json::object();
        for (const auto &[service, name] : dns.services)
            services[service] = name;
        j["servers"] = dns.servers;
        j["services"] = services;
        j["query_timeout_ms"] = dns.query_timeout_ms;
        j["tries"] = dns.tries;
        j["min_refresh_s"] = dns.min_refresh_s;
        j["max_refresh_s"] = dns.max_refresh_s;
        j["negative_refresh_s"] = dns.negative_refresh_s;
        break;
    }
    case FeedKind::file:
        j["path"] = feed.file.path;
        break;
    }
    return j;
}

Json discovery_json(const DiscoveryConfig &discovery) {
    Json feeds = Json::array();
    for (const FeedConfig &feed : discovery.feeds)
        feeds.push_back(feed_json(feed));
    Json j = {{"deletion_grace_ms", discovery.deletion_grace_ms}, {"feeds", feeds}};
    if (const auto &registration = discovery.registration) {
        Json r = Json::object();
        add_etcd_connection(r, registration->etcd);
        if (!registration->instance.empty())
            r["instance"] = registration->instance;
        r["ttl_s"] = registration->ttl_s;
        j["registration"] = r;
    }
    return j;
}

} // namespace

Json health_check_json(const HealthCheckSpec &check) {
    const bool http = check.type == HealthCheckType::http;
    Json j = {{"type", http ? "http" : "tcp"},
              {"interval_ms", check.interval_ms},
              {"timeout_ms", check.timeout_ms},
              {"rise", check.rise},
              {"fall", check.fall},
              {"port", check.port}};
    if (!http)
        return j;
    j["method"] = check.method;
    j["path"] = check.path;
    j["host"] = check.host;
    Json statuses = Json::array();
    for (const auto &[low, high] : check.expected_status)
        statuses.push_back(low == high ? std::to_string(low)
                                       : std::to_string(low) + "-" + std::to_string(high));
    if (statuses.empty())  // what an empty list means
        statuses.push_back("200-399");
    j["expected_status"] = statuses;
    return j;
}

Json backend_json(const BackendConfig &backend) {
    return {{"address", backend.address.to_string()},
            {"port", backend.port},
            {"weight", backend.weight},
            {"drained", backend.drained}};
}

Json timeouts_json(const FlowTimeoutConfig &t) {
    return {{"tcp_syn", t.tcp_syn},
            {"tcp_established", t.tcp_established},
            {"tcp_closing", t.tcp_closing},
            {"udp", t.udp}};
}

Json service_json(const ServiceConfig &service) {
    Json j = {{"name", service.name},
              {"vip", service.vip.to_string()},
              {"protocol", service.protocol == 17 ? "udp" : "tcp"},
              {"port", service.port},
              {"mode", mode_name(service.mode)}};
    if (service.mode == ForwardingMode::fullnat || service.mode == ForwardingMode::proxy)
        j["local_addresses"] = addresses_json(service.local_addresses);
    if (service.mode == ForwardingMode::dsr) {
        const bool gue = service.encapsulation == DsrEncapsulation::gue;
        j["encapsulation"] = gue ? "gue" : "ipip";
        if (gue)
            j["gue_port"] = service.gue_port;
    }
    j["maglev_size"] = service.maglev_size;
    j["removed_backend_flows"] =
        service.removed_backend_flows == RemovedBackendFlows::reset ? "reset" : "keep";
    if (service.timeouts)
        j["timeouts"] = timeouts_json(*service.timeouts);
    if (service.health_check)
        j["health_check"] = health_check_json(*service.health_check);
    Json backends = Json::array();
    for (const BackendConfig &backend : service.backends)
        backends.push_back(backend_json(backend));
    j["backends"] = backends;
    if (!service.feeds.empty())
        j["feeds"] = service.feeds;
    return j;
}

Json config_json(const Config &config) {
    Json eal = {{"hugepages", hugepages_name(config.eal.hugepages)},
                {"memory_mb", config.eal.memory_mb}};
    if (!config.eal.file_prefix.empty())
        eal["file_prefix"] = config.eal.file_prefix;
    eal["log_level"] = config.eal.log_level;
    eal["extra_args"] = config.eal.extra_args;

    // JSON keys are strings; the loader reads "2" as lcore 2.
    Json cpus = Json::object();
    for (const auto &[lcore, cpu] : config.cores.cpus)
        cpus[std::to_string(lcore)] = cpu;
    const Json cores = {
        {"control", config.cores.control}, {"workers", config.cores.workers}, {"cpus", cpus}};

    const Json worker = {{"burst_size", config.worker.burst_size},
                         {"tx_drain_us", config.worker.tx_drain_us},
                         {"idle_sleep_max_us", config.worker.idle_sleep_max_us}};

    Json ports = Json::array();
    for (const PortConfig &port : config.ports)
        ports.push_back(port_json(port));

    Json routes = Json::array();
    for (const RouteConfig &route : config.routes)
        routes.push_back({{"prefix", route.prefix.to_string()}, {"via", route.via.to_string()}});

    const Json lb = {{"maglev_seed", config.lb.maglev_seed},
                     {"flow_table_size", config.lb.flow_table_size},
                     {"timeouts", timeouts_json(config.lb.timeouts)}};

    const TcpConfig &c = config.tcp;
    const Json tcp = {{"max_connections", c.max_connections},
                      {"syn_backlog", c.syn_backlog},
                      {"max_time_wait", c.max_time_wait},
                      {"send_buffer", c.send_buffer},
                      {"receive_buffer", c.receive_buffer},
                      {"mss", c.mss},
                      {"backend_port_share", c.backend_port_share},
                      {"idle_timeout", c.idle_timeout},
                      {"congestion", c.cubic ? "cubic" : "newreno"},
                      {"keepalive_idle", c.keepalive_idle},
                      {"keepalive_interval", c.keepalive_interval},
                      {"keepalive_probes", c.keepalive_probes}};

    Json services = Json::array();
    for (const ServiceConfig &service : config.services)
        services.push_back(service_json(service));

    return {{"eal", eal},   {"cores", cores},       {"worker", worker},
            {"ports", ports}, {"routes", routes},   {"lb", lb}, {"tcp", tcp},
            {"discovery", discovery_json(config.discovery)},
            {"services", services}, {"api", api_json(config.api)}};
}

std::string emit_config(const Config &config) { return config_json(config).dump(2) + "\n"; }

} // namespace sluice::ctrl
