#include "ctrl/discovery.h"

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "ctrl/dns_feed.h"
#include "ctrl/etcd_feed.h"
#include "ctrl/file_feed.h"

namespace sluice::ctrl {

namespace {

std::unique_ptr<EndpointFeed> start_feed(const FeedConfig &config) {
    switch (config.kind) {
    case FeedKind::etcd: return std::make_unique<EtcdFeed>(config.etcd);
    case FeedKind::dns: return std::make_unique<DnsFeed>(config.dns);
    case FeedKind::file: return std::make_unique<FileFeed>(config.file);
    }
    throw std::invalid_argument("unknown feed type");
}

int earliest(int a, int b) { return a < 0 ? b : b < 0 ? a : std::min(a, b); }

} // namespace

Discovery::~Discovery() = default;

std::string Discovery::configure(const Config &config, const std::string &instance,
                                 const std::string &value) {
    if (std::string refused = prepare(config, instance, value); !refused.empty())
        return refused;
    commit();
    return "";
}

std::string Discovery::prepare(const Config &config, const std::string &instance,
                               const std::string &value) {
    auto pending = std::make_unique<Pending>();
    pending->config = config.discovery;
    const DiscoveryConfig &discovery = pending->config;
    // Start what is new or changed: a feed that cannot start refuses the
    // whole configuration, with the running one untouched.
    for (const FeedConfig &feed : discovery.feeds) {
        const auto running = feeds_.find(feed.name);
        if (running != feeds_.end() && running->second.config == feed)
            continue;
        try {
            pending->started[feed.name] = start_feed(feed);
        } catch (const std::exception &e) {
            return "discovery.feeds: " + feed.name + ": " + e.what();
        }
    }
    pending->instance = discovery.registration && !discovery.registration->instance.empty()
                            ? discovery.registration->instance
                            : instance;
    pending->registration_changed =
        discovery.registration != registration_config_ ||
        (discovery.registration && pending->instance != registration_instance_);
    if (pending->registration_changed && discovery.registration) {
        try {
            pending->registration = std::make_unique<EtcdRegistration>(
                discovery.registration->etcd, pending->instance, value,
                discovery.registration->ttl_s);
        } catch (const std::exception &e) {
            return std::string("discovery.registration: ") + e.what();
        }
    }
    pending_ = std::move(pending);
    return "";
}

void Discovery::commit() {
    if (!pending_)
        return;
    const std::unique_ptr<Pending> pending = std::move(pending_);
    const DiscoveryConfig &discovery = pending->config;
    std::map<std::string, RunningFeed> next;
    for (const FeedConfig &feed : discovery.feeds) {
        auto running = feeds_.find(feed.name);
        if (auto fresh = pending->started.find(feed.name); fresh != pending->started.end()) {
            // A replaced feed's view stays until the new feed has one.
            next[feed.name] =
                RunningFeed{feed, std::move(fresh->second), FeedHealth::starting, ""};
            events_.push_back("discovery: feed " + feed.name + " (" + to_string(feed.kind) +
                              ") " + (running == feeds_.end() ? "started" : "restarted") +
                              " with new settings");
        } else {
            next[feed.name] = std::move(running->second);
        }
    }
    for (const auto &[name, running] : feeds_)
        if (!next.count(name)) {
            views_.erase(name);
            events_.push_back("discovery: feed " + name + " stopped");
        }
    feeds_ = std::move(next);

    if (grace_ms_ != discovery.deletion_grace_ms) {
        // Endpoints in their grace are forgotten: a rare change of a setting.
        grace_ms_ = discovery.deletion_grace_ms;
        merger_ = std::make_unique<EndpointMerger>(
            MergerSettings{std::chrono::milliseconds(discovery.deletion_grace_ms)});
    }
    if (pending->registration_changed) {
        // The new lease takes the key over (a put moves a key to its lease);
        // an old key under another name goes with the old lease's TTL.
        registration_ = std::move(pending->registration);
        registration_config_ = discovery.registration;
        registration_instance_ = pending->instance;
        registered_ = false;
        registration_detail_.clear();
        if (registration_)
            events_.push_back("discovery: registering as " + registration_->status().key);
    }
    merge_due_ = true;
}

void Discovery::poll_fds(std::vector<pollfd> &fds) const {
    for (const auto &[name, running] : feeds_)
        if (running.feed->fd() >= 0)
            fds.push_back({running.feed->fd(), POLLIN, 0});
    if (registration_ && registration_->fd() >= 0)
        fds.push_back({registration_->fd(), POLLIN, 0});
}

int Discovery::timeout_ms(Clock::time_point now) const {
    int timeout = merge_due_ ? 0 : -1;
    for (const auto &[name, running] : feeds_)
        timeout = earliest(timeout, running.feed->timeout_ms());
    if (registration_)
        timeout = earliest(timeout, registration_->timeout_ms());
    if (merger_)
        if (const auto departure = merger_->next_departure()) {
            const auto wait = std::chrono::ceil<std::chrono::milliseconds>(*departure - now);
            timeout = earliest(timeout, int(std::max<int64_t>(wait.count(), 0)));
        }
    return timeout;
}

bool Discovery::service(Clock::time_point now) {
    for (auto &[name, running] : feeds_) {
        running.feed->service();
        if (running.feed->take_endpoints(views_[name]))
            merge_due_ = true;
        note_status(running);
    }
    if (registration_) {
        registration_->service();
        const EtcdRegistration::Status status = registration_->status();
        if (status.registered != registered_ || status.detail != registration_detail_) {
            events_.push_back("discovery: registration " + status.key + ": " +
                              (status.registered ? "registered, lease " +
                                                       std::to_string(status.lease)
                                                 : "not registered: " + status.detail));
            registered_ = status.registered;
            registration_detail_ = status.detail;
        }
    }
    if (merger_)
        if (const auto departure = merger_->next_departure(); departure && *departure <= now)
            merge_due_ = true;
    return merge_due_;
}

void Discovery::note_status(RunningFeed &running) {
    const FeedStatus status = running.feed->status();
    if (status.health == running.health && status.detail == running.detail)
        return;
    const std::string health = status.health == running.health
                                   ? to_string(status.health)
                                   : std::string(to_string(running.health)) + " -> " +
                                         to_string(status.health);
    events_.push_back("discovery: feed " + status.name + " (" + status.kind + "): " + health +
                      (status.detail.empty() ? "" : ": " + status.detail));
    running.health = status.health;
    running.detail = status.detail;
}

MergeResult Discovery::merge(const Config &base, Clock::time_point now,
                             const BackendCheck &check) {
    merge_due_ = false;
    FeedBindings bindings;
    for (const ServiceConfig &service : base.services)
        if (!service.feeds.empty())
            bindings[service.name] = service.feeds;
    if (!merger_)
        merger_ = std::make_unique<EndpointMerger>(
            MergerSettings{std::chrono::milliseconds(base.discovery.deletion_grace_ms)});
    bound_ = {};
    for (const auto &[service, feeds] : bindings)
        for (const std::string &feed : feeds)
            bound_[feed].push_back(service);
    return merger_->merge(base, views_, bindings, now, check);
}

std::vector<FeedReport> Discovery::feeds() const {
    std::vector<FeedReport> reports;
    for (const auto &[name, running] : feeds_) {
        FeedReport report;
        report.status = running.feed->status();
        if (const auto view = views_.find(name); view != views_.end())
            for (const auto &[service, endpoints] : view->second) {
                report.endpoints += endpoints.size();
                report.services.push_back(service);
            }
        if (const auto bound = bound_.find(name); bound != bound_.end())
            report.bound_to = bound->second;
        reports.push_back(std::move(report));
    }
    return reports;
}

const Endpoint *Discovery::endpoint(const std::string &feed, const std::string &service,
                                    const std::string &id) const {
    const auto view = views_.find(feed);
    if (view == views_.end())
        return nullptr;
    const auto endpoints = view->second.find(service);
    if (endpoints == view->second.end())
        return nullptr;
    for (const Endpoint &endpoint : endpoints->second)
        if (endpoint.id == id)
            return &endpoint;
    return nullptr;
}

std::optional<EtcdRegistration::Status> Discovery::registration() const {
    if (!registration_)
        return std::nullopt;
    return registration_->status();
}

void Discovery::set_registration_value(const std::string &value) {
    if (registration_)
        registration_->set_value(value);
}

void Discovery::stop() {
    if (!registration_)
        return;
    registration_->stop();
    const auto deadline = Clock::now() + std::chrono::milliseconds(
                                             registration_config_->etcd.request_timeout_ms + 100);
    while (!registration_->stopped() && Clock::now() < deadline) {
        pollfd fd{registration_->fd(), POLLIN, 0};
        const int timeout = registration_->timeout_ms();
        if (poll(&fd, 1, timeout < 0 || timeout > 100 ? 100 : timeout) < 0 && errno != EINTR)
            break;
        registration_->service();
    }
}

std::vector<std::string> Discovery::take_events() {
    std::vector<std::string> events;
    events.swap(events_);
    return events;
}

} // namespace sluice::ctrl
