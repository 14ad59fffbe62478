// From the config (and what the control plane learnt since: the ports' MACs,
// the neighbours' MACs) to the immutable snapshot the workers balance by.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "ctrl/config.h"
#include "ctrl/neighbours.h"
#include "dataplane/port.h"
#include "lb/snapshot.h"

namespace sluice::ctrl {

// The neighbours the balancer needs MACs for: the next hop (the backend
// itself when on-link, its route's gateway otherwise) of every backend and of
// every backend an earlier config had (`retired`: flows may still run to it),
// on the TAP of the egress port the route table gives; each neighbour once.
std::vector<WantedNeighbour> wanted_neighbours(const Config &config,
                                               const std::vector<IpAddress> &retired);

std::unique_ptr<const lb::Snapshot> build_snapshot(const Config &config,
                                                   const std::vector<dataplane::Port> &ports,
                                                   const std::vector<IpAddress> &retired,
                                                   const std::map<NeighbourKey, MacAddress> &neighbours,
                                                   uint64_t generation);

// The addresses a port answers ARP, ND and echo for: its own, every VIP and
// every SNAT address (clients and backends must find those at the gateway).
LocalAddresses local_addresses(const Config &config, const PortConfig &port, const MacAddress &mac);

} // namespace sluice::ctrl
