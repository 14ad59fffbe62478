// The merger: one service's backends from all of its sources. The config
// (the file as loaded, with the management API's changes) is one source,
// "config"; each discovery feed bound to the service is another,
// "feed:<name>". The merger is pure logic, no sockets and no clock of its
// own: the control plane's loop calls merge() when a feed or the config
// changed, or when next_departure() is due, and publishes the result
// through the same validation and snapshot path as every other change when
// its config differs from the running one.
//
// What becomes a backend:
//   config backend                  as it is: config wins over every feed
//   feed endpoint, ready            a backend with the endpoint's port and weight
//   feed endpoint, serving but not
//   ready, or terminating           a drained backend: no new flows, its flows go on
//   feed endpoint, not serving      nothing
//   feed endpoint deleted (its id,
//   or its address:port under that
//   id, gone from the feed)         a drained backend for `deletion_grace`, then
//                                   nothing ("a delete drains")
//
// One address:port named by several sources is one backend, which records
// them all. Its settings (weight, drained) come from the first source in
// this order: the config; then the feeds' live endpoints, ready before not
// ready, then in the order the service lists its feeds, then by id; then
// endpoints in their deletion grace, in the same order. So a backend takes
// new flows when the config says so, or, absent from the config, when any
// feed says it is ready.
//
// A feed that goes stale keeps its last view (EndpointFeed), so nothing
// drains when a registry is merely unreachable. A feed unbound from a
// service, by a config change, is a deletion of its endpoints there. A
// service gone from the config takes everything of its own with it.
//
// Output order is stable: a service's config backends first, in the config's
// order (so their positions, which the API shows, do not move), then the
// backends from feeds alone by family, address and port. The same inputs
// give an equal Config and Provenance, call after call.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "ctrl/config.h"
#include "ctrl/endpoint_feed.h"

namespace sluice::ctrl {

// Feed name → its last view (EndpointFeed::take_endpoints).
using FeedViews = std::map<std::string, EndpointSet>;
// Service name → the names of the feeds it takes endpoints from, in
// precedence order. A feed's endpoints for a service are those it lists
// under the service's own name.
using FeedBindings = std::map<std::string, std::vector<std::string>>;

// "config", the source of the config's (and the API's) backends.
extern const char *const config_source;
// "feed:<name>".
std::string feed_source(const std::string &feed);

enum class SourceState {
    active,       // config: not drained; feed: ready
    drained,      // config: drained; feed: serving but not ready, or terminating
    not_serving,  // feed: not serving, named here because another source keeps the backend
    leaving,      // feed: deleted, drained until `leaves_at`
};
const char *to_string(SourceState state);

struct BackendSource {
    std::string source;  // "config" or "feed:<name>"
    std::string id;      // the endpoint's id in its feed; "" for the config
    SourceState state = SourceState::active;
    std::optional<std::chrono::steady_clock::time_point> leaves_at;  // leaving only

    bool operator==(const BackendSource &) const = default;
};

struct BackendOrigin {
    IpAddress address;
    uint16_t port = 0;
    // The first gave the backend its settings (the order above).
    std::vector<BackendSource> sources;

    bool operator==(const BackendOrigin &) const = default;
};

// Service → where each of its merged backends came from, in the order of
// the merged service's backends.
using Provenance = std::map<std::string, std::vector<BackendOrigin>>;

// Endpoints a feed offered that no backend came from.
struct IgnoredEndpoints {
    std::string feed;
    std::string service;
    std::string id;  // empty: all the feed's endpoints for the service
    std::string reason;

    bool operator==(const IgnoredEndpoints &) const = default;
};

struct MergeResult {
    Config config;  // the base config, its services' backends merged
    Provenance provenance;
    // Sorted by feed, service and id: unbound services of a feed, bindings
    // to a service that is not configured, endpoints `check` refused.
    std::vector<IgnoredEndpoints> ignored;
};

struct MergerSettings {
    // How long a deleted endpoint stays as a drained backend.
    std::chrono::milliseconds deletion_grace{30'000};
};

// "" or why a feed's backend cannot join `service` (as configured, with the
// config's backends only): the loader's checks of a backend, which need the
// whole config (address family, a route to it, not a port's address or the
// VIP, the port rules of the service's mode). A refused endpoint is left out
// and reported, so that one bad endpoint does not keep every other change of
// the merged config from being published. Called on every merge, for live
// and leaving endpoints alike: a route removed since refuses them too.
using BackendCheck =
    std::function<std::string(const ServiceConfig &service, const BackendConfig &backend)>;

class EndpointMerger {
public:
    using Clock = std::chrono::steady_clock;

    explicit EndpointMerger(MergerSettings settings = {}) : settings_(settings) {}

    // `base`: the config with its (and the API's) backends; `feeds`: every
    // feed's last view, a feed without one yet being absent or empty;
    // `bindings`: which feeds each service takes. Remembers the feeds'
    // serving endpoints, to drain the ones that are gone next time. Checks
    // only feed backends: the config's are valid already.
    MergeResult merge(const Config &base, const FeedViews &feeds, const FeedBindings &bindings,
                      Clock::time_point now, const BackendCheck &check = {});

    // When the first deleted endpoint's grace ends: merge again then.
    std::optional<Clock::time_point> next_departure() const;

private:
    // (service, feed, id, family, address, port): one endpoint of one feed.
    using Identity = std::tuple<std::string, std::string, std::string, AddressFamily,
                                std::array<uint8_t, 16>, uint16_t>;
    struct Leaving {
        Endpoint endpoint;
        Clock::time_point until;
    };

    void note_departures(const std::set<std::string> &configured, const FeedViews &feeds,
                         const FeedBindings &bindings, Clock::time_point now);

    MergerSettings settings_;
    std::map<Identity, Endpoint> serving_;  // serving at the last merge
    std::map<Identity, Leaving> leaving_;   // deleted, in their grace
};

} // namespace sluice::ctrl
