#include "ctrl/etcd_feed.h"

#include <algorithm>
#include <random>

namespace sluice::ctrl {

namespace {

constexpr size_t max_endpoint_id_length = 253;
constexpr size_t skipped_keys_named = 3;  // in status().detail; the rest are counted

bool is_service_name(std::string_view s) {
    return !s.empty() && s.size() <= 63 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
           });
}

// Printable ASCII only: ids end up in the API's JSON and in metrics labels.
bool is_endpoint_id(std::string_view s) {
    return !s.empty() && s.size() <= max_endpoint_id_length &&
           std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f && c != '/'; });
}

// Keys are bytes: what is not printable ASCII is shown as '?' so that the
// detail stays valid UTF-8 wherever it is printed.
std::string printable(std::string_view text) {
    std::string out(text.substr(0, 512));
    for (char &c : out)
        if (c < 0x20 || c >= 0x7f)
            c = '?';
    return out;
}

const EtcdJson *member(const EtcdJson &object, const char *key) {
    if (!object.is_object())
        return nullptr;
    const auto found = object.find(key);
    return found == object.end() ? nullptr : &*found;
}

bool flag(const EtcdJson &object, const char *key) {
    const EtcdJson *value = member(object, key);
    return value && value->is_boolean() && value->get<bool>();
}

// A base64 field as bytes; absent is empty (the gateway leaves out empty values).
std::optional<std::string> bytes_field(const EtcdJson &object, const char *key) {
    const EtcdJson *value = member(object, key);
    if (!value)
        return std::string();
    if (!value->is_string())
        return std::nullopt;
    return base64_decode(value->get_ref<const std::string &>());
}

} // namespace

EtcdFeed::EtcdFeed(EtcdSettings settings)
    : EtcdFeed(std::move(settings), std::random_device{}()) {}

EtcdFeed::EtcdFeed(EtcdSettings settings, uint64_t seed)
    : session_(std::move(settings), seed),
      key_prefix_(session_.settings().prefix + "/"), range_end_(prefix_range_end(key_prefix_)) {
    start();
}

void EtcdFeed::start() {
    if (has_view_ && !resync_needed_)
        return watch();
    loading_.clear();
    loading_skipped_.clear();
    loading_revision_ = 0;
    read_page(key_prefix_);
}

void EtcdFeed::read_page(const std::string &from) {
    EtcdJson body{{"key", base64_encode(from)},
              {"range_end", base64_encode(range_end_)},
              {"limit", session_.settings().range_page_size}};
    // Later pages read the revision of the first: one consistent view.
    if (loading_revision_ != 0)
        body["revision"] = std::to_string(loading_revision_);
    EtcdRequest request;
    request.path = "/v3/kv/range";
    request.body = body.dump();
    request.timeout_ms = session_.settings().request_timeout_ms;
    phase_ = Phase::ranging;
    session_.call(std::move(request));
}

void EtcdFeed::watch() {
    const EtcdJson body{{"create_request",
                     {{"key", base64_encode(key_prefix_)},
                      {"range_end", base64_encode(range_end_)},
                      {"start_revision", std::to_string(revision_ + 1)},
                      {"progress_notify", true}}}};
    EtcdRequest request;
    request.path = "/v3/watch";
    request.body = body.dump();
    // etcd's gateway passes Grpc-Metadata-* headers on as gRPC metadata:
    // "hasleader" makes a member that loses its leader end the watch
    // (clientv3.WithRequireLeader) instead of leaving it silent.
    request.headers.emplace_back("Grpc-Metadata-Hasleader", "true");
    request.stream = true;
    request.timeout_ms = session_.settings().request_timeout_ms;
    request.idle_ms = session_.settings().watch_silence_ms;
    phase_ = Phase::watching;
    watch_created_ = false;
    session_.call(std::move(request));
}

void EtcdFeed::service() noexcept {
    try {
        session_.service();
        EtcdReply reply;
        while (session_.next_reply(reply)) {
            if (phase_ == Phase::ranging)
                on_range(reply);
            else
                on_watch(reply);
        }
    } catch (const std::exception &error) {
        // Only allocation can throw here: drop the connection, start over.
        session_.cancel();
        session_.back_off();
        on_failure(std::string("internal error: ") + error.what());
    }
}

void EtcdFeed::fail(const std::string &why) {
    health_ = FeedHealth::stale;
    why_stale_ = why;
    watch_created_ = false;
    resuming_ = false;
}

void EtcdFeed::on_failure(const std::string &why) {
    fail(why);
    start();  // the session waits out its backoff first
}

void EtcdFeed::resync() {
    resync_needed_ = true;
    watch_created_ = false;
    start();
}

