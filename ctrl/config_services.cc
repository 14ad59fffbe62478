// The load-balancing sections of the config: `lb` (cluster-wide settings)
// and `services` (VIPs and their backends). Everything that can be checked
// without starting DPDK is checked here, so that a service the data plane
// could not serve as written never gets past --check.
#include <algorithm>
#include <optional>
#include <set>
#include <tuple>

#include "ctrl/backend_rules.h"
#include "ctrl/config_loader.h"
#include "lb/maglev.h"

namespace sluice::ctrl {

namespace {

constexpr unsigned max_maglev_size = 16'777'259;  // a prime just above 2^24
constexpr unsigned min_maglev_size = 7;
constexpr unsigned max_weight = 65535;
constexpr unsigned max_timeout_s = 86'400;

const char *family_name(const IpAddress &a) { return a.is_v4() ? "IPv4" : "IPv6"; }

// Visible ASCII: what an HTTP request line and Host header carry unescaped.
bool is_visible(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 0x7f; });
}
bool is_http_path(std::string_view s) {
    return !s.empty() && s.size() <= 1024 && s[0] == '/' && is_visible(s);
}
bool is_http_host(std::string_view s) { return s.size() <= 255 && is_visible(s); }

std::optional<uint16_t> http_status(std::string_view text) {
    const auto n = parse_unsigned(text);
    if (!n || *n < 100 || *n > 599)
        return std::nullopt;
    return uint16_t(*n);
}

} // namespace

bool is_service_name(std::string_view s) {
    return !s.empty() && s.size() <= 63 &&
           std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
           });
}

bool is_port_address(const Config &config, const IpAddress &address) {
    for (const PortConfig &port : config.ports)
        for (const InterfaceAddress &own : port.addresses)
            if (own.address == address)
                return true;
    return false;
}

void ConfigLoader::read_lb(const Field &f, LbConfig &lb) const {
    const Section s = map(f, {"maglev_seed", "flow_table_size", "timeouts"});
    if (const Field *v = s.find("maglev_seed")) {
        const std::string &text = scalar(*v, "an integer seed");
        const auto seed = parse_unsigned(text);
        if (!seed || (*seed == UINT64_MAX && text != "18446744073709551615"))
            fail(*v, "expected an integer seed in 0..18446744073709551615, got " + quoted(text));
        lb.maglev_seed = *seed;
    }
    if (const Field *v = s.find("flow_table_size"))
        lb.flow_table_size = integer(*v, 1024, 16'777'216, "a number of flows");
    if (const Field *v = s.find("timeouts"))
        read_timeouts(*v, lb.timeouts);
}

void ConfigLoader::read_timeouts(const Field &f, FlowTimeoutConfig &timeouts) const {
    const Section t = map(f, {"tcp_syn", "tcp_established", "tcp_closing", "udp"});
    const std::pair<const char *, unsigned *> fields[] = {
        {"tcp_syn", &timeouts.tcp_syn},
        {"tcp_established", &timeouts.tcp_established},
        {"tcp_closing", &timeouts.tcp_closing},
        {"udp", &timeouts.udp},
    };
    for (const auto &[key, value] : fields)
        if (const Field *timeout = t.find(key))
            *value = integer(*timeout, 1, max_timeout_s, "seconds");
}

