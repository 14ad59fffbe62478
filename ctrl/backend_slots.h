// Every backend of every service gets a slot in the workers' per-backend
// counters (lb::BackendCounters), and keeps it while it stays configured.
// Flows remember their backend's slot, so a slot whose backend left is given
// to another only once no worker holds a flow of it any more.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "ctrl/config.h"
#include "lb/flow_table.h"

namespace sluice::ctrl {

class BackendSlots {
public:
    // True when no worker holds a flow counted in the slot.
    using IdleCheck = std::function<bool(lb::BackendSlot)>;

    explicit BackendSlots(lb::BackendSlot capacity = lb::max_backend_slots)
        : capacity_(capacity) {}

    // Gives the backends of `config` their slots. False, with `error` and
    // nothing changed, when there are not enough slots.
    bool assign(const Config &config, const IdleCheck &idle, std::string &error);
    // The slot of a backend of the config last assigned, or no_backend_slot.
    lb::BackendSlot slot(const std::string &service, const BackendConfig &backend) const;
    size_t in_use() const { return slots_.size(); }

private:
    using Identity = std::tuple<std::string, std::string, uint16_t>;  // service, address, port
    static Identity identity(const std::string &service, const BackendConfig &backend) {
        return {service, backend.address.to_string(), backend.port};
    }

    lb::BackendSlot capacity_;
    lb::BackendSlot never_used_ = 0;  // slots below it have been given out
    std::map<Identity, lb::BackendSlot> slots_;           // configured backends
    std::vector<lb::BackendSlot> retired_;                // left, maybe with flows
};

} // namespace sluice::ctrl