void EtcdFeed::on_range(const EtcdReply &reply) {
    if (reply.kind == EtcdReply::Kind::failure)
        return on_failure(reply.body);
    if (reply.status != 200) {
        const std::string said = etcd_error_text(reply.status, reply.body);
        if (loading_revision_ != 0 && said.find("compacted") != std::string::npos)
            return start();  // compacted between pages: read again at a newer revision
        session_.back_off();
        return on_failure("etcd at " + session_.endpoint() + " refused the range read: " + said);
    }
    const EtcdJson answer = EtcdJson::parse(reply.body, nullptr, false);
    const EtcdJson *header = member(answer, "header");
    const int64_t revision = header ? etcd_int(*header, "revision").value_or(0) : 0;
    const EtcdJson *kvs = member(answer, "kvs");
    if (revision <= 0 || (kvs && !kvs->is_array())) {
        session_.back_off();
        return on_failure("etcd at " + session_.endpoint() +
                          " answered the range read with something else than a range");
    }
    if (loading_revision_ == 0)
        loading_revision_ = revision;
    std::string last_key;
    if (kvs) {
        for (const EtcdJson &kv : *kvs) {
            const std::optional<std::string> key = bytes_field(kv, "key");
            const std::optional<std::string> value = bytes_field(kv, "value");
            if (!key || !value || key->empty()) {
                session_.back_off();
                return on_failure("etcd at " + session_.endpoint() +
                                  " answered the range read with a malformed key or value");
            }
            put_key(loading_, loading_skipped_, *key, *value);
            last_key = *key;
        }
    }
    if (flag(answer, "more") && !last_key.empty())
        return read_page(last_key + '\0');

    ++counters_.range_reads;
    if (!has_view_ || loading_ != view_)
        changed_ = true;
    view_.swap(loading_);
    skipped_.swap(loading_skipped_);
    loading_.clear();
    loading_skipped_.clear();
    revision_ = loading_revision_;
    loading_revision_ = 0;
    has_view_ = true;
    resync_needed_ = false;
    health_ = FeedHealth::current;
    why_stale_.clear();
    watch();
}

void EtcdFeed::on_watch(const EtcdReply &reply) {
    std::string lost;
    if (reply.kind == EtcdReply::Kind::failure) {
        lost = reply.body;
    } else if (reply.kind == EtcdReply::Kind::response) {
        session_.back_off();
        return on_failure("etcd at " + session_.endpoint() + " refused the watch: " +
                          etcd_error_text(reply.status, reply.body));
    } else {
        const EtcdJson message = EtcdJson::parse(reply.body, nullptr, false);
        const EtcdJson *result = member(message, "result");
        if (!result || !result->is_object()) {
            // {"error": {...}}: the gateway's word for a stream that ended,
            // e.g. "etcdserver: no leader".
            session_.back_off();
            lost = "etcd at " + session_.endpoint() + " ended the watch: " +
                   etcd_error_text(200, reply.body);
        } else {
            return on_watch_result(*result);
        }
    }
    if (watch_created_ && !resuming_) {
        // A watch that worked: resume it once before calling the feed stale
        // (a silent idle watch ends this way; see the header).
        resuming_ = true;
        watch_created_ = false;
        return watch();
    }
    on_failure(lost);
}

void EtcdFeed::on_watch_result(const EtcdJson &result) {
    const EtcdJson *header = member(result, "header");
    const int64_t header_revision = header ? etcd_int(*header, "revision").value_or(0) : 0;
    if (flag(result, "canceled")) {
        const int64_t compacted = etcd_int(result, "compact_revision").value_or(0);
        if (compacted > 0)
            return resync();  // revision_ + 1 is gone: read the whole view again
        const EtcdJson *reason = member(result, "cancel_reason");
        const std::string why =
            reason && reason->is_string() ? reason->get<std::string>() : "no reason given";
        if (why.find("auth token") != std::string::npos && !token_retried_) {
            token_retried_ = true;
            session_.forget_token();
            return watch();
        }
        session_.back_off();
        return on_failure("etcd at " + session_.endpoint() + " canceled the watch: " + why);
    }
    if (flag(result, "created")) {
        watch_created_ = true;
        resuming_ = false;
        token_retried_ = false;
        ++counters_.watches;
        // A cluster restored from a backup, or another cluster at the same
        // address, has a revision behind ours: nothing we hold is in step.
        if (header_revision < revision_)
            return resync();
        health_ = FeedHealth::current;
        why_stale_.clear();
    }
    const EtcdJson *events = member(result, "events");
    if (!events || !events->is_array() || events->empty()) {
        if (!flag(result, "created") && header_revision > 0) {
            // A progress notification: everything up to here was sent.
            ++counters_.progress;
            revision_ = std::max(revision_, header_revision);
        }
        return;
    }
    for (const EtcdJson &event : *events) {
        const EtcdJson *kv = member(event, "kv");
        const std::optional<std::string> key = kv ? bytes_field(*kv, "key") : std::nullopt;
        const std::optional<std::string> value = kv ? bytes_field(*kv, "value") : std::nullopt;
        const std::optional<int64_t> modified = kv ? etcd_int(*kv, "mod_revision") : std::nullopt;
        if (!key || !value || !modified) {
            session_.back_off();
            return on_failure("etcd at " + session_.endpoint() +
                              " sent a watch event with a malformed key or value");
        }
        const EtcdJson *type = member(event, "type");
        const bool deleted = type && type->is_string() && type->get<std::string>() == "DELETE";
        if (deleted)
            delete_key(*key);
        else if (put_key(view_, skipped_, *key, *value))
            changed_ = true;
        ++counters_.events;
        // Not the header's revision: with many events pending, etcd sends
        // them in batches under the store's current revision.
        revision_ = std::max(revision_, *modified);
    }
}