void ConfigLoader::read_tcp(const Field &f, TcpConfig &tcp) const {
    const Section s = map(f, {"max_connections", "syn_backlog", "max_time_wait", "send_buffer",
                              "receive_buffer", "mss", "backend_port_share", "idle_timeout",
                              "congestion", "keepalive_idle", "keepalive_interval",
                              "keepalive_probes"});
    if (const Field *v = s.find("max_connections"))
        tcp.max_connections = integer(*v, 2, 4'194'304, "a number of connections");
    if (const Field *v = s.find("syn_backlog"))
        tcp.syn_backlog = integer(*v, 1, 1'048'576, "a number of half-open connections");
    if (const Field *v = s.find("max_time_wait"))
        tcp.max_time_wait = integer(*v, 0, 4'194'304, "a number of TIME-WAIT entries");
    // Window scaling covers up to 1 GiB (RFC 7323 2.3); a buffer smaller
    // than a few segments stalls a connection.
    if (const Field *v = s.find("send_buffer"))
        tcp.send_buffer = integer(*v, 16384, 1u << 30, "bytes");
    if (const Field *v = s.find("receive_buffer"))
        tcp.receive_buffer = integer(*v, 16384, 1u << 30, "bytes");
    // A segment and its headers fit one mbuf of the default data room.
    if (const Field *v = s.find("mss"))
        tcp.mss = integer(*v, 536, 1460, "bytes of segment payload");
    if (const Field *v = s.find("backend_port_share"))
        tcp.backend_port_share = integer(*v, 0, 90, "a percentage");
    if (const Field *v = s.find("idle_timeout"))
        tcp.idle_timeout = integer(*v, 1, max_timeout_s, "seconds");
    if (const Field *v = s.find("congestion"))
        tcp.cubic = choice(*v, {"cubic", "newreno"}) == 0;
    if (const Field *v = s.find("keepalive_idle"))
        tcp.keepalive_idle = integer(*v, 0, max_timeout_s, "seconds (0: off)");
    if (const Field *v = s.find("keepalive_interval"))
        tcp.keepalive_interval = integer(*v, 1, 3600, "seconds");
    if (const Field *v = s.find("keepalive_probes"))
        tcp.keepalive_probes = integer(*v, 1, 127, "a number of probes");
}

IpAddress ConfigLoader::unicast_address(const Field &f) const {
    const std::string what = "an IPv4 or IPv6 address like 198.18.10.1 or 2001:db8::10";
    const std::string &text = scalar(f, what);
    const auto address = parse_ip_address(text);
    if (!address)
        fail(f, "expected " + what + ", got " + quoted(text));
    const char *bad = address->is_unspecified() ? "the unspecified address"
                      : address->is_multicast() ? "a multicast address"
                      : address->is_loopback()  ? "a loopback address"
                      : address->is_v4() && address->v4_be() == 0xffffffff
                          ? "the broadcast address"
                          : nullptr;
    if (bad)
        fail(f, "expected a unicast address, got " + address->to_string() + ", " + bad);
    return *address;
}

void ConfigLoader::read_services(const Field &f, Config &config) const {
    const BackendRules rules(config);
    std::map<std::string, int> names;
    // (VIP, protocol) → the ports in use and where, to refuse overlaps.
    std::map<std::pair<std::string, uint8_t>, std::map<uint16_t, int>> listeners;
    size_t backends = 0;
    std::vector<FlowTimeoutConfig> timeout_sets{config.lb.timeouts};
    for (const Field &item : sequence(f)) {
        ServiceConfig service = read_service(item, config, rules);
        claim(names, service.name, item, "service name");

        auto &ports = listeners[{service.vip.to_string(), service.protocol}];
        const char *protocol = service.protocol == 6 ? "tcp" : "udp";
        const std::string where = service.vip.to_string() + " " + protocol;
        // A clash is the VIP's: the field an operator (or an API client) fixes.
        const YAML::Node vip_node = item.node["vip"];
        const Field vip{vip_node, join(item.path, "vip"), vip_node.Mark()};
        if (!ports.empty() && (service.port == 0 || ports.count(0)))
            fail(vip, "service on every port of " + where + " overlaps the one at line " +
                          std::to_string(ports.begin()->second));
        if (const auto other = ports.find(service.port); other != ports.end())
            fail(vip, "duplicate service " + where + " port " + std::to_string(service.port) +
                          ", first defined at line " + std::to_string(other->second));
        ports.emplace(service.port, item.mark.line + 1);

        if (service.maglev_size < 100 * std::max<size_t>(service.backends.size(), 1))
            config.warnings.push_back(
                source_ + ":" + std::to_string(item.mark.line + 1) + ":" +
                std::to_string(item.mark.column + 1) + ": " + item.path +
                ".maglev_size: " + std::to_string(service.maglev_size) + " is less than 100 x " +
                plural(service.backends.size(), "backend") + ": shares will be uneven");
        // Each set of timeouts is a profile of the workers' flow tables.
        if (service.timeouts && std::find(timeout_sets.begin(), timeout_sets.end(),
                                          *service.timeouts) == timeout_sets.end()) {
            if (timeout_sets.size() == lb::max_timeout_profiles)
                fail(item.node["timeouts"].Mark(), join(item.path, "timeouts"),
                     "more than " + std::to_string(lb::max_timeout_profiles - 1) +
                         " different sets of service timeouts");
            timeout_sets.push_back(*service.timeouts);
        }
        backends += service.backends.size();
        // The workers count per backend in a fixed number of slots.
        if (backends > lb::max_backend_slots)
            fail(item, "too many backends: the services have " + std::to_string(backends) +
                           " so far, and the gateway counts at most " +
                           std::to_string(lb::max_backend_slots));
        config.services.push_back(std::move(service));
    }
}

