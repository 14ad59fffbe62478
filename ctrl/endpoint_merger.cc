#include "ctrl/endpoint_merger.h"

#include <algorithm>
#include <set>
#include <utility>

namespace sluice::ctrl {

const char *const config_source = "config";

std::string feed_source(const std::string &feed) { return "feed:" + feed; }

const char *to_string(SourceState state) {
    switch (state) {
    case SourceState::active: return "active";
    case SourceState::drained: return "drained";
    case SourceState::not_serving: return "not serving";
    case SourceState::leaving: return "leaving";
    }
    return "unknown";
}

namespace {

// A backend's identity within its service, ordered by family, address, port.
using BackendKey = std::tuple<AddressFamily, std::array<uint8_t, 16>, uint16_t>;

BackendKey key_of(const IpAddress &address, uint16_t port) {
    return {address.family, address.bytes, port};
}

// The precedence of a source's offer (see the header): lower wins.
enum class Rank { config, ready, not_ready, not_serving, leaving };

// One source's word about one backend.
struct Offer {
    Rank rank;
    size_t feed_index;  // in the service's list of feeds
    BackendSource source;
    std::optional<BackendConfig> backend;  // none: not serving

    auto order() const { return std::tie(rank, feed_index, source.id, source.source); }
};

// The service's feeds, each once, in the order the binding gives them.
std::vector<std::string> feeds_of(const FeedBindings &bindings, const std::string &service) {
    std::vector<std::string> feeds;
    if (const auto bound = bindings.find(service); bound != bindings.end())
        for (const std::string &feed : bound->second)
            if (std::find(feeds.begin(), feeds.end(), feed) == feeds.end())
                feeds.push_back(feed);
    return feeds;
}

const std::vector<Endpoint> *endpoints_of(const FeedViews &feeds, const std::string &feed,
                                          const std::string &service) {
    const auto view = feeds.find(feed);
    if (view == feeds.end())
        return nullptr;
    const auto endpoints = view->second.find(service);
    return endpoints == view->second.end() ? nullptr : &endpoints->second;
}

// (feed, service, id) → why its endpoints were ignored: sorted, each said once.
using Ignored = std::map<std::tuple<std::string, std::string, std::string>, std::string>;

// The feeds' views, or bindings, for services that take nothing from them.
Ignored unused_views(const std::set<std::string> &configured, const FeedViews &feeds,
                     const FeedBindings &bindings) {
    Ignored ignored;
    for (const auto &[service, names] : bindings)
        if (!configured.contains(service))
            for (const std::string &feed : names)
                ignored.emplace(std::tuple(feed, service, ""), "the service is not configured");
    for (const auto &[feed, view] : feeds)
        for (const auto &[service, endpoints] : view) {
            if (endpoints.empty())
                continue;
            const std::vector<std::string> bound = feeds_of(bindings, service);
            if (!configured.contains(service))
                ignored.emplace(std::tuple(feed, service, ""), "the service is not configured");
            else if (std::find(bound.begin(), bound.end(), feed) == bound.end())
                ignored.emplace(std::tuple(feed, service, ""),
                                "the service does not take endpoints from this feed");
        }
    return ignored;
}

// What every source offers for one service's backends, and the backends
// that come of it.
class ServiceOffers {
public:
    ServiceOffers(const ServiceConfig &service, const BackendCheck &check, Ignored &ignored)
        : service_(service), check_(check), ignored_(ignored) {
        for (const BackendConfig &backend : service.backends) {
            const BackendKey key = key_of(backend.address, backend.port);
            config_keys_.push_back(key);
            const SourceState state = backend.drained ? SourceState::drained : SourceState::active;
            offers_[key].push_back(
                {Rank::config, 0, {config_source, "", state, std::nullopt}, backend});
        }
    }

    // A live endpoint of the service's feed number `index`.
    void add(const std::string &feed, size_t index, const Endpoint &e) {
        const BackendKey key = key_of(e.address, e.port);
        if (!e.serving) {
            offers_[key].push_back(
                {Rank::not_serving, index,
                 {feed_source(feed), e.id, SourceState::not_serving, std::nullopt},
                 std::nullopt});
            return;
        }
        const bool ready = e.ready && !e.terminating;
        const BackendConfig backend{e.address, e.port, e.weight, !ready};
        if (!admit(feed, e, backend))
            return;
        offers_[key].push_back(
            {ready ? Rank::ready : Rank::not_ready, index,
             {feed_source(feed), e.id, ready ? SourceState::active : SourceState::drained,
              std::nullopt},
             backend});
    }

    // An endpoint gone from the feed, in its grace.
    void add_leaving(const std::string &feed, size_t index, const Endpoint &e,
                     EndpointMerger::Clock::time_point until) {
        const BackendConfig backend{e.address, e.port, e.weight, true};
        if (!admit(feed, e, backend))
            return;
        offers_[key_of(e.address, e.port)].push_back(
            {Rank::leaving, index, {feed_source(feed), e.id, SourceState::leaving, until},
             backend});
    }

