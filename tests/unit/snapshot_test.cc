#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <tuple>

#include "lb/snapshot.h"

namespace sluice::lb {
namespace {

IpAddress ip(const char *text) { return *parse_ip_address(text); }

Service service(const char *name, const char *vip, uint8_t protocol, uint16_t port) {
    Service s;
    s.name = name;
    s.vip = ip(vip);
    s.protocol = protocol;
    s.port_be = uint16_t(port << 8 | port >> 8);
    return s;
}

FlowKey packet_to(const char *vip, uint8_t protocol, uint16_t port) {
    FlowKey k;
    const IpAddress a = ip(vip);
    std::memcpy(k.destination.data(), a.bytes.data(), a.is_v4() ? 4 : 16);
    k.family = a.is_v4() ? 4 : 6;
    k.protocol = protocol;
    k.destination_port = uint16_t(port << 8 | port >> 8);
    k.source_port = 0x3412;
    k.source = {198, 18, 0, 2};
    return k;
}

TEST(Snapshot, FindsServicesByVipProtocolAndPort) {
    std::vector<Service> services;
    services.push_back(service("web", "198.18.10.1", 6, 80));
    services.push_back(service("dns", "198.18.10.1", 17, 53));
    services.push_back(service("all", "198.18.10.2", 6, 0));
    services.push_back(service("web6", "2001:db8:10::1", 6, 80));
    services[0].local_addresses = {ip("198.18.1.100")};
    const Snapshot snapshot(std::move(services), {}, {}, 1, 1);

    EXPECT_EQ(snapshot.find_service(packet_to("198.18.10.1", 6, 80)), 0u);
    EXPECT_EQ(snapshot.find_service(packet_to("198.18.10.1", 17, 53)), 1u);
    EXPECT_EQ(snapshot.find_service(packet_to("198.18.10.2", 6, 22)), 2u);
    EXPECT_EQ(snapshot.find_service(packet_to("2001:db8:10::1", 6, 80)), 3u);
    EXPECT_EQ(snapshot.find_service(packet_to("198.18.10.1", 6, 81)), Snapshot::no_service);
    EXPECT_EQ(snapshot.find_service(packet_to("198.18.10.1", 17, 80)), Snapshot::no_service);
    EXPECT_EQ(snapshot.find_service(packet_to("198.18.10.3", 6, 80)), Snapshot::no_service);
    EXPECT_EQ(snapshot.find_service(packet_to("2001:db8:10::2", 6, 80)), Snapshot::no_service);

    const IpAddress local = ip("198.18.1.100"), other = ip("198.18.1.101");
    EXPECT_TRUE(snapshot.is_local_address(local.bytes.data(), 4));
    EXPECT_FALSE(snapshot.is_local_address(other.bytes.data(), 4));
    EXPECT_FALSE(snapshot.is_local_address(local.bytes.data(), 6));
}

TEST(Snapshot, ManyServicesAllFound) {
    std::vector<Service> services;
    auto vip_of = [](int i) {
        return "198.18.20." + std::to_string(i % 250);
    };
    for (int i = 0; i < 500; ++i) {
        const std::string vip = vip_of(i);
        services.push_back(service("s", vip.c_str(), i < 250 ? 6 : 17, uint16_t(1000 + i)));
    }
    const Snapshot snapshot(std::move(services), {}, {}, 1, 1);
    for (int i = 0; i < 500; ++i) {
        const std::string vip = vip_of(i);
        EXPECT_EQ(snapshot.find_service(packet_to(vip.c_str(), i < 250 ? 6 : 17, uint16_t(1000 + i))),
                  uint32_t(i));
    }
}

// IPv4 listeners have their own table: against the rule itself (the first
// service on the exact listener, else the first every-port one on the VIP
// and protocol), over random VIPs, ports and protocols with duplicates and
// addresses whose bytes differ only where a hash might not look.
TEST(Snapshot, Ipv4ListenersFollowTheRuleExactlyThenEveryPortFirstWins) {
    std::mt19937 rng(4);
    auto vip_text = [&] { return "198.18." + std::to_string(rng() % 2) + "." + std::to_string(rng() % 4); };
    std::vector<Service> services;
    for (int i = 0; i < 120; ++i) {
        const std::string vip = vip_text();
        const uint16_t port = rng() % 3 == 0 ? 0 : uint16_t(rng() % 6);
        services.push_back(service("s", vip.c_str(), rng() & 1 ? 6 : 17, port));
    }
    services.push_back(service("v6", "2001:db8:10::1", 6, 1));
    const std::vector<Service> copy = services;
    const Snapshot snapshot(std::move(services), {}, {}, 1, 1);
    auto expected = [&](const FlowKey &key) {
        for (const uint16_t port : {key.destination_port, uint16_t(0)})
            for (uint32_t i = 0; i < copy.size(); ++i)
                if (copy[i].vip.is_v4() &&
                    std::memcmp(copy[i].vip.bytes.data(), key.destination.data(), 4) == 0 &&
                    copy[i].protocol == key.protocol && copy[i].port_be == port)
                    return i;
        return Snapshot::no_service;
    };
    for (int i = 0; i < 2000; ++i) {
        const std::string vip = vip_text();
        const FlowKey key = packet_to(vip.c_str(), rng() & 1 ? 6 : 17, uint16_t(rng() % 7));
        ASSERT_EQ(snapshot.find_service(key), expected(key)) << vip << " " << i;
    }
    EXPECT_EQ(snapshot.find_service(packet_to("2001:db8:10::1", 6, 1)), 120u);
}

TEST(Snapshot, NextHops) {
    NextHop resolved, pending;
    resolved.egress_port = pending.egress_port = 1;
    resolved.resolved = true;
    resolved.mac = *parse_mac_address("02:00:00:00:01:0b");
    const Snapshot snapshot({}, {}, {{ip("198.18.1.11"), resolved}, {ip("2001:db8:0:2::12"), pending}},
                            1, 1);
    const NextHop *a = snapshot.find_next_hop(packet_to("198.18.1.11", 0, 0).destination, 4);
    ASSERT_NE(a, nullptr);
    EXPECT_TRUE(a->resolved);
    EXPECT_EQ(a->egress_port, 1);
    EXPECT_EQ(a->mac.to_string(), "02:00:00:00:01:0b");
    const NextHop *b = snapshot.find_next_hop(packet_to("2001:db8:0:2::12", 0, 0).destination, 6);
    ASSERT_NE(b, nullptr);
    EXPECT_FALSE(b->resolved);
    EXPECT_EQ(snapshot.find_next_hop(packet_to("198.18.1.12", 0, 0).destination, 4), nullptr);
}

TEST(Snapshot, NextHopsBySlotAgreeWithTheAddressAndFallBackToIt) {
    NextHop one, two;
    one.egress_port = 1;
    two.egress_port = 2;
    std::vector<Service> services;
    services.push_back(service("web", "198.18.10.1", 6, 80));
    services[0].backends = {{ip("198.18.1.11"), 0, 1, 7}, {ip("2001:db8:0:2::12"), 0, 1, 3}};
    Snapshot moved(std::move(services), {},
                   {{ip("198.18.1.11"), one}, {ip("2001:db8:0:2::12"), two},
                    {ip("198.18.1.13"), two}},
                   1, 1);
    const Snapshot snapshot = std::move(moved);  // indexes, not pointers, survive a move
    const auto address = [](const char *text) { return packet_to(text, 0, 0).destination; };
    for (const auto &[slot, text, family] :
         {std::tuple{BackendSlot(7), "198.18.1.11", 4}, {BackendSlot(3), "2001:db8:0:2::12", 6}})
        EXPECT_EQ(snapshot.next_hop_of(slot, address(text), uint8_t(family)),
                  snapshot.find_next_hop(address(text), uint8_t(family)))
            << text;
    EXPECT_EQ(snapshot.next_hop_of(3, address("2001:db8:0:2::12"), 6)->egress_port, 2);
    // A backend that left (no slot in this snapshot) is found by its address.
    EXPECT_EQ(snapshot.next_hop_of(5, address("198.18.1.13"), 4)->egress_port, 2);
    EXPECT_EQ(snapshot.next_hop_of(no_backend_slot, address("198.18.1.11"), 4)->egress_port, 1);
    EXPECT_EQ(snapshot.next_hop_of(9, address("198.18.1.99"), 4), nullptr);
}

} // namespace
} // namespace sluice::lb
