// The flow table profiles (lb::TimeoutProfile) of services with timeouts of
// their own. Profile 0 is lb.timeouts, fixed for the run; every other set of
// timeouts a service asks for gets a profile the first time and keeps it for
// the run, so that a flow keeps the timeouts it began with whatever reloads
// come after (the workers' tables never see a profile change).
#pragma once

#include <string>
#include <vector>

#include "ctrl/config.h"
#include "lb/flow_table.h"

namespace sluice::ctrl {

class TimeoutProfiles {
public:
    explicit TimeoutProfiles(const FlowTimeoutConfig &lb_timeouts) : given_{lb_timeouts} {}

    // Gives every service of `config` its profile. False, with `error`
    // (the service's field) and nothing changed, when the sets of
    // timeouts given out since the start would pass max_timeout_profiles.
    bool assign(const Config &config, std::string &error);
    // The profile of `service` (0 for lb.timeouts), as assign() left it.
    lb::TimeoutProfile profile(const ServiceConfig &service) const;
    // The profile's timeouts in the flow table's unit (ms).
    lb::FlowTimeouts timeouts(lb::TimeoutProfile profile) const;
    size_t in_use() const { return given_.size(); }

private:
    // A set's profile among `given`, or given.size() when it has none yet.
    static size_t find(const std::vector<FlowTimeoutConfig> &given, const FlowTimeoutConfig &t);

    std::vector<FlowTimeoutConfig> given_;  // by profile
};

} // namespace sluice::ctrl