bool EtcdFeed::put_key(View &view, Skipped &skipped, const std::string &key,
                       const std::string &value) {
    std::string why;
    std::string_view rest = std::string_view(key);
    const size_t slash = rest.starts_with(key_prefix_)
                             ? rest.find('/', key_prefix_.size())
                             : std::string_view::npos;
    std::string_view service, id;
    if (slash == std::string_view::npos || rest.find('/', slash + 1) != std::string_view::npos) {
        why = "not <prefix>/<service>/<endpoint-id>";
    } else {
        service = rest.substr(key_prefix_.size(), slash - key_prefix_.size());
        id = rest.substr(slash + 1);
        if (!is_service_name(service))
            why = "service: expected 1..63 characters of a-z, 0-9, '_', '-'";
        else if (!is_endpoint_id(id))
            why = "endpoint id: expected 1..253 printable ASCII characters";
    }
    Endpoint endpoint;
    endpoint.id = std::string(id);
    if (why.empty())
        why = parse_endpoint_json(value, endpoint);
    if (!why.empty()) {
        skipped[key] = why;
        // What the key said before no longer holds.
        return !service.empty() && !id.empty() && erase(view, service, id);
    }
    skipped.erase(key);
    auto &endpoints = view[std::string(service)];
    const auto [slot, added] = endpoints.try_emplace(endpoint.id, endpoint);
    if (added)
        return true;
    if (slot->second == endpoint)
        return false;
    slot->second = std::move(endpoint);
    return true;
}

bool EtcdFeed::erase(View &view, std::string_view service, std::string_view id) {
    const auto endpoints = view.find(std::string(service));
    if (endpoints == view.end() || endpoints->second.erase(std::string(id)) == 0)
        return false;
    if (endpoints->second.empty())
        view.erase(endpoints);
    return true;
}

void EtcdFeed::delete_key(const std::string &key) {
    skipped_.erase(key);
    if (!key.starts_with(key_prefix_))
        return;
    const std::string_view rest = std::string_view(key).substr(key_prefix_.size());
    const size_t slash = rest.find('/');
    if (slash != std::string_view::npos &&
        erase(view_, rest.substr(0, slash), rest.substr(slash + 1)))
        changed_ = true;
}

bool EtcdFeed::take_endpoints(EndpointSet &out) {
    if (!changed_ || !has_view_)
        return false;
    out.clear();
    for (const auto &[service, endpoints] : view_) {
        std::vector<Endpoint> &list = out[service];
        list.reserve(endpoints.size());
        for (const auto &[id, endpoint] : endpoints)  // a map: sorted by id
            list.push_back(endpoint);
    }
    changed_ = false;
    ++updates_;
    return true;
}

FeedStatus EtcdFeed::status() const {
    FeedStatus status;
    status.name = session_.settings().name;
    status.kind = "etcd";
    status.health = health_;
    status.updates = updates_;
    if (has_view_)
        status.revision = std::to_string(revision_);
    std::string detail = health_ == FeedHealth::stale ? why_stale_ : "";
    if (!skipped_.empty()) {
        if (!detail.empty())
            detail += "; ";
        detail += std::to_string(skipped_.size()) +
                  (skipped_.size() == 1 ? " key skipped: " : " keys skipped: ");
        size_t named = 0;
        for (const auto &[key, why] : skipped_) {
            if (named == skipped_keys_named) {
                detail += "; and " + std::to_string(skipped_.size() - named) + " more";
                break;
            }
            detail += (named++ ? "; " : "") + key + ": " + why;
        }
    }
    status.detail = printable(detail);
    return status;
}

EtcdFeed::Counters EtcdFeed::counters() const {
    Counters counters = counters_;
    counters.connections = session_.connections();
    counters.skipped_keys = skipped_.size();
    return counters;
}

} // namespace sluice::ctrl
