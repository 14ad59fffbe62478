#include "ctrl/backend_slots.h"

#include <algorithm>

namespace sluice::ctrl {

bool BackendSlots::assign(const Config &config, const IdleCheck &idle, std::string &error) {
    std::map<Identity, lb::BackendSlot> next;
    std::vector<Identity> arriving;
    for (const ServiceConfig &service : config.services)
        for (const BackendConfig &backend : service.backends) {
            const Identity id = identity(service.name, backend);
            const auto kept = slots_.find(id);
            if (kept != slots_.end())
                next.emplace(id, kept->second);
            else if (std::find(arriving.begin(), arriving.end(), id) == arriving.end())
                arriving.push_back(id);
        }
    // Slots of backends that leave now join the retired ones; a retired slot
    // is free for an arrival once its flows are gone.
    std::vector<lb::BackendSlot> retired = retired_;
    for (const auto &[id, slot] : slots_)
        if (!next.count(id))
            retired.push_back(slot);
    lb::BackendSlot never_used = never_used_;
    for (const Identity &id : arriving) {
        if (never_used < capacity_) {
            next.emplace(id, never_used++);
            continue;
        }
        const auto free = std::find_if(retired.begin(), retired.end(), idle);
        if (free == retired.end()) {
            error = "too many backends: the workers count at most " + std::to_string(capacity_) +
                    ", including backends that left but still have flows";
            return false;
        }
        next.emplace(id, *free);
        retired.erase(free);
    }
    slots_ = std::move(next);
    retired_ = std::move(retired);
    never_used_ = never_used;
    return true;
}

lb::BackendSlot BackendSlots::slot(const std::string &service, const BackendConfig &backend) const {
    const auto found = slots_.find(identity(service, backend));
    return found == slots_.end() ? lb::no_backend_slot : found->second;
}

} // namespace sluice::ctrl
