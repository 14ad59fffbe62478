// The gateway's discovery, as the control plane's loop drives it: the feeds
// that the config's `discovery` section names, their last views, the
// endpoint merger, and the gateway's own registration in etcd. Like every
// module of the loop it never blocks: poll_fds() and timeout_ms() say when
// to call service(), which returns true when a merge is due (a view
// changed, or a deleted endpoint's grace ended); merge() then gives the
// config to publish.
//
// Feeds live across reloads: configure() keeps a feed whose settings did
// not change, with its connection and view, and replaces one whose
// settings did, keeping its last view until the new one has its own, so
// that a reload never drains what a registry still serves.
#pragma once

#include <poll.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ctrl/config.h"
#include "ctrl/endpoint_feed.h"
#include "ctrl/endpoint_merger.h"
#include "ctrl/etcd_registration.h"

namespace sluice::ctrl {

// One feed as operators see it (GET /api/v1/feeds, metrics).
struct FeedReport {
    FeedStatus status;
    size_t endpoints = 0;               // in its last view
    std::vector<std::string> services;  // the services its view names
    std::vector<std::string> bound_to;  // the configured services that take it
};

class Discovery {
public:
    using Clock = EndpointMerger::Clock;

    Discovery() = default;
    ~Discovery();
    Discovery(const Discovery &) = delete;
    Discovery &operator=(const Discovery &) = delete;

    // Makes the running feeds and registration those of `config` (a valid
    // config: the loader checked its discovery section). "" or why a feed
    // or the registration could not start, and then nothing changed.
    // `instance` names the registration when the config does not; `value`
    // is its first value. prepare() starts what is new, commit() puts it in
    // place of what runs, abandon() drops it: a caller whose own part of a
    // change may still be refused commits only once it is not.
    std::string configure(const Config &config, const std::string &instance,
                          const std::string &value);
    std::string prepare(const Config &config, const std::string &instance,
                        const std::string &value);
    void commit();
    void abandon() { pending_.reset(); }

    void poll_fds(std::vector<pollfd> &fds) const;
    int timeout_ms(Clock::time_point now) const;  // -1: nothing due
    // Services every feed and the registration; true when merge() is due.
    bool service(Clock::time_point now);
    // `base` with the feeds' endpoints merged into its services.
    MergeResult merge(const Config &base, Clock::time_point now, const BackendCheck &check);

    std::vector<FeedReport> feeds() const;
    // The endpoint `id` of `service` in `feed`'s last view, or null.
    const Endpoint *endpoint(const std::string &feed, const std::string &service,
                             const std::string &id) const;
    std::optional<EtcdRegistration::Status> registration() const;
    void set_registration_value(const std::string &value);
    // Revokes the registration's lease, waiting up to its request timeout.
    void stop();
    // Feed and registration state changes since the last call, one line
    // each, for the log.
    std::vector<std::string> take_events();

    bool empty() const { return feeds_.empty() && !registration_; }

private:
    struct RunningFeed {
        FeedConfig config;
        std::unique_ptr<EndpointFeed> feed;
        FeedHealth health = FeedHealth::starting;
        std::string detail;
    };
    // What prepare() started, for commit().
    struct Pending {
        DiscoveryConfig config;
        std::map<std::string, std::unique_ptr<EndpointFeed>> started;
        bool registration_changed = false;
        std::unique_ptr<EtcdRegistration> registration;
        std::string instance;
    };
    void note_status(RunningFeed &running);

    std::map<std::string, RunningFeed> feeds_;
    FeedViews views_;
    std::optional<uint32_t> grace_ms_;
    std::unique_ptr<EndpointMerger> merger_;
    std::optional<RegistrationConfig> registration_config_;
    std::string registration_instance_;
    std::unique_ptr<EtcdRegistration> registration_;
    bool registered_ = false;
    std::string registration_detail_;
    std::map<std::string, std::vector<std::string>> bound_;  // feed → services, at the last merge
    bool merge_due_ = false;
    std::vector<std::string> events_;
    std::unique_ptr<Pending> pending_;
};

} // namespace sluice::ctrl
