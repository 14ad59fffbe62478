// The `routes` section of the config: static routes to networks behind a
// gateway on a port's link. With the ports' connected prefixes they make the
// route table (ctrl/route_table.h) by which backends are reached.
#include <map>

#include "ctrl/config_loader.h"

namespace sluice::ctrl {

void ConfigLoader::read_routes(const Field &f, Config &config) const {
    const std::string what = "a network like 198.18.20.0/24 or 2001:db8:20::/48";
    // Gateways must be on-link: they are looked up among the connected
    // prefixes alone (config.routes is still empty).
    const RouteTable connected = route_table(config);
    std::map<std::string, int> seen;
    for (const Field &item : sequence(f)) {
        const Section s = map(item, {"prefix", "via"});
        RouteConfig route;

        const Field &prefix = require(s, "prefix");
        const std::string &text = scalar(prefix, what);
        const auto parsed = parse_interface_address(text);
        if (!parsed && text.find('/') == text.npos && parse_ip_address(text))
            fail(prefix, "expected " + what + ", got " + quoted(text) +
                             ": the prefix length is missing (/32 or /128 for one address)");
        if (!parsed)
            fail(prefix, "expected " + what + ", got " + quoted(text));
        route.prefix = parsed->prefix();
        if (route.prefix.network != parsed->address)
            fail(prefix, "expected " + what + ", got " + quoted(text) +
                             ": bits are set after the prefix length; the network is " +
                             route.prefix.to_string());
        claim(seen, route.prefix.to_string(), prefix, "route");
        if (const Route *own = connected.find(route.prefix))
            fail(prefix, route.prefix.to_string() + " is the connected prefix of port " +
                             config.ports[own->port].name + ": its addresses are on-link");

        const Field &via = require(s, "via");
        route.via = unicast_address(via);
        const bool v4 = route.prefix.network.is_v4();
        if (route.via.family != route.prefix.network.family)
            fail(via, std::string("expected an ") + (v4 ? "IPv4" : "IPv6") +
                          " gateway like the prefix, got " + route.via.to_string());
        if (is_port_address(config, route.via))
            fail(via, route.via.to_string() + " is a port's own address, not a gateway");
        if (!connected.lookup(route.via))
            fail(via, route.via.to_string() +
                          " is on no port's prefix: a gateway must be on-link");
        config.routes.push_back(route);
    }
}

} // namespace sluice::ctrl
