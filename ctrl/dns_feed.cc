#include "ctrl/dns_feed.h"

#include <arpa/inet.h>
#include <ares.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <tuple>

#include "ctrl/dns_message.h"

namespace sluice::ctrl {

namespace {

using Nanoseconds = int64_t;
constexpr Nanoseconds nanoseconds_per_ms = 1'000'000;
constexpr uint32_t max_endpoint_weight = 65535;  // as parse_endpoint_json allows
const char *const target_label = "srv-target";
// RFC 1035 3.2.2 and 3.2.4, RFC 3596, RFC 2782.
constexpr int class_in = 1;
constexpr int type_a = 1, type_aaaa = 28, type_srv = 33;

Nanoseconds monotonic_now() {
    timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return Nanoseconds(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

std::string describe_errno(int error) {
    std::string text = std::strerror(error);
    if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z')
        text[0] = char(text[0] - 'A' + 'a');
    return text;
}

// Why a lookup failed, in the words of the DNS where it has them.
std::string describe_status(int status, bool several_servers) {
    if (status == ARES_ECONNREFUSED && several_servers)
        return "connection refused, or SERVFAIL, REFUSED or NOTIMP from every server (c-ares "
               "1.18 tells these apart only with one server)";
    switch (status) {
    case ARES_ESERVFAIL: return "server failure (SERVFAIL)";
    case ARES_EREFUSED: return "refused by the server (REFUSED)";
    case ARES_ENOTIMP: return "not implemented by the server (NOTIMP)";
    case ARES_EFORMERR: return "the server found the query malformed (FORMERR)";
    case ARES_ETIMEOUT: return "timed out";
    case ARES_ECONNREFUSED: return "connection refused";
    case ARES_EBADRESP: return "malformed response";
    case ARES_EBADNAME: return "not a valid DNS name";
    default: break;
    }
    std::string text = ares_strerror(status);
    if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z')
        text[0] = char(text[0] - 'A' + 'a');
    return text;
}

std::string in_a_row(uint32_t failures) {
    return std::to_string(failures) + (failures == 1 ? " failure" : " failures") + " in a row";
}



// Addresses that cannot be a backend; parse_endpoint_json refuses them too.
bool usable_backend(const IpAddress &address) {
    return !address.is_unspecified() && !address.is_loopback() && !address.is_multicast();
}

std::string endpoint_id(const IpAddress &address, uint16_t port) {
    const std::string text = address.to_string();
    return (address.is_v4() ? text : "[" + text + "]") + ":" + std::to_string(port);
}

// RFC 2782 as a client reads it, but for all of a priority at once: the
// records of the lowest priority that has a target with an address, each
// address of their targets an endpoint at the record's port and weight.
std::vector<Endpoint> srv_endpoints(const std::vector<DnsSrvRecord> &records,
                                    const std::map<std::string, std::vector<IpAddress>> &usable) {
    std::optional<uint16_t> priority;
    for (const DnsSrvRecord &record : records)
        if (const auto found = usable.find(record.target);
            found != usable.end() && !found->second.empty())
            priority = std::min(priority.value_or(record.priority), record.priority);
    // Keyed by (family, address, port): one endpoint per backend, in a
    // stable order, so that an unchanged answer makes an equal view.
    std::map<std::tuple<AddressFamily, std::array<uint8_t, 16>, uint16_t>, Endpoint> merged;
    for (const DnsSrvRecord &record : records) {
        if (!priority || record.priority != *priority)
            continue;
        const auto found = usable.find(record.target);
        if (found == usable.end())
            continue;
        const uint32_t weight = std::max<uint32_t>(record.weight, 1);  // see the header
        for (const IpAddress &address : found->second) {
            auto [slot, added] = merged.try_emplace({address.family, address.bytes, record.port});
            Endpoint &endpoint = slot->second;
            if (added) {
                endpoint.id = endpoint_id(address, record.port);
                endpoint.address = address;
                endpoint.port = record.port;
                endpoint.weight = weight;
                endpoint.labels[target_label] = record.target;
            } else {
                endpoint.weight = std::min(endpoint.weight + weight, max_endpoint_weight);
                // Named by the first target in name order, whatever order
                // the server sent the records in.
                std::string &named = endpoint.labels[target_label];
                named = std::min(named, record.target);
            }
        }
    }
    std::vector<Endpoint> endpoints;
    endpoints.reserve(merged.size());
    for (auto &[key, endpoint] : merged)
        endpoints.push_back(std::move(endpoint));
    return endpoints;
}

bool is_answer(int status) {
    // An answer, positive or negative; anything else says nothing about the name.
    return status == ARES_SUCCESS || status == ARES_ENODATA || status == ARES_ENOTFOUND;
}


// A channel with the settings' servers, timeouts and tries, reporting its
// sockets to `on_socket_state`.
int open_channel(ares_channel *channel, const DnsFeedSettings &settings, int extra_flags,
                 ares_sock_state_cb on_socket_state, void *feed) {
    ares_options options{};
    const int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
    // ares_query() neither searches nor reads HOSTALIASES; these say so for
    // whoever reads this later.
    options.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | extra_flags;
    options.timeout = int(settings.query_timeout_ms);
    options.tries = int(settings.tries);
    options.sock_state_cb = on_socket_state;
    options.sock_state_cb_data = feed;
    const int status = ares_init_options(channel, &options, mask);
    if (status != ARES_SUCCESS || settings.servers.empty())
        return status;  // with none configured, /etc/resolv.conf's
    std::vector<ares_addr_port_node> servers(settings.servers.size());
    for (size_t i = 0; i < servers.size(); ++i) {
        const DnsServerAddress server = *parse_dns_server(settings.servers[i]);
        ares_addr_port_node &node = servers[i];
        node.next = i + 1 < servers.size() ? &servers[i + 1] : nullptr;
        node.family = server.address.is_v4() ? AF_INET : AF_INET6;
        std::memcpy(&node.addr, server.address.bytes.data(), server.address.is_v4() ? 4 : 16);
        node.udp_port = node.tcp_port = server.port;
    }
    return ares_set_servers_ports(*channel, servers.data());  // copies the list
}

int count_servers(ares_channel channel) {
    ares_addr_port_node *servers = nullptr;
    if (ares_get_servers_ports(channel, &servers) != ARES_SUCCESS)
        return 0;
    int count = 0;
    for (const ares_addr_port_node *node = servers; node; node = node->next)
        ++count;
    ares_free_data(servers);
    return count;
}

} // namespace


namespace {

// One address family of one target, in the lookup in flight.
struct FamilyAnswer {
    enum { pending, answered, failed } state = pending;
    std::vector<IpAddress> addresses;
    std::string error;
};

struct TargetAnswer {
    std::string name;
    FamilyAnswer v4, v6;
};

// A target's addresses as last answered, kept for when a later lookup of
// that family fails.
struct KnownAddresses {
    std::vector<IpAddress> v4, v6;
};

} // namespace

// One service's DNS name: its schedule, the lookup in flight and its results.
struct DnsFeed::Lookup {
    std::string service;
    std::string dns_name;

    // Schedule. Exactly one lookup per name is in flight or due.
    bool in_flight = false;
    Nanoseconds due = 0;
    uint32_t failures_in_a_row = 0;

    // The lookup in flight: the SRV query, then two per target.
    uint64_t attempt = 0;
    size_t pending = 0;
    std::string srv_error;  // set when the SRV query failed
    std::vector<DnsSrvRecord> records;
    std::vector<TargetAnswer> targets;
    std::optional<uint32_t> ttl;  // the smallest TTL of the records used
    std::vector<std::string> new_notes;

    // Results.
    bool ended_once = false;  // a first answer or failure
    std::optional<std::vector<Endpoint>> view;
    std::map<std::string, KnownAddresses> known;
    FeedHealth health = FeedHealth::starting;
    std::string detail;
    std::vector<std::string> notes;
    uint32_t ttl_s = 0;
    uint64_t lookups = 0;

    void lower_ttl(uint32_t seconds) { ttl = std::min(ttl.value_or(seconds), seconds); }
};

// What a c-ares callback needs to find its way back; owned by c-ares from
// ares_query() until the callback, which c-ares calls exactly once, even
// when the channel is destroyed.
struct DnsFeed::Query {
    DnsFeed *feed;
    Lookup *lookup;
    uint64_t attempt;
    enum Kind { srv, a, aaaa } kind;
    size_t target;  // index in lookup->targets, for a and aaaa
};

DnsFeed::DnsFeed(DnsFeedSettings settings) : DnsFeed(std::move(settings), std::random_device{}()) {}

DnsFeed::DnsFeed(DnsFeedSettings settings, uint64_t seed)
    : settings_(std::move(settings)), jitter_(seed) {
    if (const std::string why = validate(settings_); !why.empty())
        throw std::invalid_argument("dns feed " + settings_.name + ": " + why);
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0)
        throw std::runtime_error("dns feed " + settings_.name +
                                 ": cannot create an epoll fd: " + describe_errno(errno));
    // Reference-counted; on Linux it only sets up allocators.
    if (const int status = ares_library_init(ARES_LIB_INIT_ALL); status != ARES_SUCCESS) {
        ::close(epoll_);
        throw std::runtime_error("dns feed " + settings_.name +
                                 ": c-ares: " + describe_status(status, false));
    }

    // c-ares 1.18 answers SERVFAIL, REFUSED and NOTIMP from every server as
    // ARES_ECONNREFUSED (process_answer() never sets the query's error
    // status), which would send an operator looking for a closed port. With
    // one server there is no other to try, so ARES_FLAG_NOCHECKRESP loses
    // nothing and hands the real response code over; with several, c-ares
    // keeps trying the next server, and the failure says that it is vague.
    int status = open_channel(&channel_, settings_, 0, on_socket_state, this);
    int servers = 0;
    if (status == ARES_SUCCESS)
        servers = count_servers(channel_);
    if (status == ARES_SUCCESS && servers == 1) {
        ares_destroy(channel_);
        channel_ = nullptr;
        status = open_channel(&channel_, settings_, ARES_FLAG_NOCHECKRESP, on_socket_state, this);
    }
    several_servers_ = servers > 1;
    if (status != ARES_SUCCESS) {
        if (channel_)
            ares_destroy(channel_);
        ares_library_cleanup();
        ::close(epoll_);
        throw std::runtime_error("dns feed " + settings_.name +
                                 ": cannot set up c-ares: " + describe_status(status, false));
    }

    const Nanoseconds now = monotonic_now();
    for (const auto &[service, name] : settings_.services) {
        auto lookup = std::make_unique<Lookup>();
        lookup->service = service;
        lookup->dns_name = name;
        lookup->due = now;
        lookups_.push_back(std::move(lookup));
    }
}

DnsFeed::~DnsFeed() {
    // c-ares calls every pending callback with ARES_EDESTRUCTION, and the
    // socket callback for each socket it closes.
    destroying_ = true;
    ares_destroy(channel_);
    ares_library_cleanup();
    ::close(epoll_);
}

void DnsFeed::on_socket_state(void *feed, int socket, int readable, int writable) noexcept {
    const int epoll = static_cast<DnsFeed *>(feed)->epoll_;
    if (!readable && !writable) {
        ::epoll_ctl(epoll, EPOLL_CTL_DEL, socket, nullptr);
        return;
    }
    epoll_event interest{};
    interest.events = (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u);
    interest.data.fd = socket;
    // Should epoll refuse the socket, its queries time out and the name goes
    // stale, as when a server is lost.
    if (::epoll_ctl(epoll, EPOLL_CTL_MOD, socket, &interest) < 0 && errno == ENOENT)
        ::epoll_ctl(epoll, EPOLL_CTL_ADD, socket, &interest);
}

int DnsFeed::timeout_ms() const {
    const Nanoseconds now = monotonic_now();
    std::optional<Nanoseconds> earliest;
    for (const auto &lookup : lookups_)
        if (!lookup->in_flight)
            earliest = std::min(earliest.value_or(lookup->due), lookup->due);
    timeval wait;
    if (ares_timeout(channel_, nullptr, &wait)) {
        const Nanoseconds expiry = now + Nanoseconds(wait.tv_sec) * 1'000'000'000 +
                                   Nanoseconds(wait.tv_usec) * 1000;
        earliest = std::min(earliest.value_or(expiry), expiry);
    }
    if (!earliest)
        return -1;
    const Nanoseconds left = *earliest - now;
    if (left <= 0)
        return 0;
    // Rounded up: waking a little early would only find nothing due yet.
    const Nanoseconds ms = (left + nanoseconds_per_ms - 1) / nanoseconds_per_ms;
    return ms > INT_MAX ? INT_MAX : int(ms);
}

void DnsFeed::service() noexcept {
    // One batch per call bounds the work; the rest keeps the fd readable.
    epoll_event events[64];
    const int ready = ::epoll_wait(epoll_, events, int(std::size(events)), 0);
    for (int i = 0; i < ready; ++i) {
        // Copied first: epoll_event is packed on x86-64.
        const int socket = events[i].data.fd;
        const uint32_t what = events[i].events;
        // An error (an ICMP port unreachable, a reset) is read as such.
        ares_process_fd(channel_, what & (EPOLLIN | EPOLLERR | EPOLLHUP) ? socket : ARES_SOCKET_BAD,
                        what & EPOLLOUT ? socket : ARES_SOCKET_BAD);
    }
    // Expires queries whose time is up, whether or not a socket was ready.
    ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    const Nanoseconds now = monotonic_now();
    for (const auto &lookup : lookups_)
        if (!lookup->in_flight && lookup->due <= now)
            start(*lookup);
}

void DnsFeed::start(Lookup &lookup) {
    lookup.in_flight = true;
    ++lookup.attempt;
    ++lookup.lookups;
    lookup.srv_error.clear();
    lookup.records.clear();
    lookup.targets.clear();
    lookup.ttl.reset();
    lookup.new_notes.clear();
    lookup.pending = 1;
    ask(lookup, lookup.dns_name, type_srv, 0);
}

void DnsFeed::ask(Lookup &lookup, const std::string &name, int type, size_t target) {
    const Query::Kind kind = type == type_srv ? Query::srv : type == type_a ? Query::a : Query::aaaa;
    // c-ares may call back before ares_query() returns (when it cannot send
    // at all); the pending count already includes this query then.
    ares_query(channel_, name.c_str(), class_in, type, on_answer,
               new Query{this, &lookup, lookup.attempt, kind, target});
}

void DnsFeed::on_answer(void *query_pointer, int status, int, unsigned char *answer,
                        int length) noexcept {
    const std::unique_ptr<Query> query(static_cast<Query *>(query_pointer));
    if (status == ARES_EDESTRUCTION || query->feed->destroying_)
        return;
    DnsFeed &feed = *query->feed;
    Lookup &lookup = *query->lookup;
    if (!lookup.in_flight || query->attempt != lookup.attempt)
        return;  // cannot happen: one lookup per name at a time, and no cancels
    if (query->kind == Query::srv)
        feed.on_srv(lookup, status, answer, length);
    else
        feed.on_addresses(lookup, query->target, query->kind == Query::aaaa, status, answer,
                          length);
}

void DnsFeed::on_srv(Lookup &lookup, int status, const unsigned char *message, int length) {
    DnsAnswer answer;
    if (!is_answer(status)) {
        lookup.srv_error = describe_status(status, several_servers_);
    } else if (const std::string why = parse_dns_answer(
                   {message, message ? size_t(std::max(length, 0)) : 0}, answer);
               !why.empty()) {
        lookup.srv_error = "malformed answer: " + why;
    } else if (answer.srv.empty()) {
        // NXDOMAIN or NODATA: a current answer that the service has no
        // endpoints; how long it holds is the SOA's business (RFC 2308).
        lookup.new_notes.push_back(status == ARES_ENOTFOUND ? "no SRV records (NXDOMAIN)"
                                                            : "no SRV records");
        lookup.lower_ttl(answer.negative_ttl.value_or(settings_.negative_refresh_s));
    } else {
        if (answer.unusable_targets > 0)
            lookup.new_notes.push_back(std::to_string(answer.unusable_targets) +
                                       " SRV record(s) with a target that is not a host name, "
                                       "skipped");
        for (const DnsSrvRecord &record : answer.srv) {
            lookup.lower_ttl(record.ttl);
            if (record.target == ".") {
                lookup.new_notes.push_back("target \".\" (the service is decidedly not "
                                           "available, RFC 2782), skipped");
                continue;
            }
            const bool seen = std::any_of(lookup.targets.begin(), lookup.targets.end(),
                                          [&](const TargetAnswer &t) { return t.name == record.target; });
            if (!seen)
                lookup.targets.push_back({record.target, {}, {}});
        }
        lookup.records = std::move(answer.srv);
        // Counted before any is sent: a callback that runs at once must not
        // see the count reach zero early.
        lookup.pending += 2 * lookup.targets.size();
        for (size_t i = 0; i < lookup.targets.size(); ++i) {
            ask(lookup, lookup.targets[i].name, type_a, i);
            ask(lookup, lookup.targets[i].name, type_aaaa, i);
        }
    }
    answered_one(lookup);
}

void DnsFeed::on_addresses(Lookup &lookup, size_t target, bool v6, int status,
                           const unsigned char *message, int length) {
    FamilyAnswer &family = v6 ? lookup.targets[target].v6 : lookup.targets[target].v4;
    DnsAnswer answer;
    if (!is_answer(status)) {
        family.state = FamilyAnswer::failed;
        family.error = describe_status(status, several_servers_);
    } else if (const std::string why = parse_dns_answer(
                   {message, message ? size_t(std::max(length, 0)) : 0}, answer);
               !why.empty()) {
        family.state = FamilyAnswer::failed;
        family.error = "malformed answer: " + why;
    } else {
        family.state = FamilyAnswer::answered;
        for (const DnsAddressRecord &record : answer.addresses) {
            if (record.address.is_v4() == v6)
                continue;  // an A in an AAAA answer: not what was asked
            lookup.lower_ttl(record.ttl);
            if (std::find(family.addresses.begin(), family.addresses.end(), record.address) ==
                family.addresses.end())
                family.addresses.push_back(record.address);
        }
        // Without an SOA, a missing family (a v4-only host's AAAA) says
        // nothing about when to ask again; the other records' TTLs do.
        if (family.addresses.empty() && answer.negative_ttl)
            lookup.lower_ttl(*answer.negative_ttl);
    }
    answered_one(lookup);
}

void DnsFeed::answered_one(Lookup &lookup) {
    if (--lookup.pending == 0)
        finish(lookup);
}

void DnsFeed::finish(Lookup &lookup) {
    const Nanoseconds now = monotonic_now();
    lookup.in_flight = false;
    lookup.ended_once = true;
    if (!lookup.srv_error.empty()) {
        // Nothing known about the name: the last view stays as it was.
        ++lookup.failures_in_a_row;
        lookup.health = FeedHealth::stale;
        lookup.detail = "SRV lookup: " + lookup.srv_error + " (" +
                        in_a_row(lookup.failures_in_a_row) + ")";
        lookup.due = now + retry_delay(lookup.failures_in_a_row);
        return;
    }

    std::vector<std::string> notes = std::move(lookup.new_notes);
    std::vector<std::string> problems;
    std::map<std::string, KnownAddresses> known;
    std::map<std::string, std::vector<IpAddress>> usable;  // target → its backend addresses
    for (const TargetAnswer &target : lookup.targets) {
        KnownAddresses &now_known = known[target.name];
        const auto before = lookup.known.find(target.name);
        bool failed = false;
        for (const bool v6 : {false, true}) {
            const FamilyAnswer &family = v6 ? target.v6 : target.v4;
            std::vector<IpAddress> &addresses = v6 ? now_known.v6 : now_known.v4;
            if (family.state == FamilyAnswer::failed) {
                failed = true;
                problems.push_back(target.name + (v6 ? " AAAA" : " A") + " lookup: " +
                                   family.error);
                if (before != lookup.known.end())
                    addresses = v6 ? before->second.v6 : before->second.v4;
            } else {
                addresses = family.addresses;
            }
        }
        std::vector<IpAddress> &backends = usable[target.name];
        for (const auto *family : {&now_known.v4, &now_known.v6})
            for (const IpAddress &address : *family) {
                if (usable_backend(address))
                    backends.push_back(address);
                else
                    notes.push_back(target.name + ": " + address.to_string() +
                                    " is not a unicast address, skipped");
            }
        if (now_known.v4.empty() && now_known.v6.empty() && !failed)
            notes.push_back(target.name + ": no A or AAAA records, skipped");
    }

    std::vector<Endpoint> endpoints = srv_endpoints(lookup.records, usable);
    // A lookup that failed in part neither empties a view nor makes a first
    // one that is empty: "no endpoints" would be a claim it cannot make.
    const bool unknown = !problems.empty() && endpoints.empty();
    if (!unknown && (!lookup.view || *lookup.view != endpoints)) {
        lookup.view = std::move(endpoints);
        changed_ = true;
        ++revision_;
    }
    lookup.known = std::move(known);
    lookup.notes = std::move(notes);
    lookup.ttl_s = std::clamp(lookup.ttl.value_or(settings_.negative_refresh_s),
                              settings_.min_refresh_s, settings_.max_refresh_s);
    if (problems.empty()) {
        lookup.failures_in_a_row = 0;
        lookup.health = FeedHealth::current;
        lookup.detail.clear();
        lookup.due = now + refresh_delay(lookup.ttl_s);
    } else {
        ++lookup.failures_in_a_row;
        lookup.health = FeedHealth::stale;
        lookup.detail.clear();
        for (const std::string &problem : problems)
            lookup.detail += (lookup.detail.empty() ? "" : "; ") + problem;
        lookup.detail += " (" + in_a_row(lookup.failures_in_a_row) +
                         "; the last known addresses stay)";
        lookup.due = now + retry_delay(lookup.failures_in_a_row);
    }
}

DnsFeed::Nanoseconds DnsFeed::refresh_delay(uint32_t ttl_s) {
    const Nanoseconds full = Nanoseconds(ttl_s) * 1000 * nanoseconds_per_ms;
    return full - Nanoseconds(jitter_() % uint64_t(full / 10 + 1));  // up to 10% early
}

DnsFeed::Nanoseconds DnsFeed::retry_delay(uint32_t failures) {
    const uint32_t doublings = std::min<uint32_t>(failures - 1, 20);
    const uint64_t ms = std::min<uint64_t>(uint64_t(settings_.retry_min_ms) << doublings,
                                           settings_.retry_max_ms);
    const Nanoseconds full = Nanoseconds(ms) * nanoseconds_per_ms;
    return full - Nanoseconds(jitter_() % uint64_t(full / 5 + 1));  // up to 20% early
}

bool DnsFeed::take_endpoints(EndpointSet &out) {
    if (!changed_)
        return false;
    out.clear();
    for (const auto &lookup : lookups_)
        if (lookup->view)
            out[lookup->service] = *lookup->view;
    changed_ = false;
    ++updates_;
    return true;
}

FeedStatus DnsFeed::status() const {
    FeedStatus status;
    status.name = settings_.name;
    status.kind = "dns";
    status.updates = updates_;
    status.revision = std::to_string(revision_);
    std::string waiting, stale;
    for (const auto &lookup : lookups_) {
        if (!lookup->ended_once)
            waiting += (waiting.empty() ? "" : ", ") + lookup->dns_name;
        else if (lookup->health == FeedHealth::stale)
            stale += (stale.empty() ? "" : "; ") + lookup->service + " (" + lookup->dns_name +
                     "): " + lookup->detail;
    }
    status.health = !waiting.empty() ? FeedHealth::starting
                    : !stale.empty() ? FeedHealth::stale
                                     : FeedHealth::current;
    if (!waiting.empty())
        status.detail = "no answer yet for " + waiting + (stale.empty() ? "" : "; " + stale);
    else
        status.detail = stale;
    return status;
}

std::vector<DnsNameReport> DnsFeed::reports() const {
    std::vector<DnsNameReport> reports;
    for (const auto &lookup : lookups_)
        reports.push_back({lookup->service, lookup->dns_name, lookup->health, lookup->detail,
                           lookup->notes, lookup->ttl_s, lookup->lookups,
                           lookup->view ? lookup->view->size() : 0});
    return reports;
}

} // namespace sluice::ctrl
