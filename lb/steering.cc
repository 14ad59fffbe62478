#include "lb/steering.h"

#include <algorithm>

namespace sluice::lb {

namespace {
constexpr uint64_t steering_seed = 0x51ce5eed0f10a4e5ull;
constexpr unsigned port_space = SnatSlices::last_port - SnatSlices::first_port + 1;
} // namespace

SnatSlices::SnatSlices(unsigned workers)
    : workers_(std::max(workers, 1u)), slice_size_(port_space / workers_) {}

SnatPortRange SnatSlices::slice(unsigned worker) const {
    const unsigned first = first_port + worker * slice_size_;
    const unsigned last = worker + 1 == workers_ ? last_port : first + slice_size_ - 1;
    return {uint16_t(first), uint16_t(last)};
}

uint16_t SnatSlices::owner(uint16_t port) const {
    if (port < first_port)
        return any_worker;
    return uint16_t(std::min((port - first_port) / slice_size_, workers_ - 1));
}

Steering::Steering(unsigned workers) : slices_(workers), key_(HashKey::from_seed(steering_seed)) {}

uint16_t Steering::by_client(const std::array<uint8_t, 16> &address, uint16_t port_be,
                             uint8_t family) const {
    FlowKey client;
    client.source = address;
    client.source_port = port_be;
    client.family = family;
    return uint16_t(flow_hash(client, key_) % slices_.workers());
}

uint16_t Steering::owner(FlowProbe &probe, const Snapshot &snapshot) const {
    if (slices_.workers() == 1)
        return any_worker;
    const FlowKey &key = probe.key;
    if (snapshot.is_local_address(key.destination.data(), key.family)) {
        const uint16_t port = uint16_t(key.destination_port << 8 | key.destination_port >> 8);
        return slices_.owner(port);
    }
    if (snapshot.is_vip(key.destination, key.family)) {
        probe.service = snapshot.find_service(key);
        probe.service_known = true;
        if (probe.service != Snapshot::no_service &&
            snapshot.services()[probe.service].mode == ForwardingMode::nat)
            return by_client(key.source, key.source_port, key.family);
        return any_worker;
    }
    // Perhaps a nat backend's answer (the balancer tells): it goes where the
    // client's packets went.
    return by_client(key.destination, key.destination_port, key.family);
}

std::vector<MaskedPort> port_range_masks(uint16_t first, uint16_t last) {
    std::vector<MaskedPort> masks;
    uint32_t low = first;
    while (low <= last) {
        // The largest aligned block that starts at `low` and ends by `last`.
        uint32_t size = low == 0 ? 0x10000 : (low & -low);
        while (low + size - 1 > last)
            size >>= 1;
        masks.push_back({uint16_t(low), uint16_t(~(size - 1))});
        low += size;
    }
    return masks;
}

} // namespace sluice::lb
