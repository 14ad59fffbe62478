#include "ctrl/snapshot_builder.h"

#include <algorithm>

#include "ctrl/route_table.h"
#include "dataplane/byte_order.h"

namespace sluice::ctrl {

namespace {

// What Maglev hashes a backend by: its address and port, so that every
// instance, whatever order it lists backends in, builds the same table.
std::string maglev_identity(const BackendConfig &backend) {
    return backend.address.to_string() + "#" + std::to_string(backend.port);
}

// Every backend address of the config and the retired ones, once each.
std::vector<IpAddress> backend_addresses(const Config &config,
                                         const std::vector<IpAddress> &retired) {
    std::vector<IpAddress> addresses = retired;
    for (const ServiceConfig &service : config.services)
        for (const BackendConfig &backend : service.backends)
            if (std::find(addresses.begin(), addresses.end(), backend.address) == addresses.end())
                addresses.push_back(backend.address);
    return addresses;
}

} // namespace

std::vector<WantedNeighbour> wanted_neighbours(const Config &config,
                                               const std::vector<IpAddress> &retired) {
    const RouteTable routes = route_table(config);
    std::vector<WantedNeighbour> wanted;
    for (const IpAddress &address : backend_addresses(config, retired)) {
        const Route *route = routes.lookup(address);
        if (!route || config.ports[route->port].exception_tap.empty())
            continue;
        // Backends behind one gateway share its entry.
        const WantedNeighbour neighbour{config.ports[route->port].exception_tap,
                                        route->next_hop(address)};
        if (std::find(wanted.begin(), wanted.end(), neighbour) == wanted.end())
            wanted.push_back(neighbour);
    }
    return wanted;
}

std::unique_ptr<const lb::Snapshot> build_snapshot(const Config &config,
                                                   const std::vector<dataplane::Port> &ports,
                                                   const std::vector<IpAddress> &retired,
                                                   const std::map<NeighbourKey, MacAddress> &neighbours,
                                                   const BackendStateOf &state_of,
                                                   const TimeoutProfiles &timeouts,
                                                   uint64_t generation) {
    std::vector<lb::Service> services;
    std::vector<std::pair<IpAddress, lb::NextHop>> next_hops;
    for (const ServiceConfig &config_service : config.services) {
        lb::Service service;
        service.name = config_service.name;
        service.vip = config_service.vip;
        service.protocol = config_service.protocol;
        service.port_be = port_to_network(config_service.port);
        service.mode = config_service.mode;
        service.local_addresses = config_service.local_addresses;
        service.encapsulation = config_service.encapsulation;
        service.gue_port = config_service.gue_port;
        service.removed_backend_flows = config_service.removed_backend_flows;
        service.timeout_profile = timeouts.profile(config_service);
        service.timeouts = timeouts.timeouts(service.timeout_profile);
        std::vector<lb::MaglevBackend> identities;
        for (const BackendConfig &backend : config_service.backends) {
            const BackendState state = state_of(config_service, backend);
            if (state.down)
                continue;
            // Drained is weight 0: no new flows, and the backend stays in the
            // service, so its flows run on even when removed ones are reset.
            const uint32_t weight = backend.drained ? 0 : backend.weight;
            service.backends.push_back(
                {backend.address, port_to_network(backend.port), weight, state.slot});
            identities.push_back({maglev_identity(backend), weight});
        }
        service.maglev = lb::MaglevTable(identities, config_service.maglev_size,
                                         config.lb.maglev_seed);
        services.push_back(std::move(service));
    }

    // Retired backends keep their next hops: flows may still run to them.
    const RouteTable routes = route_table(config);
    for (const IpAddress &address : backend_addresses(config, retired)) {
        const Route *route = routes.lookup(address);
        if (!route)
            continue;
        lb::NextHop hop;
        hop.egress_port = route->port;
        const auto mac = neighbours.find({config.ports[route->port].exception_tap,
                                          route->next_hop(address).to_string()});
        if (mac != neighbours.end()) {
            hop.resolved = true;
            hop.mac = mac->second;
        }
        next_hops.emplace_back(address, hop);
    }

    std::vector<lb::EgressPort> egress;
    for (size_t i = 0; i < config.ports.size(); ++i) {
        lb::EgressPort port;
        port.mac = ports[i].mac;
        port.mtu = uint16_t(config.ports[i].mtu);
        port.local = local_addresses(config, config.ports[i], ports[i].mac);
        for (const InterfaceAddress &own : config.ports[i].addresses) {
            if (own.address.is_v4() && !port.has_ipv4) {
                port.ipv4 = own.address;
                port.has_ipv4 = true;
            } else if (!own.address.is_v4() && !port.has_ipv6) {
                port.ipv6 = own.address;
                port.has_ipv6 = true;
            }
        }
        egress.push_back(port);
    }
    return std::make_unique<const lb::Snapshot>(std::move(services), std::move(egress),
                                                std::move(next_hops), config.lb.maglev_seed,
                                                generation);
}

LocalAddresses local_addresses(const Config &config, const PortConfig &port, const MacAddress &mac) {
    LocalAddresses local;
    local.mac = mac;
    for (const InterfaceAddress &own : port.addresses)
        local.add(own.address);
    for (const ServiceConfig &service : config.services) {
        if (!local.owns(service.vip))
            local.add(service.vip);
        for (const IpAddress &snat : service.local_addresses)
            if (!local.owns(snat))
                local.add(snat);
    }
    return local;
}

} // namespace sluice::ctrl
