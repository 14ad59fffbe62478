// Which worker owns a packet: SNAT slices, the nat client hash and the masked
// blocks that rte_flow rules are made of.
#include <gtest/gtest.h>

#include <set>

#include "lb/steering.h"
#include "tests/fixtures/packet_builder.h"

namespace sluice::lb {
namespace {

using namespace sluice::testing;

const IpAddress snat = ip("198.18.1.100");
const IpAddress vip_fullnat = ip("198.18.10.1"), vip_nat = ip("198.18.10.2"),
                vip_dsr = ip("198.18.10.4");
const IpAddress client = ip("198.18.0.2"), backend = ip("198.18.1.11");

uint16_t be(uint16_t port) { return uint16_t(port << 8 | port >> 8); }

FlowKey tcp_key(const IpAddress &source, uint16_t source_port, const IpAddress &destination,
                uint16_t destination_port) {
    FlowKey key;
    std::memcpy(key.source.data(), source.bytes.data(), source.is_v4() ? 4 : 16);
    std::memcpy(key.destination.data(), destination.bytes.data(), destination.is_v4() ? 4 : 16);
    key.source_port = be(source_port);
    key.destination_port = be(destination_port);
    key.protocol = 6;
    key.family = source.is_v4() ? 4 : 6;
    return key;
}

Service service(const char *name, const IpAddress &vip, ForwardingMode mode) {
    Service s;
    s.name = name;
    s.vip = vip;
    s.port_be = be(80);
    s.mode = mode;
    s.backends.push_back({backend, 0, 1});
    const std::vector<MaglevBackend> identities{{"b", 1}};
    s.maglev = MaglevTable(identities, 251, 1);
    if (mode == ForwardingMode::fullnat)
        s.local_addresses = {snat};
    return s;
}

// The owner of a packet with `key`, as the worker asks after probing it.
uint16_t owner_of(const Steering &steering, const FlowKey &key, const Snapshot &snapshot) {
    FlowProbe probe;
    probe.key = key;
    probe.candidate = true;
    return steering.owner(probe, snapshot);
}

Snapshot snapshot() {
    std::vector<Service> services;
    services.push_back(service("fullnat", vip_fullnat, ForwardingMode::fullnat));
    services.push_back(service("nat", vip_nat, ForwardingMode::nat));
    services.push_back(service("dsr", vip_dsr, ForwardingMode::dsr));
    return Snapshot(std::move(services), std::vector<EgressPort>(2), {}, 1, 1);
}

TEST(SnatSlices, CoverThePortsOnceInEqualSlices) {
    for (unsigned workers : {1u, 2u, 3u, 7u, 16u}) {
        const SnatSlices slices(workers);
        uint32_t next = SnatSlices::first_port;
        for (unsigned w = 0; w < workers; ++w) {
            const SnatPortRange range = slices.slice(w);
            EXPECT_EQ(range.first, next) << workers << " workers, slice " << w;
            EXPECT_GE(range.last, range.first);
            for (uint32_t port : {uint32_t(range.first), uint32_t(range.last),
                                  (uint32_t(range.first) + range.last) / 2})
                EXPECT_EQ(slices.owner(uint16_t(port)), w) << port;
            next = uint32_t(range.last) + 1;
        }
        EXPECT_EQ(next, 65536u);
        EXPECT_EQ(slices.owner(80), any_worker);
    }
}

TEST(Steering, OneWorkerKeepsEverything) {
    const Snapshot s = snapshot();
    const Steering one(1);
    EXPECT_EQ(owner_of(one, tcp_key(backend, 80, snat, 40000), s), any_worker);
    EXPECT_EQ(owner_of(one, tcp_key(client, 40000, vip_nat, 80), s), any_worker);
}

TEST(Steering, FullnatAnswersGoToTheSliceOwner) {
    const Snapshot s = snapshot();
    const Steering steering(4);
    for (unsigned w = 0; w < 4; ++w) {
        const SnatPortRange range = steering.slices().slice(w);
        EXPECT_EQ(owner_of(steering, tcp_key(backend, 80, snat, range.first), s), w);
        EXPECT_EQ(owner_of(steering, tcp_key(backend, 80, snat, range.last), s), w);
    }
    // Requests stay with the worker RSS chose: it creates the flow from its slice.
    EXPECT_EQ(owner_of(steering, tcp_key(client, 40000, vip_fullnat, 80), s), any_worker);
    EXPECT_EQ(owner_of(steering, tcp_key(client, 40000, vip_dsr, 80), s), any_worker);
}

TEST(Steering, NatRequestsAndAnswersMeetAtOneWorker) {
    const Snapshot s = snapshot();
    const Steering steering(4);
    std::set<uint16_t> owners;
    for (uint16_t port = 40000; port < 40200; ++port) {
        const uint16_t request = owner_of(steering, tcp_key(client, port, vip_nat, 80), s);
        ASSERT_LT(request, 4);
        EXPECT_EQ(owner_of(steering, tcp_key(backend, 80, client, port), s), request) << port;
        owners.insert(request);
    }
    EXPECT_EQ(owners.size(), 4u);  // clients spread over every worker
}

TEST(Steering, OwnershipOutlivesSnapshots) {
    // A reload builds a new snapshot with new lookup keys: nat flows must not move.
    const Snapshot first = snapshot(), second = snapshot();
    const Steering steering(3), other(3);
    for (uint16_t port = 40000; port < 40050; ++port) {
        const FlowKey key = tcp_key(client, port, vip_nat, 80);
        EXPECT_EQ(owner_of(steering, key, first), owner_of(other, key, second));
    }
}

TEST(PortRangeMasks, CoverExactlyTheRange) {
    const std::pair<uint16_t, uint16_t> ranges[] = {
        {1024, 65535}, {1024, 33279}, {33280, 65535}, {1024, 22527}, {0, 65535},
        {5, 5},        {7, 8},        {1, 65534},     {40000, 40000}};
    for (const auto &[first, last] : ranges) {
        const std::vector<MaskedPort> masks = port_range_masks(first, last);
        EXPECT_LE(masks.size(), 32u);
        for (uint32_t port = 0; port <= 65535; ++port) {
            unsigned matches = 0;
            for (const MaskedPort &m : masks)
                matches += (port & m.mask) == m.value;
            EXPECT_EQ(matches, port >= first && port <= last ? 1u : 0u)
                << "port " << port << " in " << first << ".." << last;
            if (matches != (port >= first && port <= last ? 1u : 0u))
                break;
        }
    }
}

} // namespace
} // namespace sluice::lb
