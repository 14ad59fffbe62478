// The route table's promises: the longest prefix that holds an address wins,
// the families never mix, the first route for a prefix stays, and a config's
// table holds its ports' connected prefixes and its static routes.
#include "ctrl/route_table.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::ctrl {
namespace {

IpAddress ip(const char *text) { return *parse_ip_address(text); }
IpPrefix prefix(const char *text) { return parse_interface_address(text)->prefix(); }

Route connected(const char *network, uint16_t port) { return {prefix(network), port, {}}; }
Route via(const char *network, uint16_t port, const char *gateway) {
    return {prefix(network), port, ip(gateway)};
}

// "198.18.20.0/24 via 198.18.1.11 on 1", "198.18.1.0/24 on 1", or "none".
std::string where(const RouteTable &table, const char *address) {
    const Route *route = table.lookup(ip(address));
    if (!route)
        return "none";
    return route->prefix.to_string() + (route->via ? " via " + route->via->to_string() : "") +
           " on " + std::to_string(route->port);
}

TEST(RouteTable, EmptyFindsNothing) {
    const RouteTable table;
    EXPECT_EQ(table.size(), 0u);
    EXPECT_EQ(where(table, "198.18.1.1"), "none");
    EXPECT_EQ(where(table, "2001:db8::1"), "none");
    EXPECT_EQ(table.find(prefix("0.0.0.0/0")), nullptr);
}

TEST(RouteTable, LongestPrefixWins) {
    RouteTable table;
    ASSERT_TRUE(table.add(connected("198.18.0.0/15", 0)));
    ASSERT_TRUE(table.add(via("198.18.20.0/24", 1, "198.18.1.11")));
    ASSERT_TRUE(table.add(via("198.18.20.128/25", 1, "198.18.1.12")));
    ASSERT_TRUE(table.add(via("198.18.20.200/29", 1, "198.18.1.13")));
    EXPECT_EQ(table.size(), 4u);
    EXPECT_EQ(where(table, "198.18.5.5"), "198.18.0.0/15 on 0");
    EXPECT_EQ(where(table, "198.18.20.1"), "198.18.20.0/24 via 198.18.1.11 on 1");
    EXPECT_EQ(where(table, "198.18.20.127"), "198.18.20.0/24 via 198.18.1.11 on 1");
    EXPECT_EQ(where(table, "198.18.20.128"), "198.18.20.128/25 via 198.18.1.12 on 1");
    EXPECT_EQ(where(table, "198.18.20.199"), "198.18.20.128/25 via 198.18.1.12 on 1");
    EXPECT_EQ(where(table, "198.18.20.200"), "198.18.20.200/29 via 198.18.1.13 on 1");
    EXPECT_EQ(where(table, "198.18.20.207"), "198.18.20.200/29 via 198.18.1.13 on 1");
    EXPECT_EQ(where(table, "198.18.20.208"), "198.18.20.128/25 via 198.18.1.12 on 1");
    EXPECT_EQ(where(table, "198.20.0.1"), "none");
}

TEST(RouteTable, OrderOfInsertionDoesNotMatter) {
    RouteTable table;
    ASSERT_TRUE(table.add(via("2001:db8:20:1::/64", 1, "2001:db8:0:2::12")));
    ASSERT_TRUE(table.add(via("2001:db8:20::/48", 1, "2001:db8:0:2::11")));
    ASSERT_TRUE(table.add(via("::/0", 0, "2001:db8:0:1::fe")));
    EXPECT_EQ(where(table, "2001:db8:20:1::5"), "2001:db8:20:1::/64 via 2001:db8:0:2::12 on 1");
    EXPECT_EQ(where(table, "2001:db8:20:2::5"), "2001:db8:20::/48 via 2001:db8:0:2::11 on 1");
    EXPECT_EQ(where(table, "2001:db8:21::5"), "::/0 via 2001:db8:0:1::fe on 0");
}

TEST(RouteTable, DefaultRoutesCatchEverythingOfTheirFamily) {
    RouteTable table;
    ASSERT_TRUE(table.add(via("0.0.0.0/0", 0, "198.18.0.254")));
    EXPECT_EQ(where(table, "203.0.113.9"), "0.0.0.0/0 via 198.18.0.254 on 0");
    EXPECT_EQ(where(table, "0.0.0.0"), "0.0.0.0/0 via 198.18.0.254 on 0");
    EXPECT_EQ(where(table, "255.255.255.255"), "0.0.0.0/0 via 198.18.0.254 on 0");
    EXPECT_EQ(where(table, "2001:db8::1"), "none");
    ASSERT_TRUE(table.add(via("::/0", 0, "2001:db8:0:1::fe")));
    EXPECT_EQ(where(table, "2001:db8::1"), "::/0 via 2001:db8:0:1::fe on 0");
    EXPECT_EQ(where(table, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
              "::/0 via 2001:db8:0:1::fe on 0");
}

TEST(RouteTable, FamiliesStayApart) {
    RouteTable table;
    // The same leading bytes in both families: 198.18.0.0 is c612:0000.
    ASSERT_TRUE(table.add(connected("198.18.0.0/16", 0)));
    ASSERT_TRUE(table.add(connected("c612::/16", 1)));
    EXPECT_EQ(where(table, "198.18.3.3"), "198.18.0.0/16 on 0");
    EXPECT_EQ(where(table, "c612::3"), "c612::/16 on 1");
    EXPECT_EQ(where(table, "198.19.0.1"), "none");
    EXPECT_EQ(where(table, "c613::1"), "none");
}

TEST(RouteTable, HostRoutes) {
    RouteTable table;
    ASSERT_TRUE(table.add(connected("198.18.1.0/24", 1)));
    ASSERT_TRUE(table.add(via("198.18.1.77/32", 0, "198.18.0.9")));
    ASSERT_TRUE(table.add(connected("2001:db8:0:2::/64", 1)));
    ASSERT_TRUE(table.add(via("2001:db8:0:2::77/128", 0, "2001:db8:0:1::9")));
    EXPECT_EQ(where(table, "198.18.1.77"), "198.18.1.77/32 via 198.18.0.9 on 0");
    EXPECT_EQ(where(table, "198.18.1.76"), "198.18.1.0/24 on 1");
    EXPECT_EQ(where(table, "198.18.1.78"), "198.18.1.0/24 on 1");
    EXPECT_EQ(where(table, "2001:db8:0:2::77"), "2001:db8:0:2::77/128 via 2001:db8:0:1::9 on 0");
    EXPECT_EQ(where(table, "2001:db8:0:2::76"), "2001:db8:0:2::/64 on 1");
}

TEST(RouteTable, OddLengthsInTheMiddleOfAByte) {
    RouteTable table;
    ASSERT_TRUE(table.add(connected("198.18.1.64/27", 0)));
    ASSERT_TRUE(table.add(connected("2001:db8:8000::/33", 1)));
    EXPECT_EQ(where(table, "198.18.1.63"), "none");
    EXPECT_EQ(where(table, "198.18.1.64"), "198.18.1.64/27 on 0");
    EXPECT_EQ(where(table, "198.18.1.95"), "198.18.1.64/27 on 0");
    EXPECT_EQ(where(table, "198.18.1.96"), "none");
    EXPECT_EQ(where(table, "2001:db8:ffff::1"), "2001:db8:8000::/33 on 1");
    EXPECT_EQ(where(table, "2001:db8:7fff::1"), "none");
}

TEST(RouteTable, FirstRouteForAPrefixStays) {
    RouteTable table;
    ASSERT_TRUE(table.add(connected("198.18.1.0/24", 0)));
    // Host bits in what is added do not make it another prefix.
    EXPECT_FALSE(table.add({{ip("198.18.1.1"), 24}, 1, {}}));
    EXPECT_FALSE(table.add(via("198.18.1.0/24", 1, "198.18.0.9")));
    EXPECT_EQ(table.size(), 1u);
    EXPECT_EQ(where(table, "198.18.1.5"), "198.18.1.0/24 on 0");
    const Route *found = table.find({ip("198.18.1.99"), 24});
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found->prefix.to_string(), "198.18.1.0/24");
    EXPECT_EQ(table.find(prefix("198.18.1.0/25")), nullptr);
}

TEST(RouteTable, NextHopIsTheGatewayOrTheAddressItself) {
    EXPECT_EQ(connected("198.18.1.0/24", 1).next_hop(ip("198.18.1.11")), ip("198.18.1.11"));
    EXPECT_EQ(via("198.18.20.0/24", 1, "198.18.1.11").next_hop(ip("198.18.20.11")),
              ip("198.18.1.11"));
}

TEST(RouteTable, ManyPrefixesAllFound) {
    RouteTable table;
    for (unsigned i = 0; i < 256; ++i) {
        const std::string network = "198.18." + std::to_string(i) + ".0/24";
        ASSERT_TRUE(table.add(connected(network.c_str(), uint16_t(i))));
        const std::string host = "198.19." + std::to_string(i) + "." + std::to_string(i) + "/32";
        ASSERT_TRUE(table.add(connected(host.c_str(), uint16_t(1000 + i))));
    }
    EXPECT_EQ(table.size(), 512u);
    for (unsigned i = 0; i < 256; ++i) {
        const std::string inside = "198.18." + std::to_string(i) + ".7";
        const Route *route = table.lookup(ip(inside.c_str()));
        ASSERT_NE(route, nullptr) << inside;
        EXPECT_EQ(route->port, i);
        const std::string host = "198.19." + std::to_string(i) + "." + std::to_string(i);
        route = table.lookup(ip(host.c_str()));
        ASSERT_NE(route, nullptr) << host;
        EXPECT_EQ(route->port, 1000 + i);
    }
}

// A config's table: connected prefixes from every port address, then the
// static routes on the port of their gateway.
TEST(RouteTable, FromConfig) {
    Config config;
    config.ports.resize(2);
    config.ports[0].addresses = {*parse_interface_address("198.18.0.1/24"),
                                 *parse_interface_address("2001:db8:0:1::1/64")};
    config.ports[1].addresses = {*parse_interface_address("198.18.1.1/24"),
                                 *parse_interface_address("2001:db8:0:2::1/64"),
                                 *parse_interface_address("198.18.0.2/24")};
    config.routes = {{prefix("198.18.20.0/24"), ip("198.18.1.11")},
                     {prefix("2001:db8:20::/48"), ip("2001:db8:0:2::11")},
                     {prefix("0.0.0.0/0"), ip("198.18.0.254")}};
    const RouteTable table = route_table(config);
    EXPECT_EQ(table.size(), 7u);  // 198.18.0.0/24 is port 0's: the first port listed
    EXPECT_EQ(where(table, "198.18.0.9"), "198.18.0.0/24 on 0");
    EXPECT_EQ(where(table, "198.18.1.11"), "198.18.1.0/24 on 1");
    EXPECT_EQ(where(table, "2001:db8:0:2::11"), "2001:db8:0:2::/64 on 1");
    EXPECT_EQ(where(table, "198.18.20.11"), "198.18.20.0/24 via 198.18.1.11 on 1");
    EXPECT_EQ(where(table, "2001:db8:20::11"), "2001:db8:20::/48 via 2001:db8:0:2::11 on 1");
    EXPECT_EQ(where(table, "203.0.113.1"), "0.0.0.0/0 via 198.18.0.254 on 0");
    EXPECT_EQ(where(table, "2001:db8:21::1"), "none");
}

} // namespace
} // namespace sluice::ctrl
