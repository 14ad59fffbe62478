// What the workers balance by: the services with their backends and Maglev
// tables, the gateway's own addresses, and where each backend's packets
// leave. Built by the control plane, immutable once published, read by every
// worker without locks; a change builds a new snapshot (RCU). No EAL.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/local_reply.h"
#include "dataplane/net_addr.h"
#include "lb/flow_key.h"
#include "lb/flow_table.h"
#include "lb/maglev.h"

namespace sluice::lb {

// proxy: the worker's own TCP ends the client's connection on the VIP and
// opens another from a local address to the backend (lb/tcp_proxy.h).
enum class ForwardingMode : uint8_t { fullnat, nat, dsr, proxy };
enum class DsrEncapsulation : uint8_t { ipip, gue };
// What becomes of the flows of a backend that leaves the service.
enum class RemovedBackendFlows : uint8_t { keep, reset };

struct Backend {
    IpAddress address;
    uint16_t port_be = 0;  // network byte order; 0: the client's destination port
    uint32_t weight = 1;
    BackendSlot slot = no_backend_slot;  // its counters; flows remember it
};

// Where packets to an address leave: the egress port's index and the next
// hop's MAC (the address's own when it is on-link, its route's gateway's
// otherwise), both found by the control plane. Until the neighbour answers,
// `resolved` is false.
struct NextHop {
    uint16_t egress_port = 0;
    bool resolved = false;
    MacAddress mac;
};

struct Service {
    std::string name;
    IpAddress vip;
    uint8_t protocol = 6;
    uint16_t port_be = 0;  // network byte order; 0: every port
    ForwardingMode mode = ForwardingMode::fullnat;
    std::vector<IpAddress> local_addresses;  // fullnat SNAT, proxy source addresses
    DsrEncapsulation encapsulation = DsrEncapsulation::ipip;
    uint16_t gue_port = 6080;  // host byte order
    RemovedBackendFlows removed_backend_flows = RemovedBackendFlows::keep;
    // The flow table profile its new flows take (0: the table's own, from
    // lb.timeouts) and, for another, that profile's timeouts in ms.
    TimeoutProfile timeout_profile = 0;
    FlowTimeouts timeouts;
    std::vector<Backend> backends;
    MaglevTable maglev;
};

// A gateway port as the balancer needs it: its MAC (the source of what it
// sends) and an address of each family to source DSR tunnels from.
struct EgressPort {
    MacAddress mac;
    IpAddress ipv4, ipv6;
    bool has_ipv4 = false, has_ipv6 = false;
    uint16_t mtu = 1500;  // of the link: IP packets up to this size
    // What the port answers ARP, ND and echo for: its own addresses, the
    // VIPs and the SNAT addresses.
    LocalAddresses local;
};

// The local address a flow (or proxied connection) with flow hash `hash`
// leaves from: the hash modulo their count, by a mask when the count is a
// power of two (one address, most often), which gives the same index
// without a division.
inline const IpAddress &local_address_of(const Service &service, uint64_t hash) {
    const size_t count = service.local_addresses.size();
    return service.local_addresses[(count & (count - 1)) == 0 ? hash & (count - 1) : hash % count];
}

class Snapshot {
public:
    Snapshot(std::vector<Service> services, std::vector<EgressPort> ports,
             std::vector<std::pair<IpAddress, NextHop>> next_hops, uint64_t maglev_seed,
             uint64_t generation);

    static constexpr uint32_t no_service = UINT32_MAX;

    // The service listening on destination address/protocol/port of `key`
    // (an exact port first, then an every-port service), or no_service.
    // Inline: every packet to a VIP asks, and most are IPv4.
    uint32_t find_service(const FlowKey &key) const {
        if (key.family != 4)
            return find_service_v6(key);
        uint32_t address_be;
        std::memcpy(&address_be, key.destination.data(), 4);
        const uint32_t exact = find_listener_v4(v4_key(address_be, key.destination_port, key.protocol));
        return exact != no_service || key.destination_port == 0
                   ? exact
                   : find_listener_v4(v4_key(address_be, 0, key.protocol));
    }
    // True when `address` (16 bytes, IPv4 in the first 4) of `family` is a
    // fullnat SNAT address of some service: return traffic.
    bool is_local_address(const uint8_t *address, uint8_t family) const;
    // True when `address` is the VIP of some service.
    bool is_vip(const std::array<uint8_t, 16> &address, uint8_t family) const;
    // Where packets to `address` (16 bytes as in FlowKey) leave, or null when
    // the gateway knows no way there.
    const NextHop *find_next_hop(const std::array<uint8_t, 16> &address, uint8_t family) const;
    // The same for the backend in `slot` at `address`: by the slot when this
    // snapshot has the backend (one indexed load), by the address otherwise
    // (a backend that left: its flows may still run).
    const NextHop *next_hop_of(BackendSlot slot, const std::array<uint8_t, 16> &address,
                               uint8_t family) const {
        if (slot < next_hop_by_slot_.size() && next_hop_by_slot_[slot] != no_next_hop)
            return &next_hops_[next_hop_by_slot_[slot]].next_hop;
        return find_next_hop(address, family);
    }