    // The config's backends in the config's order, then the others by key.
    void take(std::vector<BackendConfig> &backends, std::vector<BackendOrigin> &origins) {
        backends.clear();
        origins.clear();
        for (const BackendKey &key : config_keys_)
            take(offers_.at(key), backends, origins);
        for (auto &[key, offers] : offers_)
            if (offers.front().rank != Rank::config)
                take(offers, backends, origins);
    }

private:
    static void take(std::vector<Offer> &offers, std::vector<BackendConfig> &backends,
                     std::vector<BackendOrigin> &origins) {
        std::stable_sort(offers.begin(), offers.end(),
                         [](const Offer &a, const Offer &b) { return a.order() < b.order(); });
        const auto winner = std::find_if(offers.begin(), offers.end(),
                                         [](const Offer &offer) { return offer.backend; });
        if (winner == offers.end())
            return;  // only not-serving endpoints name it
        backends.push_back(*winner->backend);
        BackendOrigin origin{winner->backend->address, winner->backend->port, {}};
        for (Offer &offer : offers)
            origin.sources.push_back(std::move(offer.source));
        origins.push_back(std::move(origin));
    }

    // A feed's backend joins unless the check refuses it; the config's
    // address:port is valid already, whatever a feed says of it.
    bool admit(const std::string &feed, const Endpoint &e, const BackendConfig &backend) {
        const auto existing = offers_.find(key_of(e.address, e.port));
        if (!check_ || (existing != offers_.end() && existing->second.front().rank == Rank::config))
            return true;
        std::string reason = check_(service_, backend);
        if (reason.empty())
            return true;
        ignored_.emplace(std::tuple(feed, service_.name, e.id), std::move(reason));
        return false;
    }

    const ServiceConfig &service_;
    const BackendCheck &check_;
    Ignored &ignored_;
    std::map<BackendKey, std::vector<Offer>> offers_;
    std::vector<BackendKey> config_keys_;
};

} // namespace

void EndpointMerger::note_departures(const std::set<std::string> &configured,
                                     const FeedViews &feeds, const FeedBindings &bindings,
                                     Clock::time_point now) {
    // What the bound feeds say now, against what they said last time: a
    // serving endpoint that is gone starts its grace; one that is back ends it.
    std::map<Identity, Endpoint> serving;
    std::set<Identity> seen;
    for (const std::string &service : configured)
        for (const std::string &feed : feeds_of(bindings, service))
            if (const auto *endpoints = endpoints_of(feeds, feed, service))
                for (const Endpoint &e : *endpoints) {
                    Identity identity{service, feed, e.id, e.address.family, e.address.bytes,
                                      e.port};
                    seen.insert(identity);
                    if (e.serving)
                        serving.emplace(std::move(identity), e);
                }
    if (settings_.deletion_grace.count() > 0)
        for (const auto &[identity, endpoint] : serving_)
            if (!seen.contains(identity) && configured.contains(std::get<0>(identity)))
                leaving_.insert_or_assign(identity,
                                          Leaving{endpoint, now + settings_.deletion_grace});
    std::erase_if(leaving_, [&](const auto &entry) {
        return seen.contains(entry.first) || entry.second.until <= now ||
               !configured.contains(std::get<0>(entry.first));
    });
    serving_ = std::move(serving);
}

MergeResult EndpointMerger::merge(const Config &base, const FeedViews &feeds,
                                  const FeedBindings &bindings, Clock::time_point now,
                                  const BackendCheck &check) {
    std::set<std::string> configured;
    for (const ServiceConfig &service : base.services)
        configured.insert(service.name);
    Ignored ignored = unused_views(configured, feeds, bindings);
    note_departures(configured, feeds, bindings, now);

    MergeResult result;
    result.config = base;
    for (ServiceConfig &service : result.config.services) {
        const std::vector<std::string> service_feeds = feeds_of(bindings, service.name);
        ServiceOffers offers(service, check, ignored);
        for (size_t i = 0; i < service_feeds.size(); ++i)
            if (const auto *endpoints = endpoints_of(feeds, service_feeds[i], service.name))
                for (const Endpoint &e : *endpoints)
                    offers.add(service_feeds[i], i, e);
        for (const auto &[identity, leaving] : leaving_) {
            if (std::get<0>(identity) != service.name)
                continue;
            // A feed no longer bound ranks after the bound ones.
            const std::string &feed = std::get<1>(identity);
            const size_t index = size_t(
                std::find(service_feeds.begin(), service_feeds.end(), feed) -
                service_feeds.begin());
            offers.add_leaving(feed, index, leaving.endpoint, leaving.until);
        }
        offers.take(service.backends, result.provenance[service.name]);
    }
    for (auto &[where, reason] : ignored)
        result.ignored.push_back(
            {std::get<0>(where), std::get<1>(where), std::get<2>(where), std::move(reason)});
    return result;
}

std::optional<EndpointMerger::Clock::time_point> EndpointMerger::next_departure() const {
    std::optional<Clock::time_point> first;
    for (const auto &[identity, leaving] : leaving_)
        if (!first || leaving.until < *first)
            first = leaving.until;
    return first;
}

} // namespace sluice::ctrl
