// The discovery feeds' common words: an endpoint of a service as a registry
// states it (Envoy EDS / Kubernetes EndpointSlice style), and the interface
// every feed (etcd, DNS SRV, a watched file) offers the control plane's loop.
// Feeds are non-blocking and single-threaded, like the rest of the control
// plane: fd() to poll, timeout_ms() for their timers, service() to work.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dataplane/net_addr.h"

namespace sluice::ctrl {

// One endpoint of one service. `ready`: takes new flows. Serving but not
// ready (terminating, or not ready yet): drained, its flows go on. Not
// serving: out of the service, its flows follow removed_backend_flows.
struct Endpoint {
    std::string id;     // unique per service within its feed (etcd key, SRV target:port, ...)
    IpAddress address;
    uint16_t port = 0;  // 0: the port the client connected to
    uint32_t weight = 1;
    std::string zone;
    std::map<std::string, std::string> labels;
    bool ready = true;
    bool serving = true;
    bool terminating = false;

    bool operator==(const Endpoint &) const = default;
};

// Service name → its endpoints, as one feed knows them.
using EndpointSet = std::map<std::string, std::vector<Endpoint>>;

enum class FeedHealth {
    starting,  // no complete view yet
    current,   // in step with its source
    stale,     // lost its source: the last known endpoints stay in service
};
const char *to_string(FeedHealth health);

struct FeedStatus {
    std::string name;      // from the config
    std::string kind;      // "etcd", "dns", "file"
    FeedHealth health = FeedHealth::starting;
    std::string detail;    // why stale, the last error, or "" when current
    uint64_t updates = 0;  // complete views delivered
    std::string revision;  // the source's own version (etcd revision, file mtime, SOA serial)
};

class EndpointFeed {
public:
    virtual ~EndpointFeed() = default;
    virtual int fd() const = 0;          // pollable for POLLIN, -1 when none
    virtual int timeout_ms() const = 0;  // -1: no timer
    virtual void service() = 0;          // never blocks, never throws
    // True, with the feed's whole view in `out`, when it changed since the
    // last call. A stale feed keeps its last view (it does not empty it).
    virtual bool take_endpoints(EndpointSet &out) = 0;
    virtual FeedStatus status() const = 0;
};

// An endpoint's value as the etcd and file feeds store it, JSON:
//   {"address": "198.18.1.11", "port": 8080, "weight": 2, "zone": "a",
//    "labels": {"version": "v2"}, "ready": true, "serving": true, "terminating": false}
// Only "address" is required; unknown keys are refused. Returns "" or why
// not ("port: expected an integer in 0..65535, got -1"). `endpoint.id` is
// left as it was.
std::string parse_endpoint_json(const std::string &text, Endpoint &endpoint);

} // namespace sluice::ctrl
