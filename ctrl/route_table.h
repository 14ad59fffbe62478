// Where the gateway sends packets for an address: the connected prefixes of
// its ports and the static routes of the config, looked up by longest-prefix
// match, IPv4 and IPv6 apart. It runs in the control plane (config checks,
// snapshot building) and needs no EAL; the snapshot carries its answer for
// each backend, so workers never look routes up per packet.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "ctrl/config.h"
#include "dataplane/net_addr.h"

namespace sluice::ctrl {

struct Route {
    IpPrefix prefix;
    uint16_t port = 0;  // the egress port, an index into Config::ports
    // The gateway the route leads through, itself on-link on `port`; empty
    // for a connected prefix, whose addresses are on-link themselves.
    std::optional<IpAddress> via;

    bool operator==(const Route &) const = default;
    // The neighbour that packets to `destination` are sent to: whose MAC
    // they carry.
    IpAddress next_hop(const IpAddress &destination) const { return via ? *via : destination; }
};

class RouteTable {
public:
    // False, leaving the table as it was, when it holds `route.prefix` already:
    // the first route for a prefix stays.
    bool add(const Route &route);
    // The route of the longest prefix that holds `address`, or null.
    const Route *lookup(const IpAddress &address) const;
    // The route for exactly `prefix`, or null.
    const Route *find(const IpPrefix &prefix) const;
    size_t size() const { return v4_.size + v6_.size; }

private:
    using Network = std::array<uint8_t, 16>;  // the prefix's bytes, host bits zero
    struct NetworkHash {
        size_t operator()(const Network &network) const;
    };
    // One hash map per prefix length; a lookup masks the address to each
    // length in use, longest first, until one holds it. At most 33 or 129
    // probes, usually a handful: few lengths are ever in use.
    struct Family {
        std::vector<std::unordered_map<Network, Route, NetworkHash>> by_length;
        std::vector<uint8_t> lengths;  // in use, longest first
        size_t size = 0;
    };
    Family &family(AddressFamily f) { return f == AddressFamily::ipv4 ? v4_ : v6_; }
    const Family &family(AddressFamily f) const { return f == AddressFamily::ipv4 ? v4_ : v6_; }

    Family v4_, v6_;
};

// The routes of `config`: every port address's on-link prefix on its port,
// then every static route on the port whose connected prefix holds its `via`
// (the loader has checked that one does). Where two ports have addresses on
// one prefix, the first port listed gets it.
RouteTable route_table(const Config &config);

} // namespace sluice::ctrl
