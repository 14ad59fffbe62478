// Counters as text, in the Prometheus exposition format: sluiced prints them
// on SIGUSR1 and when it stops.
#pragma once

#include <memory>
#include <ostream>
#include <vector>

#include "dataplane/port.h"
#include "dataplane/worker.h"

namespace sluice::ctrl {

struct CountersView {
    const std::vector<std::unique_ptr<dataplane::WorkerContext>> &workers;
    const std::vector<dataplane::Port> &ports;
};

// Per worker, per drop
// reason that is not zero, and per port from the device's own statistics.
void write_counters(std::ostream &out, const CountersView &view);

} // namespace sluice::ctrl
