// The REST management API (docs/api.md) as pure logic: a request in, a
// response out. The running gateway is behind a few hooks; there are no
// sockets and no DPDK here, so the HTTP server (ctrl/http_server.h) carries
// requests to it and the unit tests call it directly. Every change to the
// services is validated by the config loader (ctrl/config_change.h) and
// published whole through one call of `apply`, or not at all.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ctrl/config.h"

namespace sluice::ctrl {

struct ApiRequest {
    std::string method;  // "GET", "POST", ...: case matters (RFC 9110)
    std::string path;    // before '?', still percent-encoded
    std::string query;   // after '?'; no route reads it
    std::string body;
    std::optional<std::string> authorization;  // the Authorization header, if sent
};

struct ApiResponse {
    int status = 200;
    std::string body;
    // Besides Content-Type and Content-Length, which the server writes.
    std::vector<std::pair<std::string, std::string>> headers;
    std::string content_type = "application/json";
};

// What the running gateway provides. Called on the control plane's thread,
// one request at a time.
struct ApiHooks {
    // The running config: the file's, with the API's changes; what changes edit.
    std::function<const Config &()> config;
    // The config in service: `config` with the discovery feeds' endpoints
    // merged into its services (ctrl/endpoint_merger.h). Unset: `config`.
    std::function<const Config &()> published;
    // Where a published backend came from, as a JSON array of
    // {"source": "config"|"feed:<name>", "id": ..., "state": ...}.
    std::function<nlohmann::json(const std::string &service, const BackendConfig &backend)>
        backend_sources;
    // The body of GET /api/v1/feeds: every feed's state, and the registration's.
    std::function<nlohmann::json()> feeds;
    // Publishes a validated config (a new snapshot): "" or why not, and then
    // nothing changed.
    std::function<std::string(Config next)> apply;
    // Reads the config file again, as SIGHUP does: "" or the loader's error;
    // on success, the new generation and number of services.
    std::function<std::string(uint64_t &generation, size_t &services)> reload;
    // The body of GET /api/v1/stats.
    std::function<nlohmann::json()> stats;
    // A backend's live state: {"health": "up"|"down"|"unchecked", "packets": N,
    // "bytes": N, "active_flows": N, "new_flows": N}.
    std::function<nlohmann::json(const std::string &service, const BackendConfig &backend)>
        backend_status;
    // The body of GET /metrics (Prometheus text).
    std::function<std::string()> metrics;
};

class ManagementApi {
public:
    explicit ManagementApi(ApiHooks hooks) : hooks_(std::move(hooks)) {}

    // Never throws: a failure inside is a 500.
    ApiResponse handle(const ApiRequest &request) const;

private:
    ApiHooks hooks_;
};

} // namespace sluice::ctrl
