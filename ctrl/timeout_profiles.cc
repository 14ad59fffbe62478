#include "ctrl/timeout_profiles.h"

#include <algorithm>

namespace sluice::ctrl {

size_t TimeoutProfiles::find(const std::vector<FlowTimeoutConfig> &given,
                             const FlowTimeoutConfig &t) {
    return size_t(std::find(given.begin(), given.end(), t) - given.begin());
}

bool TimeoutProfiles::assign(const Config &config, std::string &error) {
    std::vector<FlowTimeoutConfig> given = given_;
    for (size_t i = 0; i < config.services.size(); ++i) {
        const ServiceConfig &service = config.services[i];
        if (!service.timeouts || find(given, *service.timeouts) < given.size())
            continue;
        if (given.size() == lb::max_timeout_profiles) {
            error = "services[" + std::to_string(i) + "].timeouts: the gateway has given out " +
                    std::to_string(lb::max_timeout_profiles - 1) +
                    " sets of service timeouts since it started, the most it can tell apart; "
                    "reuse one of them or restart";
            return false;
        }
        given.push_back(*service.timeouts);
    }
    given_ = std::move(given);
    return true;
}

lb::TimeoutProfile TimeoutProfiles::profile(const ServiceConfig &service) const {
    if (!service.timeouts)
        return 0;
    const size_t found = find(given_, *service.timeouts);
    return found < given_.size() ? lb::TimeoutProfile(found) : 0;
}

lb::FlowTimeouts TimeoutProfiles::timeouts(lb::TimeoutProfile profile) const {
    const FlowTimeoutConfig &t = given_[profile < given_.size() ? profile : 0];
    return {t.tcp_syn * 1000, t.tcp_established * 1000, t.tcp_closing * 1000, t.udp * 1000};
}

} // namespace sluice::ctrl
