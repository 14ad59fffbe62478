// The datagrams whose first fragment went by recently. Only a first fragment
// carries ports, so the later ones cannot be matched to a flow by themselves:
// each datagram is remembered by (source, destination, protocol, IP
// identification) with the 5-tuple of its first fragment, and the fragments
// after it are balanced as that tuple (VPP calls this shallow virtual
// reassembly). Nothing is buffered or reassembled. One table per worker;
// all memory is allocated when it is built.
#pragma once

#include <cstdint>
#include <vector>

#include "lb/flow_key.h"

namespace sluice::lb {

class FragmentTable {
public:
    // Room for about `capacity` datagrams (rounded up to whole sets of 4),
    // each kept for `lifetime_ms` after its first fragment.
    FragmentTable(uint32_t capacity, const HashKey &key, uint32_t lifetime_ms);

    // What identifies a datagram: the addresses, protocol and family of
    // `tuple` with the IP identification in place of the ports.
    static FlowKey identity(const FlowKey &tuple, uint32_t fragment_id);

    // A first fragment passed with 5-tuple `datagram`: a full set loses its
    // oldest entry.
    void remember(const FlowKey &datagram, uint32_t fragment_id, uint32_t now);
    // The 5-tuple of the datagram a later fragment (its identity) belongs
    // to, or null.
    const FlowKey *find(const FlowKey &identity, uint32_t now) const;

    uint64_t evictions() const { return evictions_; }

private:
    static constexpr unsigned ways = 4;
    struct Entry {
        FlowKey identity;
        FlowKey datagram;
        uint32_t expires = 0;  // ms; 0: empty
    };
    const Entry *set_of(const FlowKey &identity) const {
        return &entries_[(flow_hash(identity, key_) & set_mask_) * ways];
    }
    static bool live(const Entry &entry, uint32_t now) {
        return entry.expires != 0 && int32_t(entry.expires - now) > 0;
    }

    std::vector<Entry> entries_;
    uint64_t set_mask_;
    HashKey key_;
    uint32_t lifetime_ms_;
    uint64_t evictions_ = 0;
};

} // namespace sluice::lb
