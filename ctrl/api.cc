// The management API's routes (docs/api.md): a request is matched to a
// route (404), its method checked (405), a mutating call authorized (401,
// 403), its body parsed (400), and a change to the services built as JSON
// and validated by the config loader (422) before `apply` publishes it.
#include "ctrl/api.h"

#include <algorithm>
#include <exception>
#include <string_view>

#include "ctrl/api_request.h"
#include "ctrl/config_change.h"
#include "ctrl/config_emit.h"
#include "ctrl/yaml_reader.h"

namespace sluice::ctrl {

namespace {

constexpr std::string_view metrics_type = "text/plain; version=0.0.4";

// ---------------------------------------------------------------- responses

ApiResponse json_response(int status, const Json &body) {
    return {status, body.dump(2, ' ', false, Json::error_handler_t::replace) + "\n", {}};
}

// Every error body: {"error": "<sentence>", "field": "<key path>" or null}.
ApiResponse error_response(int status, const std::string &error,
                           const std::optional<std::string> &field = std::nullopt) {
    return json_response(status, {{"error", error}, {"field", field ? Json(*field) : Json()}});
}

// ---------------------------------------------------------------- routes

enum class Route { services, service, backends, backend, drain, undrain, config, reload, stats,
                   metrics, feeds };

struct Match {
    Route route;
    std::string service, backend;  // decoded path segments
};

std::optional<Match> match(const std::vector<std::string> &s) {
    const size_t n = s.size();
    if (n == 1 && s[0] == "metrics")
        return Match{Route::metrics, {}, {}};
    if (n < 3 || s[0] != "api" || s[1] != "v1")
        return std::nullopt;
    if (n == 3 && s[2] == "config")
        return Match{Route::config, {}, {}};
    if (n == 3 && s[2] == "reload")
        return Match{Route::reload, {}, {}};
    if (n == 3 && s[2] == "stats")
        return Match{Route::stats, {}, {}};
    if (n == 3 && s[2] == "feeds")
        return Match{Route::feeds, {}, {}};
    if (s[2] != "services")
        return std::nullopt;
    if (n == 3)
        return Match{Route::services, {}, {}};
    if (n == 4)
        return Match{Route::service, s[3], {}};
    if (s[4] != "backends")
        return std::nullopt;
    if (n == 5)
        return Match{Route::backends, s[3], {}};
    if (n == 6)
        return Match{Route::backend, s[3], s[5]};
    if (n == 7 && s[6] == "drain")
        return Match{Route::drain, s[3], s[5]};
    if (n == 7 && s[6] == "undrain")
        return Match{Route::undrain, s[3], s[5]};
    return std::nullopt;
}

std::vector<std::string_view> methods(Route route) {
    switch (route) {
    case Route::services: return {"GET", "POST"};
    case Route::service: return {"GET", "PUT", "DELETE"};
    case Route::backends: return {"GET", "POST"};
    case Route::backend: return {"GET", "PATCH", "DELETE"};
    case Route::drain:
    case Route::undrain:
    case Route::reload: return {"POST"};
    case Route::config:
    case Route::feeds:
    case Route::stats:
    case Route::metrics: return {"GET"};
    }
    return {};
}

std::optional<ApiResponse> parse_body(const std::string &text, Json &out) {
    if (auto refused = parse_json_body(text, out))
        return error_response(refused->status, refused->error, refused->field);
    return std::nullopt;
}

// ---------------------------------------------------------------- backends

// "198.18.1.11", "2001:db8::11", "198.18.1.11:8080" or "[2001:db8::11]:8080".
bool parse_backend_id(std::string_view id, IpAddress &address, std::optional<uint16_t> &port) {
    if (const auto bare = parse_ip_address(id)) {
        address = *bare;
        port.reset();
        return true;
    }
    const bool bracket = !id.empty() && id[0] == '[';
    const size_t colon = bracket ? id.find("]:") : id.rfind(':');
    if (colon == std::string_view::npos)
        return false;
    const auto host = parse_ip_address(bracket ? id.substr(1, colon - 1) : id.substr(0, colon));
    const auto number = parse_unsigned(id.substr(colon + (bracket ? 2 : 1)));
    if (!host || host->is_v4() == bracket || !number || *number > 65535)
        return false;
    address = *host;
    port = uint16_t(*number);
    return true;
}

std::string address_and_port(const BackendConfig &backend) {
    const std::string host = backend.address.to_string();
    return (backend.address.is_v4() ? host : "[" + host + "]") + ":" +
           std::to_string(backend.port);
}

// The port of a BACKEND body: a number or a string of digits, 0 when there
// is none; nothing when it is no port at all (the loader then says why).
std::optional<uint16_t> json_port(const Json &body) {
    if (!body.contains("port"))
        return 0;
    const Json &port = body["port"];
    std::optional<uint64_t> value;
    if (port.is_number_unsigned())
        value = port.get<uint64_t>();
    else if (port.is_string())
        value = parse_unsigned(port.get<std::string>());
    if (!value || *value > 65535)
        return std::nullopt;
    return uint16_t(*value);
}

// ---------------------------------------------------------------- the call

class Call {
public:
    Call(const ApiHooks &hooks, const ApiRequest &request)
        : hooks_(hooks), request_(request), running_(hooks.config()),
          published_(hooks.published ? hooks.published() : running_) {}

