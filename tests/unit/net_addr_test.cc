#include <gtest/gtest.h>

#include "dataplane/net_addr.h"

namespace sluice {
namespace {

TEST(NetAddr, ParsesInterfaceAddresses) {
    auto v4 = parse_interface_address("198.18.0.1/24");
    ASSERT_TRUE(v4);
    EXPECT_TRUE(v4->address.is_v4());
    EXPECT_EQ(v4->prefix_length, 24);
    EXPECT_EQ(v4->to_string(), "198.18.0.1/24");
    auto v6 = parse_interface_address("2001:db8:0:1::1/64");
    ASSERT_TRUE(v6);
    EXPECT_FALSE(v6->address.is_v4());
    EXPECT_EQ(v6->to_string(), "2001:db8:0:1::1/64");
}

TEST(NetAddr, RefusesMalformedAddresses) {
    for (const char *bad : {"198.18.0.1", "198.18.0.1/33", "198.18.0.256/24", "2001:db8::1/129",
                            "/24", "198.18.0.1/", "198.18.0.1/2a", "x/1", "198.18.0.1/0024", ""})
        EXPECT_FALSE(parse_interface_address(bad)) << bad;
}

TEST(NetAddr, Classifies) {
    EXPECT_TRUE(parse_ip_address("224.0.0.1")->is_multicast());
    EXPECT_TRUE(parse_ip_address("ff02::1")->is_multicast());
    EXPECT_TRUE(parse_ip_address("127.0.0.1")->is_loopback());
    EXPECT_TRUE(parse_ip_address("::1")->is_loopback());
    EXPECT_TRUE(parse_ip_address("0.0.0.0")->is_unspecified());
    EXPECT_TRUE(parse_ip_address("::")->is_unspecified());
    EXPECT_FALSE(parse_ip_address("198.18.0.1")->is_multicast());
}

TEST(NetAddr, Mac) {
    auto m = parse_mac_address("02:0a:FF:00:01:9c");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->to_string(), "02:0a:ff:00:01:9c");
    EXPECT_FALSE(parse_mac_address("02:0a:ff:00:01"));
    EXPECT_FALSE(parse_mac_address("02-0a-ff-00-01-9c"));
    EXPECT_FALSE(parse_mac_address("02:0a:ff:00:01:9g"));
}

} // namespace
} // namespace sluice

namespace sluice {
namespace {

TEST(NetAddr, OnLink) {
    const InterfaceAddress v4 = *parse_interface_address("198.18.1.1/24");
    EXPECT_TRUE(v4.on_link(*parse_ip_address("198.18.1.200")));
    EXPECT_FALSE(v4.on_link(*parse_ip_address("198.18.2.1")));
    EXPECT_FALSE(v4.on_link(*parse_ip_address("2001:db8::1")));
    const InterfaceAddress odd = *parse_interface_address("198.18.1.1/23");
    EXPECT_TRUE(odd.on_link(*parse_ip_address("198.18.0.9")));
    EXPECT_FALSE(odd.on_link(*parse_ip_address("198.18.2.9")));
    const InterfaceAddress v6 = *parse_interface_address("2001:db8:0:2::1/64");
    EXPECT_TRUE(v6.on_link(*parse_ip_address("2001:db8:0:2::13")));
    EXPECT_FALSE(v6.on_link(*parse_ip_address("2001:db8:0:3::13")));
    EXPECT_TRUE(parse_interface_address("198.18.1.1/0")->on_link(*parse_ip_address("203.0.113.1")));
    EXPECT_TRUE(parse_interface_address("198.18.1.1/32")->on_link(*parse_ip_address("198.18.1.1")));
}

TEST(NetAddr, Prefixes) {
    auto prefix_of = [](const char *text) { return parse_interface_address(text)->prefix(); };
    EXPECT_EQ(prefix_of("198.18.1.1/24").to_string(), "198.18.1.0/24");
    EXPECT_EQ(prefix_of("198.18.1.77/27").to_string(), "198.18.1.64/27");
    EXPECT_EQ(prefix_of("198.18.1.1/0").to_string(), "0.0.0.0/0");
    EXPECT_EQ(prefix_of("198.18.1.1/32").to_string(), "198.18.1.1/32");
    EXPECT_EQ(prefix_of("2001:db8:0:2::1/64").to_string(), "2001:db8:0:2::/64");
    EXPECT_EQ(prefix_of("2001:db8:ffff::1/33").to_string(), "2001:db8:8000::/33");
    EXPECT_EQ(prefix_of("2001:db8::1/128").to_string(), "2001:db8::1/128");
    EXPECT_EQ(prefix_of("2001:db8::1/0").to_string(), "::/0");

    const IpPrefix v4 = prefix_of("198.18.20.0/24");
    EXPECT_TRUE(v4.contains(*parse_ip_address("198.18.20.255")));
    EXPECT_FALSE(v4.contains(*parse_ip_address("198.18.21.0")));
    // An IPv4 prefix never holds an IPv6 address with the same first bytes.
    EXPECT_FALSE(prefix_of("0.0.0.0/0").contains(*parse_ip_address("::")));
    EXPECT_FALSE(prefix_of("::/0").contains(*parse_ip_address("0.0.0.0")));
}

} // namespace
} // namespace sluice
