// The etcd v3 discovery feed (Envoy EDS, Consul blocking queries): the
// endpoints of the mesh's services as keys under a prefix,
//   <prefix>/<service>/<endpoint-id>  →  the endpoint's JSON (parse_endpoint_json)
// with endpoint.id the key's last segment. A key that does not fit (another
// depth, a service name that is not 1..63 of a-z 0-9 '_' '-', an id that is
// not 1..253 printable ASCII characters) or whose value does not parse is
// skipped: the rest of the view is used, and status().detail counts the
// skipped keys and names the first few with why.
//
// How it follows etcd, over the JSON gateway (ctrl/etcd_client.h):
//   - a range read of the prefix, in pages of range_page_size keys at one
//     revision, gives a complete view; the view's revision is the read's;
//   - a watch from that revision + 1 applies PUT and DELETE events, with
//     progress notifications requested and the member required to have a
//     leader (a partitioned member ends the watch rather than go quiet);
//   - a watch canceled because its revision was compacted, or a cluster
//     whose revision went back (restored, or another cluster), starts over
//     with a range read; the new view replaces the old one whole;
//   - a lost watch (a failure, or watch_silence_ms without a byte) is
//     resumed from the revision reached, on a new connection, without a
//     range read: etcd replays what happened meanwhile. An etcd restart,
//     or a silent connection, costs a watch, not a reload.
// Health: starting until the first complete view; stale while etcd cannot
// be reached or refuses (the last view stays, take_endpoints() does not
// empty it), with detail saying why ("cannot connect to 127.0.0.1:2379:
// connection refused"); current again once a watch is in step. The one
// immediate retry of a watch that was lost after working does not make the
// feed stale: a watch that goes quiet for watch_silence_ms is renewed in
// place on an idle cluster, and that is not an outage.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "ctrl/endpoint_feed.h"
#include "ctrl/etcd_client.h"

namespace sluice::ctrl {

class EtcdFeed final : public EndpointFeed {
public:
    // Starts connecting at once. Throws std::invalid_argument when validate()
    // refuses the settings, std::runtime_error when the TLS files cannot be
    // loaded or no epoll fd can be made.
    explicit EtcdFeed(EtcdSettings settings);        // jitter from std::random_device
    EtcdFeed(EtcdSettings settings, uint64_t seed);  // jitter seeded for tests

    int fd() const override { return session_.fd(); }
    int timeout_ms() const override { return session_.timeout_ms(); }
    void service() noexcept override;
    // The whole view, each service's endpoints sorted by id.
    bool take_endpoints(EndpointSet &out) override;
    FeedStatus status() const override;

    struct Counters {
        uint64_t range_reads = 0;   // complete loads: the first, and every resync
        uint64_t watches = 0;       // watches created
        uint64_t events = 0;        // PUT and DELETE events applied
        uint64_t progress = 0;      // progress notifications
        uint64_t connections = 0;   // connections opened
        uint64_t skipped_keys = 0;  // keys of the current view skipped
    };
    Counters counters() const;

private:
    // service → id → endpoint
    using View = std::map<std::string, std::map<std::string, Endpoint>>;
    using Skipped = std::map<std::string, std::string>;                   // key → why

    void start();
    void read_page(const std::string &from);
    void watch();
    void on_range(const EtcdReply &reply);
    void on_watch(const EtcdReply &reply);
    void on_watch_result(const EtcdJson &result);
    void on_failure(const std::string &why);
    void fail(const std::string &why);
    void resync();
    // Puts a key's value into `view`, or records it in `skipped` (and takes
    // what the key said before out of `view`). True when `view` changed.
    bool put_key(View &view, Skipped &skipped, const std::string &key, const std::string &value);
    static bool erase(View &view, std::string_view service, std::string_view id);
    void delete_key(const std::string &key);

    EtcdSession session_;
    std::string key_prefix_;  // prefix + "/"
    std::string range_end_;

    enum class Phase { ranging, watching } phase_ = Phase::ranging;
    FeedHealth health_ = FeedHealth::starting;
    std::string why_stale_;
    bool has_view_ = false;
    View view_;
    Skipped skipped_;
    int64_t revision_ = 0;  // every event up to this one is in the view
    bool changed_ = false;
    uint64_t updates_ = 0;

    // A range read under way: its pages build a view of their own.
    View loading_;
    Skipped loading_skipped_;
    int64_t loading_revision_ = 0;

    bool resync_needed_ = false;  // the next start reads the whole view
    bool watch_created_ = false;  // the current watch was accepted
    bool resuming_ = false;       // retrying at once a watch that worked
    bool token_retried_ = false;  // a watch canceled for its token was authenticated again
    Counters counters_;
};

} // namespace sluice::ctrl