    const std::vector<Service> &services() const { return services_; }
    const std::vector<EgressPort> &ports() const { return ports_; }
    const HashKey &maglev_key() const { return maglev_key_; }
    uint64_t generation() const { return generation_; }

private:
    struct Slot {
        FlowKey key;  // destination, destination_port, protocol, family; the rest zero
        uint32_t service = no_service;
    };
    // Keys of the snapshot's own tables carry only a destination, its port,
    // protocol and family (the source words are zero), and they are the
    // operator's: a plain multiply-xor over those three words will do, at a
    // fraction of flow_hash's cost on every packet.
    static uint64_t slot_hash(const FlowKey &key) {
        uint64_t words[5];
        std::memcpy(words, &key, sizeof words);
        uint64_t h = (words[2] ^ 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
        h = (h ^ (h >> 29) ^ words[3]) * 0x94d049bb133111ebull;
        h = (h ^ (h >> 32) ^ words[4]) * 0x9e3779b97f4a7c15ull;
        return h ^ (h >> 29);
    }
    static FlowKey listener_key(const IpAddress &vip, uint8_t protocol, uint16_t port_be);
    uint32_t find_service_v6(const FlowKey &key) const;

    // IPv4 listeners have a table of their own, keyed by one 64-bit word
    // (address, port, protocol): a multiply to hash and one compare per
    // probe, where the FlowKey table hashes and compares five words.
    struct V4Listener {
        uint64_t key = 0;
        uint32_t service = no_service;  // no_service: a free slot
    };
    static uint64_t v4_key(uint32_t address_be, uint16_t port_be, uint8_t protocol) {
        return uint64_t(address_be) << 32 | uint32_t(port_be) << 16 | protocol;
    }
    // Fibonacci hashing: the multiply's high bits are the index.
    size_t v4_index(uint64_t key) const {
        return size_t((key * 0x9e3779b97f4a7c15ull) >> v4_shift_);
    }
    uint32_t find_listener_v4(uint64_t key) const {
        const size_t mask = v4_listeners_.size() - 1;
        for (size_t slot = v4_index(key);; slot = (slot + 1) & mask) {
            const V4Listener &listener = v4_listeners_[slot];
            if (listener.key == key || listener.service == no_service)
                return listener.service;
        }
    }

    std::vector<Service> services_;
    std::vector<EgressPort> ports_;
    std::vector<Slot> slots_;  // IPv6: open addressing, power-of-two size, linear probing
    std::vector<V4Listener> v4_listeners_;  // the same, never full
    unsigned v4_shift_ = 64;
    // Small sets of addresses, each entry the family then 16 bytes.
    using AddressEntry = std::array<uint8_t, 17>;
    static AddressEntry entry_of(const IpAddress &address);
    static bool contains(const std::vector<AddressEntry> &set, const uint8_t *address,
                         uint8_t family);
    std::vector<AddressEntry> local_addresses_;
    std::vector<AddressEntry> vips_;
    struct NextHopSlot {
        FlowKey key;  // destination and family only
        bool used = false;
        NextHop next_hop;
    };
    std::vector<NextHopSlot> next_hops_;  // open addressing like slots_
    static constexpr uint32_t no_next_hop = UINT32_MAX;
    // The index in next_hops_ of `address`'s entry, or no_next_hop.
    uint32_t next_hop_index(const std::array<uint8_t, 16> &address, uint8_t family) const;
    std::vector<uint32_t> next_hop_by_slot_;  // indexes of next_hops_, by BackendSlot
    HashKey maglev_key_;
    uint64_t generation_;
};

} // namespace sluice::lb
