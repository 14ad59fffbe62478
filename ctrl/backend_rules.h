// What makes a backend servable for its service, given the whole config:
// the address family of the VIP (GUE alone carries one inside the other),
// not a port's own address or the VIP, a route to it through a port whose
// exception path resolves its MAC, and the port rules of the service's
// mode. The config loader checks the config's backends with it, and the
// endpoint merger the ones the discovery feeds offer (ctrl/endpoint_merger.h).
#pragma once

#include <optional>
#include <string>

#include "ctrl/config.h"
#include "ctrl/route_table.h"

namespace sluice::ctrl {

struct BackendProblem {
    std::string key;  // the backend's key at fault: "address" or "port"
    std::string message;
};

class BackendRules {
public:
    // Keeps a reference to `config`, which must outlive the rules.
    explicit BackendRules(const Config &config);

    std::optional<BackendProblem> check(const ServiceConfig &service,
                                        const BackendConfig &backend) const;
    const RouteTable &routes() const { return routes_; }

private:
    const Config &config_;
    RouteTable routes_;
};

} // namespace sluice::ctrl
