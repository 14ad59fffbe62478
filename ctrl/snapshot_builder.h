// From the config (and what the control plane learnt since: the ports' MACs,
// the neighbours' MACs) to the immutable snapshot the workers balance by.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "ctrl/config.h"
#include "ctrl/neighbours.h"
#include "ctrl/timeout_profiles.h"
#include "dataplane/port.h"
#include "lb/snapshot.h"

namespace sluice::ctrl {

// The neighbours the balancer needs MACs for: the next hop (the backend
// itself when on-link, its route's gateway otherwise) of every backend and of
// every backend an earlier config had (`retired`: flows may still run to it),
// on the TAP of the egress port the route table gives; each neighbour once.
std::vector<WantedNeighbour> wanted_neighbours(const Config &config,
                                               const std::vector<IpAddress> &retired);

// What the control plane knows of a backend beyond its config.
struct BackendState {
    lb::BackendSlot slot = lb::no_backend_slot;  // its counters
    bool down = false;  // failed its health check: out of the service
};
using BackendStateOf = std::function<BackendState(const ServiceConfig &, const BackendConfig &)>;

// Backends that are down are left out of their service: they take no new
// flows, and their flows go on or are reset as the service says. Services
// take the flow table profiles `timeouts` assigned them.
std::unique_ptr<const lb::Snapshot> build_snapshot(const Config &config,
                                                   const std::vector<dataplane::Port> &ports,
                                                   const std::vector<IpAddress> &retired,
                                                   const std::map<NeighbourKey, MacAddress> &neighbours,
                                                   const BackendStateOf &state_of,
                                                   const TimeoutProfiles &timeouts,
                                                   uint64_t generation);

// The addresses a port answers ARP, ND and echo for: its own, every VIP and
// every SNAT address (clients and backends must find those at the gateway).
LocalAddresses local_addresses(const Config &config, const PortConfig &port, const MacAddress &mac);

} // namespace sluice::ctrl
