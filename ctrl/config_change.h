// A change to the running config's services, checked by the one validator
// there is: the config loader. The candidate (the running config with the
// services a client changed, still as the JSON it sent) is written out as
// JSON and loaded as if it were the file, so a change is refused for exactly
// what a file would be refused for, in the same words. Only services change:
// every other section of the result is the running config's.
#pragma once

#include <optional>
#include <string>

#include "ctrl/config.h"
#include "ctrl/config_emit.h"

namespace sluice::ctrl {

struct ServicesCheck {
    std::optional<Config> next;  // the config to publish, when the change is valid
    std::string error;           // else the loader's message
    // The loader's key path, relative to `body_path` when inside it
    // ("backends[0].weight"), whole otherwise ("services[2]"); empty when
    // the problem is the body as a whole.
    std::optional<std::string> field;
};

// `services`: the JSON of every service, one of which (at `body_path`, like
// "services[3]" or "services[1].backends[0]") holds what the client sent.
// Positions in the loader's messages ("first defined at line 40") become
// key paths ("first defined at services[0] (web)").
ServicesCheck check_services(const Config &running, const Json &services,
                             const std::string &body_path);

// Enough CPUs for the lcores of `cores` to pass the loader's checks: they
// passed them at start-up on this machine, and the API cannot change them.
unsigned cpus_for(const CoreConfig &cores);

} // namespace sluice::ctrl
