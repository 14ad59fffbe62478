#include <gtest/gtest.h>

#include "ctrl/timeout_profiles.h"

namespace sluice::ctrl {
namespace {

ServiceConfig service(const std::string &name, std::optional<FlowTimeoutConfig> timeouts) {
    ServiceConfig s;
    s.name = name;
    s.timeouts = timeouts;
    return s;
}

Config config_of(std::vector<ServiceConfig> services) {
    Config c;
    c.services = std::move(services);
    return c;
}

FlowTimeoutConfig udp_seconds(unsigned udp) {
    FlowTimeoutConfig t;
    t.udp = udp;
    return t;
}

TEST(TimeoutProfiles, LbTimeoutsAreProfileZero) {
    const FlowTimeoutConfig lb = udp_seconds(60);
    TimeoutProfiles profiles(lb);
    std::string error;
    const Config config = config_of({service("plain", std::nullopt), service("same", lb)});
    ASSERT_TRUE(profiles.assign(config, error)) << error;
    EXPECT_EQ(profiles.profile(config.services[0]), 0);
    EXPECT_EQ(profiles.profile(config.services[1]), 0) << "the same timeouts: the same profile";
    EXPECT_EQ(profiles.in_use(), 1u);
    const lb::FlowTimeouts ms = profiles.timeouts(0);
    EXPECT_EQ(ms.udp, 60'000u);
    EXPECT_EQ(ms.syn_seen, lb.tcp_syn * 1000);
    EXPECT_EQ(ms.established, lb.tcp_established * 1000);
    EXPECT_EQ(ms.closing, lb.tcp_closing * 1000);
}

TEST(TimeoutProfiles, SetsKeepTheirProfileAcrossReloads) {
    TimeoutProfiles profiles(udp_seconds(30));
    std::string error;
    const Config first = config_of({service("a", udp_seconds(5)), service("b", udp_seconds(7)),
                                    service("c", udp_seconds(5))});
    ASSERT_TRUE(profiles.assign(first, error));
    const lb::TimeoutProfile five = profiles.profile(first.services[0]);
    const lb::TimeoutProfile seven = profiles.profile(first.services[1]);
    EXPECT_NE(five, 0);
    EXPECT_NE(seven, 0);
    EXPECT_NE(five, seven);
    EXPECT_EQ(profiles.profile(first.services[2]), five);
    EXPECT_EQ(profiles.timeouts(seven).udp, 7'000u);

    // a's timeouts change: a new profile; the old one keeps its timeouts
    // for the flows a began with them.
    const Config second = config_of({service("a", udp_seconds(9)), service("b", udp_seconds(7))});
    ASSERT_TRUE(profiles.assign(second, error));
    EXPECT_EQ(profiles.profile(second.services[1]), seven);
    const lb::TimeoutProfile nine = profiles.profile(second.services[0]);
    EXPECT_NE(nine, five);
    EXPECT_NE(nine, seven);
    EXPECT_EQ(profiles.timeouts(five).udp, 5'000u);
    EXPECT_EQ(profiles.timeouts(nine).udp, 9'000u);
}

TEST(TimeoutProfiles, RefusesMoreSetsThanTheTablesTellApartAndChangesNothing) {
    TimeoutProfiles profiles(udp_seconds(1));
    std::string error;
    std::vector<ServiceConfig> services;
    for (unsigned i = 2; i < lb::max_timeout_profiles + 1; ++i)
        services.push_back(service("s" + std::to_string(i), udp_seconds(i)));
    ASSERT_TRUE(profiles.assign(config_of(services), error)) << error;
    EXPECT_EQ(profiles.in_use(), lb::max_timeout_profiles);

    const Config one_more = config_of({service("a", udp_seconds(2)), service("new", udp_seconds(999))});
    EXPECT_FALSE(profiles.assign(one_more, error));
    EXPECT_NE(error.find("services[1].timeouts"), std::string::npos) << error;
    EXPECT_EQ(profiles.in_use(), lb::max_timeout_profiles);
    EXPECT_EQ(profiles.profile(one_more.services[0]), 1) << "what was given stays";
}

} // namespace
} // namespace sluice::ctrl
