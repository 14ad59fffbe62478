// Which worker a packet belongs to. RSS spreads a port's packets over the
// workers, but a flow's state lives in one worker's table: the packets of a
// flow that RSS hands to another worker must be passed to the owner. No EAL:
// the worker moves the packets, this only decides.
//
//   fullnat answers  to a SNAT address: the worker whose slice holds the
//                    destination port (it picked that port for the flow)
//   nat, both ways   hash(client address, client port): to a nat VIP the
//                    client is the source, in answers it is the destination
//   anything else    the worker RSS chose (fullnat and dsr requests: the
//                    worker that saw the first packet creates the flow)
#pragma once

#include <cstdint>
#include <vector>

#include "lb/flow_key.h"
#include "lb/l4_balancer.h"
#include "lb/snapshot.h"

namespace sluice::lb {

constexpr uint16_t any_worker = UINT16_MAX;

// The SNAT ports, 1024..65535, cut into one equal slice per worker (the
// last takes the remainder).
class SnatSlices {
public:
    explicit SnatSlices(unsigned workers);

    SnatPortRange slice(unsigned worker) const;
    // The worker owning `port` (host order), or any_worker below the range.
    uint16_t owner(uint16_t port) const;
    unsigned workers() const { return workers_; }

    static constexpr uint16_t first_port = 1024;
    static constexpr uint16_t last_port = 65535;

private:
    unsigned workers_;
    unsigned slice_size_;
};

class Steering {
public:
    explicit Steering(unsigned workers);

    unsigned workers() const { return slices_.workers(); }
    const SnatSlices &slices() const { return slices_; }

    // The owner of a probed TCP or UDP packet, or any_worker when the
    // receiving worker may keep it. A VIP's service, once looked up, stays
    // in the probe for the balancer.
    uint16_t owner(FlowProbe &probe, const Snapshot &snapshot) const;

private:
    uint16_t by_client(const std::array<uint8_t, 16> &address, uint16_t port_be,
                       uint8_t family) const;

    SnatSlices slices_;
    // Fixed, not per snapshot: a reload must not move nat flows.
    HashKey key_;
};

// A port range as value/mask pairs that cover it exactly (for match rules
// that take masks, not ranges): at most 2 x 16 pairs.
struct MaskedPort {
    uint16_t value;
    uint16_t mask;
};
std::vector<MaskedPort> port_range_masks(uint16_t first, uint16_t last);

} // namespace sluice::lb
