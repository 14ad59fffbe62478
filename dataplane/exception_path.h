// The exception path: a TAP interface (net_tap) per port that gives the
// kernel the port's MAC, MTU and addresses. What the gateway does not handle
// itself goes up through it; what the kernel sends on it leaves through the
// port. Health checks and operators' tools use it with ordinary sockets.
#pragma once

#include <string>
#include <vector>

#include "dataplane/net_addr.h"
#include "dataplane/port.h"

namespace sluice::dataplane {

// Creates the TAP `port.exception_tap`, starts it with `setup.queues` queues
// and assigns `addresses` to the kernel side.
bool open_exception_path(Port &port, const QueueSetup &setup,
                         const std::vector<InterfaceAddress> &addresses, rte_mempool *pool,
                         std::string &error);

// Adds an address to a kernel interface over rtnetlink (IPv6 without
// duplicate address detection: the gateway answers for it already).
bool add_kernel_address(const std::string &interface, const InterfaceAddress &address,
                        std::string &error);

} // namespace sluice::dataplane
