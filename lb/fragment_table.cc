#include "lb/fragment_table.h"

#include <algorithm>
#include <bit>

namespace sluice::lb {

FragmentTable::FragmentTable(uint32_t capacity, const HashKey &key, uint32_t lifetime_ms)
    : key_(key), lifetime_ms_(std::max(lifetime_ms, 1u)) {
    const uint64_t sets = std::bit_ceil(std::max<uint64_t>((capacity + ways - 1) / ways, 1));
    entries_.resize(sets * ways);
    set_mask_ = sets - 1;
}

FlowKey FragmentTable::identity(const FlowKey &tuple, uint32_t fragment_id) {
    FlowKey id = tuple;
    id.source_port = uint16_t(fragment_id >> 16);
    id.destination_port = uint16_t(fragment_id);
    return id;
}

void FragmentTable::remember(const FlowKey &datagram, uint32_t fragment_id, uint32_t now) {
    const FlowKey id = identity(datagram, fragment_id);
    Entry *set = const_cast<Entry *>(set_of(id));
    // The same datagram again (a retransmitted first fragment), else a free
    // or expired way, else the one that expires first.
    Entry *chosen = nullptr;
    for (unsigned way = 0; way < ways && !chosen; ++way)
        if (live(set[way], now) && set[way].identity == id)
            chosen = &set[way];
    for (unsigned way = 0; way < ways && !chosen; ++way)
        if (!live(set[way], now))
            chosen = &set[way];
    if (!chosen) {
        chosen = &set[0];
        for (unsigned way = 1; way < ways; ++way)
            if (int32_t(set[way].expires - chosen->expires) < 0)
                chosen = &set[way];
        ++evictions_;
    }
    chosen->identity = id;
    chosen->datagram = datagram;
    chosen->expires = now + lifetime_ms_;
    if (chosen->expires == 0)
        chosen->expires = 1;
}

const FlowKey *FragmentTable::find(const FlowKey &identity, uint32_t now) const {
    const Entry *set = set_of(identity);
    for (unsigned way = 0; way < ways; ++way)
        if (live(set[way], now) && set[way].identity == identity)
            return &set[way].datagram;
    return nullptr;
}

} // namespace sluice::lb
