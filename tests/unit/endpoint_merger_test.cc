// The merger's promises: a service's backends are its config's and its
// feeds' endpoints together, each address:port once with every source
// recorded and the config's settings first; terminating endpoints are
// drained, not-serving ones left out, deleted ones drained for the grace
// period and then gone; endpoints for services that are not configured or
// not bound are ignored and said so; and the same inputs give an equal
// result, whatever order a feed lists its endpoints in.
#include "ctrl/endpoint_merger.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace sluice::ctrl {
namespace {

using std::chrono::seconds;
using Clock = EndpointMerger::Clock;

IpAddress ip(const char *text) { return *parse_ip_address(text); }

BackendConfig backend(const char *address, uint16_t port, uint32_t weight = 1,
                      bool drained = false) {
    return {ip(address), port, weight, drained};
}

Endpoint endpoint(const char *id, const char *address, uint16_t port, uint32_t weight = 1) {
    Endpoint e;
    e.id = id;
    e.address = ip(address);
    e.port = port;
    e.weight = weight;
    return e;
}

Endpoint terminating(Endpoint e) {
    e.ready = false;
    e.terminating = true;
    return e;
}

Endpoint not_serving(Endpoint e) {
    e.ready = false;
    e.serving = false;
    return e;
}

ServiceConfig service(const char *name, std::vector<BackendConfig> backends = {}) {
    ServiceConfig s;
    s.name = name;
    s.vip = ip("198.18.0.10");
    s.port = 80;
    s.backends = std::move(backends);
    return s;
}

Config config_of(std::vector<ServiceConfig> services) {
    Config c;
    c.services = std::move(services);
    return c;
}

const ServiceConfig &find(const MergeResult &result, const std::string &name) {
    for (const ServiceConfig &s : result.config.services)
        if (s.name == name)
            return s;
    throw std::out_of_range(name);
}

const Clock::time_point t0{seconds(1000)};

TEST(EndpointMerger, ConfigAndFeedsTogetherTheConfigFirst) {
    const Config base = config_of({service("web", {backend("198.18.1.11", 8080, 5),
                                                   backend("198.18.1.10", 8080, 1, true)})});
    const FeedViews feeds{
        {"etcd",
         {{"web",
           {terminating(endpoint("pod-a", "198.18.1.11", 8080, 1)),  // the config's
            endpoint("pod-c", "198.18.1.13", 8080, 3),
            endpoint("pod-b", "198.18.1.12", 8080)}}}}};
    EndpointMerger merger;
    const MergeResult result = merger.merge(base, feeds, {{"web", {"etcd"}}}, t0);

    // The config's backends in its order, untouched; then the feed's by address.
    EXPECT_EQ(find(result, "web").backends,
              (std::vector<BackendConfig>{backend("198.18.1.11", 8080, 5),
                                          backend("198.18.1.10", 8080, 1, true),
                                          backend("198.18.1.12", 8080),
                                          backend("198.18.1.13", 8080, 3)}));
    const std::vector<BackendOrigin> &origins = result.provenance.at("web");
    ASSERT_EQ(origins.size(), 4u);
    EXPECT_EQ(origins[0].address, ip("198.18.1.11"));
    EXPECT_EQ(origins[0].sources,
              (std::vector<BackendSource>{{"config", "", SourceState::active, {}},
                                          {"feed:etcd", "pod-a", SourceState::drained, {}}}));
    EXPECT_EQ(origins[1].sources,
              (std::vector<BackendSource>{{"config", "", SourceState::drained, {}}}));
    EXPECT_EQ(origins[3].sources,
              (std::vector<BackendSource>{{"feed:etcd", "pod-c", SourceState::active, {}}}));
    EXPECT_TRUE(result.ignored.empty());
    // Everything else of the config is the base's.
    EXPECT_EQ(result.config.services.size(), 1u);
    EXPECT_EQ(find(result, "web").vip, base.services[0].vip);
}

TEST(EndpointMerger, TerminatingOrNotReadyIsDrainedNotServingIsLeftOut) {
    Endpoint not_ready = endpoint("warming", "198.18.1.14", 8080, 4);
    not_ready.ready = false;
    const FeedViews feeds{{"file",
                           {{"web",
                             {terminating(endpoint("old", "198.18.1.12", 8080, 2)), not_ready,
                              not_serving(endpoint("gone", "198.18.1.13", 8080))}}}}};
    EndpointMerger merger;
    const MergeResult result =
        merger.merge(config_of({service("web")}), feeds, {{"web", {"file"}}}, t0);
    EXPECT_EQ(find(result, "web").backends,
              (std::vector<BackendConfig>{backend("198.18.1.12", 8080, 2, true),
                                          backend("198.18.1.14", 8080, 4, true)}));
    // A deletion drains; turning not serving does not.
    const FeedViews later{{"file", {{"web", {not_serving(endpoint("old", "198.18.1.12", 8080))}}}}};
    const MergeResult next = merger.merge(config_of({service("web")}), later,
                                          {{"web", {"file"}}}, t0 + seconds(1));
    EXPECT_EQ(find(next, "web").backends,
              (std::vector<BackendConfig>{backend("198.18.1.14", 8080, 4, true)}));
    EXPECT_EQ(next.provenance.at("web")[0].sources[0].state, SourceState::leaving);
}

TEST(EndpointMerger, NotServingIsRecordedWhenAnotherSourceKeepsTheBackend) {
    const FeedViews feeds{{"dns", {{"web", {not_serving(endpoint("a", "198.18.1.11", 8080))}}}}};
    EndpointMerger merger;
    const MergeResult result = merger.merge(
        config_of({service("web", {backend("198.18.1.11", 8080)})}), feeds, {{"web", {"dns"}}},
        t0);
    EXPECT_EQ(find(result, "web").backends,
              (std::vector<BackendConfig>{backend("198.18.1.11", 8080)}));
    EXPECT_EQ(result.provenance.at("web")[0].sources[1],
              (BackendSource{"feed:dns", "a", SourceState::not_serving, {}}));
}

TEST(EndpointMerger, ADeletedEndpointIsDrainedForTheGracePeriodThenGone) {
    const Config base = config_of({service("web")});
    const FeedBindings bindings{{"web", {"etcd"}}};
    const FeedViews both{{"etcd",
                          {{"web",
                            {endpoint("a", "198.18.1.11", 8080, 7),
                             endpoint("b", "198.18.1.12", 8080)}}}}};
    const FeedViews only_b{{"etcd", {{"web", {endpoint("b", "198.18.1.12", 8080)}}}}};
    EndpointMerger merger(MergerSettings{std::chrono::milliseconds(30'000)});
    merger.merge(base, both, bindings, t0);
    EXPECT_FALSE(merger.next_departure());

    const Clock::time_point deleted = t0 + seconds(5);
    MergeResult result = merger.merge(base, only_b, bindings, deleted);
    EXPECT_EQ(find(result, "web").backends,
              (std::vector<BackendConfig>{backend("198.18.1.11", 8080, 7, true),
                                          backend("198.18.1.12", 8080)}));
    EXPECT_EQ(result.provenance.at("web")[0].sources,
              (std::vector<BackendSource>{
                  {"feed:etcd", "a", SourceState::leaving, deleted + seconds(30)}}));
    EXPECT_EQ(merger.next_departure(), deleted + seconds(30));

    // Still there just before the grace ends (and still deleted from the feed).
    result = merger.merge(base, only_b, bindings, deleted + seconds(29));
    EXPECT_EQ(find(result, "web").backends.size(), 2u);
    result = merger.merge(base, only_b, bindings, deleted + seconds(30));
    EXPECT_EQ(find(result, "web").backends,
              (std::vector<BackendConfig>{backend("198.18.1.12", 8080)}));
    EXPECT_FALSE(merger.next_departure());
}

TEST(EndpointMerger, AnEndpointBackInItsGraceIsLiveAgain) {
    const Config base = config_of({service("web")});
    const FeedBindings bindings{{"web", {"etcd"}}};
    const FeedViews with{{"etcd", {{"web", {endpoint("a", "198.18.1.11", 8080)}}}}};
    const FeedViews without{{"etcd", {{"web", {}}}}};
    EndpointMerger merger;
    merger.merge(base, with, bindings, t0);
    merger.merge(base, without, bindings, t0 + seconds(1));
    const MergeResult back = merger.merge(base, with, bindings, t0 + seconds(2));
    EXPECT_EQ(find(back, "web").backends,
              (std::vector<BackendConfig>{backend("198.18.1.11", 8080)}));
    EXPECT_FALSE(merger.next_departure());
}

TEST(EndpointMerger, AnEndpointThatMovesDrainsItsOldAddress) {
    const Config base = config_of({service("web")});
    const FeedBindings bindings{{"web", {"etcd"}}};
    EndpointMerger merger;
    merger.merge(base, {{"etcd", {{"web", {endpoint("a", "198.18.1.11", 8080)}}}}}, bindings, t0);
    const MergeResult moved = merger.merge(
        base, {{"etcd", {{"web", {endpoint("a", "198.18.1.21", 8080)}}}}}, bindings, t0);
    EXPECT_EQ(find(moved, "web").backends,
              (std::vector<BackendConfig>{backend("198.18.1.11", 8080, 1, true),
                                          backend("198.18.1.21", 8080)}));
}

TEST(EndpointMerger, AFeedUnboundDrainsAServiceRemovedForgets) {
    const FeedViews feeds{{"etcd", {{"web", {endpoint("a", "198.18.1.11", 8080)}}}}};
    EndpointMerger merger;
    merger.merge(config_of({service("web")}), feeds, {{"web", {"etcd"}}}, t0);
    const MergeResult unbound = merger.merge(config_of({service("web")}), feeds, {}, t0);
    EXPECT_EQ(find(unbound, "web").backends,
              (std::vector<BackendConfig>{backend("198.18.1.11", 8080, 1, true)}));
    const MergeResult removed = merger.merge(config_of({service("api")}), feeds, {}, t0);
    EXPECT_FALSE(merger.next_departure());
    EXPECT_TRUE(find(removed, "api").backends.empty());
    // Back again: nothing of the old one is left over.
    const MergeResult again = merger.merge(config_of({service("web")}), {}, {}, t0);
    EXPECT_TRUE(find(again, "web").backends.empty());
}

TEST(EndpointMerger, TwoFeedsForOneService) {
    const FeedViews feeds{
        {"dns",
         {{"web",
           {terminating(endpoint("shared", "198.18.1.11", 8080, 1)),
            endpoint("both", "198.18.1.12", 8080, 2), endpoint("dns-only", "198.18.1.13", 8080)}}}},
        {"etcd",
         {{"web",
           {endpoint("shared", "198.18.1.11", 8080, 9), endpoint("both", "198.18.1.12", 8080, 3),
            endpoint("etcd-only", "2001:db8:0:2::11", 8080)}}}}};
    EndpointMerger merger;
    const MergeResult result =
        merger.merge(config_of({service("web")}), feeds, {{"web", {"dns", "etcd"}}}, t0);
    // Ready wins over drained whichever feed says it; between two ready
    // ones, the feed listed first.
    EXPECT_EQ(find(result, "web").backends,
              (std::vector<BackendConfig>{backend("198.18.1.11", 8080, 9),
                                          backend("198.18.1.12", 8080, 2),
                                          backend("198.18.1.13", 8080),
                                          backend("2001:db8:0:2::11", 8080)}));
    EXPECT_EQ(result.provenance.at("web")[0].sources,
              (std::vector<BackendSource>{{"feed:etcd", "shared", SourceState::active, {}},
                                          {"feed:dns", "shared", SourceState::drained, {}}}));
    EXPECT_EQ(result.provenance.at("web")[1].sources,
              (std::vector<BackendSource>{{"feed:dns", "both", SourceState::active, {}},
                                          {"feed:etcd", "both", SourceState::active, {}}}));
    // The other order of feeds: the other weight.
    const MergeResult swapped =
        merger.merge(config_of({service("web")}), feeds, {{"web", {"etcd", "dns"}}}, t0);
    EXPECT_EQ(find(swapped, "web").backends[1], backend("198.18.1.12", 8080, 3));
}

TEST(EndpointMerger, EndpointsForServicesNotConfiguredOrNotBoundAreIgnoredAndReported) {
    const FeedViews feeds{{"etcd",
                           {{"web", {endpoint("a", "198.18.1.11", 8080)}},
                            {"nosuch", {endpoint("b", "198.18.1.12", 8080)}},
                            {"api", {endpoint("c", "198.18.1.13", 8080)}},
                            {"empty", {}}}}};
    EndpointMerger merger;
    const MergeResult result =
        merger.merge(config_of({service("web"), service("api")}), feeds,
                     {{"web", {"etcd"}}, {"ghost", {"dns"}}}, t0);
    EXPECT_EQ(find(result, "web").backends.size(), 1u);
    EXPECT_TRUE(find(result, "api").backends.empty());
    EXPECT_EQ(result.ignored,
              (std::vector<IgnoredEndpoints>{
                  {"dns", "ghost", "", "the service is not configured"},
                  {"etcd", "api", "", "the service does not take endpoints from this feed"},
                  {"etcd", "nosuch", "", "the service is not configured"}}));
}

TEST(EndpointMerger, EndpointsTheCheckRefusesAreLeftOutAndReported) {
    const FeedViews feeds{{"etcd",
                           {{"web",
                             {endpoint("v6", "2001:db8::1", 8080),
                              endpoint("same", "198.18.1.11", 8080),
                              endpoint("ok", "198.18.1.12", 8080)}}}}};
    const BackendCheck check = [](const ServiceConfig &s, const BackendConfig &b) {
        return b.address.family == s.vip.family ? std::string()
                                                : "expected an IPv4 address like the VIP";
    };
    const BackendCheck refuse_all = [](const ServiceConfig &, const BackendConfig &) {
        return std::string("no");
    };
    EndpointMerger merger;
    MergeResult result = merger.merge(config_of({service("web")}), feeds,
                                      {{"web", {"etcd"}}}, t0, check);
    EXPECT_EQ(find(result, "web").backends.size(), 2u);
    EXPECT_EQ(result.ignored, (std::vector<IgnoredEndpoints>{
                                  {"etcd", "web", "v6", "expected an IPv4 address like the VIP"}}));
    // An address:port the config has is the config's, valid already.
    result = merger.merge(config_of({service("web", {backend("198.18.1.11", 8080)})}), feeds,
                          {{"web", {"etcd"}}}, t0, refuse_all);
    EXPECT_EQ(find(result, "web").backends,
              (std::vector<BackendConfig>{backend("198.18.1.11", 8080)}));
    EXPECT_EQ(result.ignored.size(), 2u);
}

TEST(EndpointMerger, TheSameInputsGiveAnEqualResult) {
    std::vector<Endpoint> endpoints{
        endpoint("e", "198.18.1.15", 0), endpoint("a", "2001:db8:0:2::11", 8080),
        endpoint("c", "198.18.1.13", 8080), terminating(endpoint("b", "198.18.1.12", 8080)),
        endpoint("d", "198.18.1.12", 8080, 4), endpoint("f", "198.18.1.2", 8080)};
    const Config base = config_of({service("web", {backend("198.18.1.99", 8080)})});
    const FeedBindings bindings{{"web", {"etcd"}}};
    EndpointMerger first, second;
    const MergeResult reference =
        first.merge(base, {{"etcd", {{"web", endpoints}}}}, bindings, t0);
    // Sorted by family, address, port, after the config's.
    std::vector<std::string> order;
    for (const BackendConfig &b : find(reference, "web").backends)
        order.push_back(b.address.to_string() + ":" + std::to_string(b.port));
    EXPECT_EQ(order, (std::vector<std::string>{"198.18.1.99:8080", "198.18.1.2:8080",
                                               "198.18.1.12:8080", "198.18.1.13:8080",
                                               "198.18.1.15:0", "2001:db8:0:2::11:8080"}));
    EXPECT_EQ(find(reference, "web").backends[2], backend("198.18.1.12", 8080, 4));

    std::sort(endpoints.begin(), endpoints.end(),
              [](const Endpoint &a, const Endpoint &b) { return a.id > b.id; });
    for (int i = 0; i < 3; ++i) {
        const MergeResult again =
            second.merge(base, {{"etcd", {{"web", endpoints}}}}, bindings, t0 + seconds(i));
        EXPECT_EQ(again.config, reference.config);
        EXPECT_EQ(again.provenance, reference.provenance);
        std::rotate(endpoints.begin(), endpoints.begin() + 1, endpoints.end());
    }
}

} // namespace
} // namespace sluice::ctrl
