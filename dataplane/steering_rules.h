// rte_flow rules that deliver fullnat answers straight to the RX queue of the
// worker owning their SNAT port, so that software steering (lb/steering.h)
// has nothing left to move. Ports that refuse them (net_tap without TC
// flower, net_af_packet, net_ring) keep software steering, which is always on.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/net_addr.h"
#include "lb/steering.h"

namespace sluice::dataplane {

// Replaces the port's steering rules: for each SNAT address, TCP and UDP, a
// rule per masked block of each worker's slice, to that worker's queue
// (queue i is worker i's). Returns the number of rules, or -1 with `error`
// when the port refuses one (then none is left installed).
int install_steering_rules(uint16_t port_id, const std::vector<IpAddress> &snat_addresses,
                           const lb::SnatSlices &slices, std::string &error);

// Removes every rte_flow rule of the port.
void remove_steering_rules(uint16_t port_id);

} // namespace sluice::dataplane