ServiceConfig ConfigLoader::read_service(const Field &f, const Config &config,
                                         const BackendRules &rules) const {
    const Section s = map(f, {"name", "vip", "protocol", "port", "mode", "local_addresses",
                              "encapsulation", "gue_port", "maglev_size",
                              "removed_backend_flows", "timeouts", "health_check", "backends",
                              "feeds"});
    ServiceConfig service;
    service.name = text(require(s, "name"),
                        "a service name of 1..63 characters of a-z, 0-9, '_', '-'",
                        is_service_name);
    const Field &vip = require(s, "vip");
    service.vip = unicast_address(vip);
    if (is_port_address(config, service.vip))
        fail(vip, "VIP " + service.vip.to_string() + " is a port's own address");
    service.protocol = choice(require(s, "protocol"), {"tcp", "udp"}) == 0 ? 6 : 17;
    if (const Field *v = s.find("port"))
        service.port = uint16_t(integer(*v, 0, 65535, "a port (0: every port)"));
    if (const Field *v = s.find("mode"))  // in ForwardingMode's order
        service.mode = ForwardingMode(choice(*v, {"fullnat", "nat", "dsr", "proxy"}));
    const bool dsr = service.mode == ForwardingMode::dsr;
    const bool proxy = service.mode == ForwardingMode::proxy;
    if (proxy) {
        if (service.protocol != 6)
            fail(require(s, "protocol"), "proxy services are tcp: the workers' TCP ends them");
        if (service.port == 0)
            fail(s.self.mark, join(s.self.path, "port"),
                 "a proxy service listens on one port: port 0 (every port) is for L4 modes");
        if (config.tcp.backend_port_share == 0)
            fail(require(s, "mode"),
                 "tcp.backend_port_share is 0, which leaves the proxy no local ports for its "
                 "backend connections");
    }

    const Field *local = s.find("local_addresses");
    if ((service.mode == ForwardingMode::fullnat || proxy) && !local)
        fail(s.self.mark, join(s.self.path, "local_addresses"),
             proxy ? "required key is missing: proxy needs at least one local address"
                   : "required key is missing: fullnat needs at least one SNAT address");
    if (local && service.mode != ForwardingMode::fullnat && !proxy)
        fail(*local, "only fullnat and proxy services have local addresses");
    if (local) {
        const std::vector<Field> items = sequence(*local);
        if (items.empty())
            fail(*local, "expected at least one SNAT address, got an empty sequence");
        for (const Field &item : items) {
            const IpAddress address = unicast_address(item);
            if (address.family != service.vip.family)
                fail(item, std::string("expected an ") + family_name(service.vip) +
                               " address like the VIP, got " + address.to_string());
            if (is_port_address(config, address) || address == service.vip)
                fail(item, address.to_string() + " is a port address or the VIP");
            // Backends find SNAT addresses by ARP and ND on a port's link.
            const Route *route = rules.routes().lookup(address);
            if (!route || route->via)
                fail(item, address.to_string() + " is on no port's prefix" +
                               (route ? " (it is routed via " + route->via->to_string() + ")"
                                      : std::string()) +
                               ": backends could not reach it");
            if (std::find(service.local_addresses.begin(), service.local_addresses.end(),
                          address) != service.local_addresses.end())
                fail(item, "duplicate SNAT address " + address.to_string());
            service.local_addresses.push_back(address);
        }
    }

    const Field *encapsulation = s.find("encapsulation");
    if (encapsulation && !dsr)
        fail(*encapsulation, "only dsr services encapsulate");
    if (encapsulation)
        service.encapsulation = DsrEncapsulation(choice(*encapsulation, {"ipip", "gue"}));
    if (const Field *v = s.find("gue_port")) {
        if (!dsr || service.encapsulation != DsrEncapsulation::gue)
            fail(*v, "only dsr services with encapsulation: gue have a GUE port");
        service.gue_port = uint16_t(integer(*v, 1, 65535, "a UDP port"));
    }
    if (const Field *v = s.find("maglev_size")) {
        service.maglev_size = integer(*v, min_maglev_size, max_maglev_size, "a prime");
        if (!lb::is_prime(service.maglev_size))
            fail(*v, "expected a prime, got " + std::to_string(service.maglev_size) +
                         "; the next prime is " +
                         std::to_string(lb::next_prime(service.maglev_size)));
    }
    if (const Field *v = s.find("removed_backend_flows"))
        service.removed_backend_flows = RemovedBackendFlows(choice(*v, {"keep", "reset"}));
    if (const Field *v = s.find("timeouts")) {
        if (proxy)
            fail(*v, "proxy services have no flows: tcp.idle_timeout ends their connections");
        // lb comes before services: what the service leaves out is lb's.
        service.timeouts = config.lb.timeouts;
        read_timeouts(*v, *service.timeouts);
    }
    if (const Field *v = s.find("health_check"))
        service.health_check = read_health_check(*v, service);
    if (const Field *v = s.find("backends"))
        read_backends(*v, rules, service);
    if (const Field *v = s.find("feeds"))
        service.feeds = read_service_feeds(*v, config);
    if (service.backends.size() > service.maglev_size)
        fail(s.self.mark, join(s.self.path, "backends"),
             plural(service.backends.size(), "backend") + " do not fit a Maglev table of " +
                 std::to_string(service.maglev_size) + " slots");
    return service;
}

