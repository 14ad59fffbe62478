#include "lb/snapshot.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace sluice::lb {

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
      maglev_key_(HashKey::from_seed(maglev_seed)), generation_(generation) {
    size_t size = 16;
    while (size < services_.size() * 2)
        size *= 2;
    slots_.resize(size);
    v4_listeners_.resize(size);
    v4_shift_ = unsigned(64 - std::countr_zero(size));
    // Both tables probe linearly from a key's slot and stop at the first
    // match: of two services on the same listener, the first one wins.
    for (uint32_t i = 0; i < services_.size(); ++i) {
        const Service &service = services_[i];
        if (service.vip.is_v4()) {
            uint32_t address_be;
            std::memcpy(&address_be, service.vip.bytes.data(), 4);
            const uint64_t key = v4_key(address_be, service.port_be, service.protocol);
            for (size_t slot = v4_index(key);; slot = (slot + 1) & (size - 1)) {
                if (v4_listeners_[slot].service == no_service) {
                    v4_listeners_[slot] = {key, i};
                    break;
                }
            }
        } else {
            const FlowKey key = listener_key(service.vip, service.protocol, service.port_be);
            for (size_t slot = slot_hash(key) & (size - 1);; slot = (slot + 1) & (size - 1)) {
                if (slots_[slot].service == no_service) {
                    slots_[slot] = {key, i};
                    break;
                }
            }
        }
        auto add = [](std::vector<AddressEntry> &set, const IpAddress &address) {
            const AddressEntry entry = entry_of(address);
            if (std::find(set.begin(), set.end(), entry) == set.end())
                set.push_back(entry);
        };
        add(vips_, service.vip);
        for (const IpAddress &local : service.local_addresses)
            add(local_addresses_, local);
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
    // Each backend's next hop by its slot, looked up once here rather than
    // hashed for every packet of its flows.
    for (const Service &service : services_)
        for (const Backend &backend : service.backends) {
            if (backend.slot == no_backend_slot)
                continue;
            if (backend.slot >= next_hop_by_slot_.size())
                next_hop_by_slot_.resize(size_t(backend.slot) + 1, no_next_hop);
            std::array<uint8_t, 16> address{};
            std::memcpy(address.data(), backend.address.bytes.data(),
                        backend.address.is_v4() ? 4 : 16);
            // An index, not a pointer: it stays right if the snapshot moves.
            next_hop_by_slot_[backend.slot] =
                next_hop_index(address, backend.address.is_v4() ? 4 : 6);
        }
}

uint32_t Snapshot::next_hop_index(const std::array<uint8_t, 16> &address,
                                  uint8_t family) const {
    FlowKey key;
    key.destination = address;
    key.family = family;
    const size_t mask = next_hops_.size() - 1;
    for (size_t slot = slot_hash(key) & mask; next_hops_[slot].used; slot = (slot + 1) & mask)
        if (next_hops_[slot].key == key)
            return uint32_t(slot);
    return no_next_hop;
}

const NextHop *Snapshot::find_next_hop(const std::array<uint8_t, 16> &address,
                                       uint8_t family) const {
    const uint32_t index = next_hop_index(address, family);
    return index == no_next_hop ? nullptr : &next_hops_[index].next_hop;
}

uint32_t Snapshot::find_service_v6(const FlowKey &packet) const {
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

Snapshot::AddressEntry Snapshot::entry_of(const IpAddress &address) {
    AddressEntry entry{};
    entry[0] = address.is_v4() ? 4 : 6;
    std::memcpy(entry.data() + 1, address.bytes.data(), address.is_v4() ? 4 : 16);
    return entry;
}

bool Snapshot::contains(const std::vector<AddressEntry> &set, const uint8_t *address,
                        uint8_t family) {
    for (const AddressEntry &entry : set)
        if (entry[0] == family && std::memcmp(entry.data() + 1, address, family == 4 ? 4 : 16) == 0)
            return true;
    return false;
}

bool Snapshot::is_local_address(const uint8_t *address, uint8_t family) const {
    return contains(local_addresses_, address, family);
}

bool Snapshot::is_vip(const std::array<uint8_t, 16> &address, uint8_t family) const {
    return contains(vips_, address.data(), family);
}

} // namespace sluice::lb