    ApiResponse run();

private:
    std::optional<ApiResponse> authorize() const;
    // The index of the service named `name`, or the 404 that says there is none.
    std::optional<ApiResponse> find_service(const std::string &name, size_t &index) const;
    std::optional<ApiResponse> find_backend(const ServiceConfig &service, const std::string &id,
                                            size_t &index) const;
    Json services_json() const;
    // Validates `services` (one of which, at `body_path`, the client sent)
    // and publishes the result; `reply` makes the success body from it.
    ApiResponse change(const Json &services, const std::string &body_path, int status,
                       const std::function<Json(const Config &)> &reply) const;
    Json backend_status(const ServiceConfig &service, const BackendConfig &backend) const;
    // The published service of a service that the config has.
    const ServiceConfig *published_service(const std::string &name) const;
    // "feed:registry, feed:dns": a published backend's sources, for messages.
    std::string backend_sources(const ServiceConfig &service, size_t backend) const;

    ApiResponse list_services() const;
    ApiResponse create_service() const;
    ApiResponse replace_service(size_t index) const;
    ApiResponse delete_service(size_t index) const;
    ApiResponse list_backends(size_t service) const;
    ApiResponse create_backend(size_t service) const;
    ApiResponse patch_backend(size_t service, size_t backend) const;
    ApiResponse delete_backend(size_t service, size_t backend, const std::string &id) const;
    ApiResponse set_drained(size_t service, size_t backend, bool drained) const;
    ApiResponse show_config() const;
    ApiResponse reload() const;

