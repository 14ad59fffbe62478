// Next-hop MACs from the kernel. The exception-path TAP of a port carries the
// port's MAC and addresses, so the kernel behind it can resolve neighbours on
// the port's links: its ARP and ND go out through the worker and the answers
// come back up the TAP. The control plane asks it to resolve (and, before
// they go stale, to re-confirm) the neighbours the balancer needs, with
// RTM_NEWNEIGH + NTF_USE, and reads the results back over rtnetlink.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/net_addr.h"

namespace sluice::ctrl {

struct WantedNeighbour {
    std::string interface;  // the TAP of the port the neighbour is on
    IpAddress address;

    bool operator==(const WantedNeighbour &) const = default;
};

using NeighbourKey = std::pair<std::string, std::string>;  // interface, address text

class NeighbourWatcher {
public:
    NeighbourWatcher();
    ~NeighbourWatcher();
    NeighbourWatcher(const NeighbourWatcher &) = delete;
    NeighbourWatcher &operator=(const NeighbourWatcher &) = delete;

    // Asks the kernel to resolve or re-confirm each wanted neighbour, then
    // returns the MAC of every one it has a usable entry for (reachable, or
    // stale while it re-confirms). Neighbours it cannot resolve are absent.
    std::map<NeighbourKey, MacAddress> refresh(const std::vector<WantedNeighbour> &wanted);

private:
    void request_resolution(unsigned interface_index, const IpAddress &address);
    std::map<NeighbourKey, MacAddress> dump(const std::map<unsigned, std::string> &interfaces);

    int socket_ = -1;
    unsigned sequence_ = 0;
};

} // namespace sluice::ctrl