BackendRules::BackendRules(const Config &config)
    : config_(config), routes_(route_table(config)) {}

std::optional<BackendProblem> BackendRules::check(const ServiceConfig &service,
                                                  const BackendConfig &backend) const {
    const bool dsr = service.mode == ForwardingMode::dsr;
    // Only GUE can carry one family inside the other.
    const bool mixed_ok = dsr && service.encapsulation == DsrEncapsulation::gue;
    if (backend.address.family != service.vip.family && !mixed_ok)
        return BackendProblem{"address", std::string("expected an ") + family_name(service.vip) +
                                             " address like the VIP, got " +
                                             backend.address.to_string()};
    if (is_port_address(config_, backend.address) || backend.address == service.vip)
        return BackendProblem{"address",
                              backend.address.to_string() + " is a port address or the VIP"};
    // The kernel behind the port's TAP resolves the next hop's MAC: the
    // backend's own when it is on-link, its route's gateway's otherwise.
    const Route *route = routes_.lookup(backend.address);
    if (!route)
        return BackendProblem{"address", backend.address.to_string() +
                                             " is on no port's prefix and no route leads there"};
    const PortConfig &port = config_.ports[route->port];
    const std::string next_hop =
        backend.address.to_string() +
        (route->via ? "'s gateway " + route->via->to_string() : std::string());
    if (port.exception_tap.empty())
        return BackendProblem{"address", "port " + port.name + ", where " + next_hop +
                                             " is, has no exception_path to resolve its MAC "
                                             "through"};
    // Port 0 is the client's port, whatever the mode.
    if (backend.port != 0 && service.port == 0)
        return BackendProblem{"port",
                              "a service on every port keeps the client's port: leave port out"};
    if (backend.port != 0 && dsr && backend.port != service.port)
        return BackendProblem{"port",
                              "dsr does not change ports: the backend port must be the "
                              "service's (" + std::to_string(service.port) + ")"};
    return std::nullopt;
}