    const ApiHooks &hooks_;
    const ApiRequest &request_;
    const Config &running_;    // the config, file and API, that changes edit
    const Config &published_;  // with the discovery feeds' endpoints merged in
};

ApiResponse Call::run() {
    const std::string &path = request_.path;
    if (path.empty() || path[0] != '/')
        return error_response(404, "no such path: " + quoted(path));
    std::vector<std::string> segments;
    if (!path_segments(path, segments))
        return error_response(400, "malformed percent-encoding in the path " + quoted(path));
    const std::optional<Match> m = match(segments);
    if (!m)
        return error_response(404, "no such path: " + quoted(path));

    const std::vector<std::string_view> allowed = methods(m->route);
    if (std::find(allowed.begin(), allowed.end(), request_.method) == allowed.end()) {
        std::string allow;
        for (const std::string_view method : allowed)
            allow += (allow.empty() ? "" : ", ") + std::string(method);
        ApiResponse response = error_response(405, quoted(request_.method) + " is not allowed on " +
                                                        printable(path) + "; allowed: " + allow);
        response.headers.emplace_back("Allow", allow);
        return response;
    }
    if (request_.method != "GET")
        if (auto refused = authorize())
            return *refused;

    switch (m->route) {
    case Route::services:
        return request_.method == "GET" ? list_services() : create_service();
    case Route::config: return show_config();
    case Route::reload: return reload();
    case Route::stats:
        if (!hooks_.stats)
            return error_response(503, "statistics are not available");
        return json_response(200, Json(hooks_.stats()));
    case Route::feeds:
        if (!hooks_.feeds)
            return error_response(503, "discovery is not available");
        return json_response(200, Json(hooks_.feeds()));
    case Route::metrics: {
        if (!hooks_.metrics)
            return error_response(503, "metrics are not available");
        ApiResponse response{200, hooks_.metrics(), {}};
        response.content_type = metrics_type;
        return response;
    }
    default: break;
    }

    size_t service = 0;
    if (auto missing = find_service(m->service, service))
        return *missing;
    if (m->route == Route::service) {
        if (request_.method == "GET")
            return json_response(200, service_json(running_.services[service]));
        return request_.method == "PUT" ? replace_service(service) : delete_service(service);
    }
    if (m->route == Route::backends)
        return request_.method == "GET" ? list_backends(service) : create_backend(service);

    // Reads see every backend in service, feeds' included.
    if (request_.method == "GET") {
        const ServiceConfig *in_service = published_service(m->service);
        size_t backend = 0;
        if (auto missing = find_backend(*in_service, m->backend, backend))
            return *missing;
        return json_response(200, backend_status(*in_service, in_service->backends[backend]));
    }
    size_t backend = 0;
    if (auto missing = find_backend(running_.services[service], m->backend, backend)) {
        // A backend from a feed alone is the feed's to change.
        size_t fed = 0;
        if (missing->status == 404 &&
            !find_backend(*published_service(m->service), m->backend, fed))
            return error_response(
                409, "backend " + quoted(m->backend) + " of service " + m->service +
                         " comes from a discovery feed (" +
                         backend_sources(*published_service(m->service), fed) +
                         "): change it in its registry, or add it to the service's backends "
                         "to override the feed");
        return *missing;
    }
    switch (m->route) {
    case Route::drain: return set_drained(service, backend, true);
    case Route::undrain: return set_drained(service, backend, false);
    default: break;
    }
    return request_.method == "PATCH" ? patch_backend(service, backend)
                                      : delete_backend(service, backend, m->backend);
}

std::optional<ApiResponse> Call::authorize() const {
    const ApiConfig &api = running_.api;
    if (api.read_only())
        return error_response(403,
                              "the API is read-only: the config sets neither api.token nor "
                              "api.token_file",
                              "api.token");
    const std::string_view token =
        request_.authorization ? bearer_token(*request_.authorization) : std::string_view();
    if (token.empty()) {
        ApiResponse response =
            error_response(401, "this call needs an Authorization: Bearer <token> header");
        response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sluice\"");
        return response;
    }
    if (!same_secret(token, api.token))
        return error_response(403, "the bearer token is wrong");
    return std::nullopt;
}

std::optional<ApiResponse> Call::find_service(const std::string &name, size_t &index) const {
    for (index = 0; index < running_.services.size(); ++index)
        if (running_.services[index].name == name)
            return std::nullopt;
    return error_response(404, "no service is named " + quoted(name));
}

// A bare address names the backend at that address, when there is one; the
// ADDRESS:PORT form names one of several (docs/api.md, "Backend ids").
std::optional<ApiResponse> Call::find_backend(const ServiceConfig &service, const std::string &id,
                                              size_t &index) const {
    IpAddress address;
    std::optional<uint16_t> port;
    if (!parse_backend_id(id, address, port))
        return error_response(404, quoted(id) +
                                       " is not a backend id: expected ADDRESS, ADDRESS:PORT "
                                       "or [IPV6]:PORT");
    std::vector<size_t> found;
    for (size_t i = 0; i < service.backends.size(); ++i)
        if (service.backends[i].address == address && (!port || service.backends[i].port == *port))
            found.push_back(i);
    if (found.empty())
        return error_response(404, "service " + service.name + " has no backend " + quoted(id));
    if (found.size() > 1) {
        std::string ids;
        for (const size_t i : found)
            ids += (ids.empty() ? "" : ", ") + address_and_port(service.backends[i]);
        return error_response(409, "service " + service.name + " has " +
                                       std::to_string(found.size()) + " backends at " +
                                       address.to_string() + ": name one of " + ids);
    }
    index = found[0];
    return std::nullopt;
}

Json Call::services_json() const {
    Json services = Json::array();
    for (const ServiceConfig &service : running_.services)
        services.push_back(service_json(service));
    return services;
}

ApiResponse Call::change(const Json &services, const std::string &body_path, int status,
                         const std::function<Json(const Config &)> &reply) const {
    const ServicesCheck check = check_services(running_, services, body_path);
    if (!check.next)
        return error_response(422, check.error, check.field);
    // A call that changes nothing publishes nothing.
    if (check.next->services != running_.services) {
        if (!hooks_.apply)
            return error_response(503, "changes are not possible: nothing applies them");
        // Before apply: it replaces the config that running_ refers to.
        const Json body = reply(*check.next);
        if (const std::string refused = hooks_.apply(*check.next); !refused.empty())
            return error_response(500, "the change was not applied: " + refused);
        return json_response(status, body);
    }
    return json_response(status, reply(*check.next));
}

const ServiceConfig *Call::published_service(const std::string &name) const {
    for (const ServiceConfig &service : published_.services)
        if (service.name == name)
            return &service;
    // A change is being published: the config's own is what there is.
    for (const ServiceConfig &service : running_.services)
        if (service.name == name)
            return &service;
    return nullptr;
}

std::string Call::backend_sources(const ServiceConfig &service, size_t backend) const {
    std::string names;
    if (hooks_.backend_sources) {
        const nlohmann::json sources =
            hooks_.backend_sources(service.name, service.backends[backend]);
        for (const auto &source : sources)
            if (source.is_object() && source.contains("source"))
                names += (names.empty() ? "" : ", ") + source["source"].get<std::string>();
    }
    return names.empty() ? "a feed" : names;
}

Json Call::backend_status(const ServiceConfig &service, const BackendConfig &backend) const {
    Json status = backend_json(backend);
    if (hooks_.backend_sources)
        status["sources"] = Json(hooks_.backend_sources(service.name, backend));
    if (!hooks_.backend_status) {
        status["health"] = "unchecked";
        return status;
    }
    const nlohmann::json live = hooks_.backend_status(service.name, backend);
    if (live.is_object())
        for (const auto &[key, value] : live.items())
            status[key] = value;
    return status;
}

ApiResponse Call::list_services() const {
    return json_response(200, {{"services", services_json()}});
}

ApiResponse Call::create_service() const {
    Json body;
    if (auto refused = parse_body(request_.body, body))
        return *refused;
    if (body.is_object() && body.contains("name") && body["name"].is_string()) {
        const std::string name = body["name"].get<std::string>();
        for (const ServiceConfig &service : running_.services)
            if (service.name == name)
                return error_response(409,
                                      "a service named " + quoted(name) +
                                          " exists; PUT /api/v1/services/" + name +
                                          " changes it",
                                      "name");
    }
    Json services = services_json();
    const size_t index = services.size();
    services.push_back(body);
    ApiResponse response =
        change(services, "services[" + std::to_string(index) + "]", 201,
               [&](const Config &next) { return service_json(next.services[index]); });
    if (response.status == 201 && body.contains("name") && body["name"].is_string())
        response.headers.emplace_back("Location",
                                      "/api/v1/services/" + body["name"].get<std::string>());
    return response;
}

ApiResponse Call::replace_service(size_t index) const {
    Json body;
    if (auto refused = parse_body(request_.body, body))
        return *refused;
    const std::string &name = running_.services[index].name;
    if (body.is_object()) {
        if (!body.contains("name")) {
            // The path names it: the body need not.
            Json named = {{"name", name}};
            for (const auto &[key, value] : body.items())
                named[key] = value;
            body = std::move(named);
        } else if (body["name"].is_string() && body["name"].get<std::string>() != name) {
            return error_response(422,
                                  "the body names " + quoted(body["name"].get<std::string>()) +
                                      ", the path " + quoted(name) +
                                      ": a service cannot be renamed (create the new one, then "
                                      "delete the old)",
                                  "name");
        }
    }
    Json services = services_json();
    services[index] = body;
    return change(services, "services[" + std::to_string(index) + "]", 200,
                  [&](const Config &next) { return service_json(next.services[index]); });
}

ApiResponse Call::delete_service(size_t index) const {
    Json services = services_json();
    services.erase(index);
    const std::string name = running_.services[index].name;
    return change(services, "", 200, [&](const Config &) { return Json{{"deleted", name}}; });
}

ApiResponse Call::list_backends(size_t index) const {
    const ServiceConfig &service = *published_service(running_.services[index].name);
    Json backends = Json::array();
    for (const BackendConfig &backend : service.backends)
        backends.push_back(backend_status(service, backend));
    return json_response(200, {{"backends", backends}});
}

ApiResponse Call::create_backend(size_t service) const {
    Json body;
    if (auto refused = parse_body(request_.body, body))
        return *refused;
    const ServiceConfig &s = running_.services[service];
    // The loader would say "duplicate backend" (422); the contract says 409.
    if (body.is_object() && body.contains("address") && body["address"].is_string()) {
        const auto address = parse_ip_address(body["address"].get<std::string>());
        const auto port = json_port(body);
        for (const BackendConfig &backend : s.backends)
            if (address && port && backend.address == *address && backend.port == *port)
                return error_response(409,
                                      "service " + s.name + " has backend " +
                                          address_and_port(backend) +
                                          " already; PATCH changes its weight",
                                      "address");
    }
    Json services = services_json();
    Json &backends = services[service]["backends"];
    const size_t index = backends.size();
    backends.push_back(body);
    return change(services,
                  "services[" + std::to_string(service) + "].backends[" +
                      std::to_string(index) + "]",
                  201, [&](const Config &next) {
                      return backend_json(next.services[service].backends[index]);
                  });
}

ApiResponse Call::patch_backend(size_t service, size_t backend) const {
    Json body;
    if (auto refused = parse_body(request_.body, body))
        return *refused;
    if (!body.is_object())
        return error_response(422, "expected a map of weight and/or drained, got " +
                                       std::string(body.is_array() ? "a sequence" : "a scalar"));
    if (body.empty())
        return error_response(422, "nothing to change: expected weight and/or drained");
    Json services = services_json();
    Json &target = services[service]["backends"][backend];
    for (const auto &[key, value] : body.items()) {
        if (key != "weight" && key != "drained")
            return error_response(422, "unknown key, expected one of: weight, drained",
                                  printable(key));
        target[key] = value;
    }
    return change(services,
                  "services[" + std::to_string(service) + "].backends[" +
                      std::to_string(backend) + "]",
                  200, [&](const Config &next) {
                      return backend_json(next.services[service].backends[backend]);
                  });
}

ApiResponse Call::delete_backend(size_t service, size_t backend, const std::string &id) const {
    Json services = services_json();
    services[service]["backends"].erase(backend);
    return change(services, "", 200, [&](const Config &) { return Json{{"deleted", id}}; });
}

ApiResponse Call::set_drained(size_t service, size_t backend, bool drained) const {
    Json services = services_json();
    services[service]["backends"][backend]["drained"] = drained;
    return change(services,
                  "services[" + std::to_string(service) + "].backends[" +
                      std::to_string(backend) + "]",
                  200, [&](const Config &next) {
                      return backend_json(next.services[service].backends[backend]);
                  });
}

ApiResponse Call::show_config() const {
    Json config = config_json(running_);
    // Anyone may GET; secrets are for those who know them.
    if (config["api"].contains("token"))
        config["api"]["token"] = "<redacted>";
    Json &discovery = config["discovery"];
    for (Json &feed : discovery["feeds"])
        if (feed.contains("password"))
            feed["password"] = "<redacted>";
    if (discovery.contains("registration") && discovery["registration"].contains("password"))
        discovery["registration"]["password"] = "<redacted>";
    return json_response(200, config);
}

ApiResponse Call::reload() const {
    if (!hooks_.reload)
        return error_response(503, "reloading is not available");
    uint64_t generation = 0;
    size_t services = 0;
    if (const std::string refused = hooks_.reload(generation, services); !refused.empty())
        return error_response(422, refused);
    return json_response(200, {{"generation", generation}, {"services", services}});
}

} // namespace

ApiResponse ManagementApi::handle(const ApiRequest &request) const {
    try {
        if (!hooks_.config)
            return error_response(503, "the API has no config to serve");
        return Call(hooks_, request).run();
    } catch (const std::exception &e) {
        return error_response(500, std::string("internal error: ") + e.what());
    }
}

} // namespace sluice::ctrl
