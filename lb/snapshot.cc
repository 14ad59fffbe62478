#include "lb/snapshot.h"

#include <algorithm>
#include <cstring>

namespace sluice::lb {

namespace {

// The listener table's own fixed key: service lookups need no secrecy (the
// services are the operator's), only speed and determinism.
constexpr uint64_t listener_table_seed = 0x6c697374656e6572ull;  // "listener"

} // namespace

FlowKey Snapshot::listener_key(const IpAddress &vip, uint8_t protocol, uint16_t port_be) {
    FlowKey key;
    std::memcpy(key.destination.data(), vip.bytes.data(), vip.is_v4() ? 4 : 16);
    key.destination_port = port_be;
    key.protocol = protocol;
    key.family = vip.is_v4() ? 4 : 6;
    return key;
}

Snapshot::Snapshot(std::vector<Service> services, std::vector<EgressPort> ports,
                   std::vector<std::pair<IpAddress, NextHop>> next_hops, uint64_t maglev_seed,
                   uint64_t generation)
    : services_(std::move(services)), ports_(std::move(ports)),
      maglev_key_(HashKey::from_seed(maglev_seed)),
      lookup_key_(HashKey::from_seed(listener_table_seed)), generation_(generation) {
    size_t size = 16;
    while (size < services_.size() * 2)
        size *= 2;
    slots_.resize(size);
    for (uint32_t i = 0; i < services_.size(); ++i) {
        const Service &service = services_[i];
        const FlowKey key = listener_key(service.vip, service.protocol, service.port_be);
        for (size_t slot = slot_hash(key) & (size - 1);; slot = (slot + 1) & (size - 1)) {
            if (slots_[slot].service == no_service) {
                slots_[slot] = {key, i};
                break;
            }
        }
        for (const IpAddress &local : service.local_addresses) {
            std::array<uint8_t, 17> entry{};
            entry[0] = local.is_v4() ? 4 : 6;
            std::memcpy(entry.data() + 1, local.bytes.data(), local.is_v4() ? 4 : 16);
            if (std::find(local_addresses_.begin(), local_addresses_.end(), entry) ==
                local_addresses_.end())
                local_addresses_.push_back(entry);
        }
    }

    size = 16;
    while (size < next_hops.size() * 2)
        size *= 2;
    next_hops_.resize(size);
    for (const auto &[address, next_hop] : next_hops) {
        const FlowKey key = listener_key(address, 0, 0);
        size_t slot = slot_hash(key) & (size - 1);
        while (next_hops_[slot].used && !(next_hops_[slot].key == key))
            slot = (slot + 1) & (size - 1);
        next_hops_[slot] = {key, true, next_hop};
    }
}

const NextHop *Snapshot::find_next_hop(const std::array<uint8_t, 16> &address,
                                       uint8_t family) const {
    FlowKey key;
    key.destination = address;
    key.family = family;
    const size_t mask = next_hops_.size() - 1;
    for (size_t slot = slot_hash(key) & mask; next_hops_[slot].used; slot = (slot + 1) & mask)
        if (next_hops_[slot].key == key)
            return &next_hops_[slot].next_hop;
    return nullptr;
}

uint32_t Snapshot::find_service(const FlowKey &packet) const {
    const size_t mask = slots_.size() - 1;
    FlowKey key;
    key.destination = packet.destination;
    key.protocol = packet.protocol;
    key.family = packet.family;
    // An exact port first, then the VIP's every-port service (port 0).
    for (const uint16_t port : {packet.destination_port, uint16_t(0)}) {
        key.destination_port = port;
        for (size_t slot = slot_hash(key) & mask; slots_[slot].service != no_service;
             slot = (slot + 1) & mask)
            if (slots_[slot].key == key)
                return slots_[slot].service;
        if (port == 0)
            break;
    }
    return no_service;
}

bool Snapshot::is_local_address(const uint8_t *address, uint8_t family) const {
    for (const auto &entry : local_addresses_)
        if (entry[0] == family && std::memcmp(entry.data() + 1, address, family == 4 ? 4 : 16) == 0)
            return true;
    return false;
}

} // namespace sluice::lb
