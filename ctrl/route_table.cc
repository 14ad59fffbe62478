#include "ctrl/route_table.h"

#include <algorithm>
#include <cstring>
#include <functional>

namespace sluice::ctrl {

size_t RouteTable::NetworkHash::operator()(const Network &network) const {
    uint64_t high, low;
    std::memcpy(&high, network.data(), 8);
    std::memcpy(&low, network.data() + 8, 8);
    return std::hash<uint64_t>{}(high * 0x9e3779b97f4a7c15ull ^ low);
}

bool RouteTable::add(const Route &route) {
    const IpPrefix &prefix = route.prefix;
    Family &f = family(prefix.network.family);
    if (f.by_length.empty())
        f.by_length.resize(prefix.network.is_v4() ? 33 : 129);
    if (prefix.length >= f.by_length.size())
        return false;
    // The key is the masked network, whatever the caller's host bits were.
    const IpAddress network = masked(prefix.network, prefix.length);
    Route stored = route;
    stored.prefix.network = network;
    if (!f.by_length[prefix.length].emplace(network.bytes, stored).second)
        return false;
    if (std::find(f.lengths.begin(), f.lengths.end(), prefix.length) == f.lengths.end()) {
        f.lengths.push_back(prefix.length);
        std::sort(f.lengths.begin(), f.lengths.end(), std::greater<>());
    }
    ++f.size;
    return true;
}

const Route *RouteTable::lookup(const IpAddress &address) const {
    const Family &f = family(address.family);
    for (const uint8_t length : f.lengths) {
        const auto &routes = f.by_length[length];
        if (const auto it = routes.find(masked(address, length).bytes); it != routes.end())
            return &it->second;
    }
    return nullptr;
}

const Route *RouteTable::find(const IpPrefix &prefix) const {
    const Family &f = family(prefix.network.family);
    if (prefix.length >= f.by_length.size())
        return nullptr;
    const auto &routes = f.by_length[prefix.length];
    const auto it = routes.find(masked(prefix.network, prefix.length).bytes);
    return it == routes.end() ? nullptr : &it->second;
}

RouteTable route_table(const Config &config) {
    RouteTable table;
    for (size_t i = 0; i < config.ports.size(); ++i)
        for (const InterfaceAddress &own : config.ports[i].addresses)
            table.add({own.prefix(), uint16_t(i), std::nullopt});
    // Gateways are resolved against the connected prefixes alone, before
    // any static route is in the table: a route never leads through another.
    std::vector<Route> routes;
    for (const RouteConfig &route : config.routes)
        if (const Route *link = table.lookup(route.via))
            routes.push_back({route.prefix, link->port, route.via});
    for (const Route &route : routes)
        table.add(route);
    return table;
}

} // namespace sluice::ctrl
