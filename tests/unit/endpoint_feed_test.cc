#include <gtest/gtest.h>

#include "ctrl/endpoint_feed.h"

namespace sluice::ctrl {
namespace {

TEST(EndpointJson, EveryKey) {
    Endpoint e;
    e.id = "keep-me";
    ASSERT_EQ(parse_endpoint_json(R"({"address": "2001:db8:0:2::11", "port": 8080, "weight": 3,
        "zone": "a", "labels": {"version": "v2"}, "ready": true, "serving": true,
        "terminating": false})", e), "");
    EXPECT_EQ(e.id, "keep-me");
    EXPECT_EQ(e.address, *parse_ip_address("2001:db8:0:2::11"));
    EXPECT_EQ(e.port, 8080);
    EXPECT_EQ(e.weight, 3u);
    EXPECT_EQ(e.zone, "a");
    EXPECT_EQ(e.labels.at("version"), "v2");
    EXPECT_TRUE(e.ready && e.serving && !e.terminating);
}

TEST(EndpointJson, DefaultsAndTerminating) {
    Endpoint e;
    ASSERT_EQ(parse_endpoint_json(R"({"address": "198.18.1.11"})", e), "");
    EXPECT_EQ(e.port, 0);
    EXPECT_EQ(e.weight, 1u);
    EXPECT_TRUE(e.ready && e.serving && !e.terminating);
    ASSERT_EQ(parse_endpoint_json(R"({"address": "198.18.1.11", "terminating": true})", e), "");
    EXPECT_FALSE(e.ready);
    EXPECT_TRUE(e.serving && e.terminating);
}

TEST(EndpointJson, BadValuesAreRefusedAndLeaveTheEndpointAlone) {
    const std::pair<const char *, const char *> cases[] = {
        {"", "not JSON"},
        {"[1]", "expected an object"},
        {"{}", "address: missing"},
        {R"({"address": "198.18.1.300"})", "address: expected a unicast"},
        {R"({"address": "224.0.0.1"})", "address: expected a unicast"},
        {R"({"address": 7})", "address: expected a unicast"},
        {R"({"address": "198.18.1.11", "port": 65536})", "port: expected an integer in 0..65535"},
        {R"({"address": "198.18.1.11", "port": -1})", "port: expected an integer"},
        {R"({"address": "198.18.1.11", "weight": 1.5})", "weight: expected an integer"},
        {R"({"address": "198.18.1.11", "zone": 1})", "zone: expected a string"},
        {R"({"address": "198.18.1.11", "labels": {"a": 1}})", "labels.a: expected a string"},
        {R"({"address": "198.18.1.11", "ready": "yes"})", "ready: expected true or false"},
        {R"({"address": "198.18.1.11", "colour": "blue"})", "colour: unknown key"},
        {R"({"address": "198.18.1.11", "ready": true, "terminating": true})",
         "ready: a terminating endpoint cannot be ready"},
    };
    for (const auto &[text, error] : cases) {
        Endpoint e;
        e.port = 42;
        const std::string got = parse_endpoint_json(text, e);
        EXPECT_NE(got.find(error), std::string::npos) << text << " -> " << got;
        EXPECT_EQ(e.port, 42) << text;
    }
}

} // namespace
} // namespace sluice::ctrl