void ConfigLoader::read_backends(const Field &f, const BackendRules &rules,
                                 ServiceConfig &service) const {
    std::map<std::string, int> seen;
    for (const Field &item : sequence(f)) {
        const Section s = map(item, {"address", "port", "weight", "drained"});
        BackendConfig backend;
        const Field &address = require(s, "address");
        backend.address = unicast_address(address);
        const Field *port = s.find("port");
        if (port)
            backend.port = uint16_t(integer(*port, 0, 65535, "a port (0: the client's)"));
        if (const auto problem = rules.check(service, backend))
            fail(problem->key == "port" ? *port : address, problem->message);
        if (const Field *v = s.find("weight"))
            backend.weight = integer(*v, 0, max_weight, "a weight");
        if (const Field *v = s.find("drained"))
            backend.drained = boolean(*v);
        claim(seen, backend.address.to_string() + " port " + std::to_string(backend.port), item,
              "backend");
        service.backends.push_back(backend);
    }
}

std::optional<HealthCheckSpec> ConfigLoader::read_health_check(const Field &f,
                                                               const ServiceConfig &service) const {
    const Section s = map(f, {"type", "interval_ms", "timeout_ms", "rise", "fall", "port",
                              "method", "path", "host", "expected_status"});
    HealthCheckSpec check;
    if (const Field *v = s.find("type"))  // in HealthCheckType's order
        check.type = HealthCheckType(choice(*v, {"tcp", "http"}));
    if (const Field *v = s.find("interval_ms"))
        check.interval_ms = integer(*v, 100, 3'600'000, "milliseconds");
    if (const Field *v = s.find("timeout_ms"))
        check.timeout_ms = integer(*v, 10, check.interval_ms, "milliseconds (up to interval_ms)");
    else if (check.timeout_ms > check.interval_ms)
        fail(s.self.mark, join(s.self.path, "timeout_ms"),
             "the default of " + std::to_string(check.timeout_ms) +
                 " ms is longer than interval_ms: set a timeout up to " +
                 std::to_string(check.interval_ms));
    if (const Field *v = s.find("rise"))
        check.rise = integer(*v, 1, 100, "a number of checks");
    if (const Field *v = s.find("fall"))
        check.fall = integer(*v, 1, 100, "a number of checks");
    if (const Field *v = s.find("port"))
        check.port = uint16_t(integer(*v, 0, 65535, "a port (0: the backend's)"));
    // Backends of a service on every port have no port of their own.
    if (check.port == 0 && service.port == 0)
        fail(s.find("port") ? *s.find("port") : Field{{}, join(s.self.path, "port"), s.self.mark},
             "a service on every port has no port to check: set health_check.port");

    const bool http = check.type == HealthCheckType::http;
    for (const char *key : {"method", "path", "host", "expected_status"})
        if (const Field *v = s.find(key); v && !http)
            fail(*v, "only http health checks send a request: leave " + std::string(key) +
                         " out or set type: http");
    if (const Field *v = s.find("method"))
        check.method = choice(*v, {"GET", "HEAD"}) == 0 ? "GET" : "HEAD";
    if (const Field *v = s.find("path"))
        check.path = text(*v, "a path starting with '/', of up to 1024 visible ASCII characters",
                          is_http_path);
    if (const Field *v = s.find("host"))
        check.host = text(*v, "a Host header of up to 255 visible ASCII characters", is_http_host);
    if (const Field *v = s.find("expected_status")) {
        const std::vector<Field> items = sequence(*v);
        if (items.empty())
            fail(*v, "expected at least one status or range, got an empty sequence");
        for (const Field &item : items) {
            const std::string what =
                "a status like \"200\" or a range like \"200-399\", in 100..599";
            const std::string &text = scalar(item, what);
            const size_t dash = text.find('-');
            const std::string_view view(text);
            const auto low = http_status(view.substr(0, dash));
            const auto high = dash == text.npos ? low : http_status(view.substr(dash + 1));
            if (!low || !high)
                fail(item, "expected " + what + ", got " + quoted(text));
            if (*low > *high)
                fail(item, "expected the lower status first, got " + quoted(text));
            check.expected_status.emplace_back(*low, *high);
        }
    } else if (http) {
        check.expected_status = {{200, 399}};
    }
    return check;
}

} // namespace sluice::ctrl
