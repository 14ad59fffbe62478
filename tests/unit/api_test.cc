// The management API's routes, from request to response. The gateway here is
// a Config in a variable: `apply` replaces it, `reload` loads another text.
// Every change really goes through the API's validation (the config loader);
// a refused change must leave the config as it was and `apply` uncalled.
#include "ctrl/api.h"

#include <gtest/gtest.h>

#include "ctrl/api_request.h"
#include "ctrl/config_emit.h"

namespace sluice::ctrl {
namespace {

constexpr const char *token = "0123456789abcdef-secret";

constexpr const char *gateway_yaml = R"(
ports:
  - name: back
    device: net_null0
    addresses: [198.18.1.1/24, "2001:db8:0:2::1/64"]
    exception_path: {tap: tb}
services:
  - name: web
    vip: 198.18.10.1
    protocol: tcp
    port: 80
    local_addresses: [198.18.1.100]
    backends: [{address: 198.18.1.11}, {address: 198.18.1.12, weight: 2}]
  - name: dns
    vip: 198.18.10.2
    protocol: udp
    port: 53
    mode: nat
    backends: [{address: 198.18.1.11, port: 5353}, {address: 198.18.1.11, port: 5354}]
  - name: web6
    vip: "2001:db8:10::1"
    protocol: tcp
    port: 80
    mode: nat
    backends: [{address: "2001:db8:0:2::11", port: 8080}, {address: "2001:db8:0:2::12"}]
api:
  token: 0123456789abcdef-secret
)";

// The running gateway, as far as the API sees it.
class ApiTest : public testing::Test {
protected:
    ApiTest() : config(load_config_text(gateway_yaml, "gateway.yaml", 4)) {
        ApiHooks hooks;
        hooks.config = [this]() -> const Config & { return config; };
        hooks.apply = [this](Config next) {
            ++applied;
            if (!refuse_apply.empty())
                return refuse_apply;
            config = std::move(next);
            return std::string();
        };
        hooks.reload = [this](uint64_t &generation, size_t &services) {
            try {
                config = load_config_text(reload_yaml, "gateway.yaml", 4);
            } catch (const ConfigError &e) {
                return std::string(e.what());
            }
            generation = ++generations;
            services = config.services.size();
            return std::string();
        };
        hooks.stats = [] { return nlohmann::json{{"workers", {{{"rx_packets", 7}}}}}; };
        hooks.backend_status = [](const std::string &service, const BackendConfig &backend) {
            return nlohmann::json{{"health", backend.weight == 2 ? "down" : "up"},
                                  {"packets", service.size()},
                                  {"bytes", 100},
                                  {"active_flows", 1},
                                  {"new_flows", 2}};
        };
        hooks.metrics = [] { return std::string("sluice_up 1\n"); };
        api = std::make_unique<ManagementApi>(std::move(hooks));
        before = config;
    }

    ApiResponse call(const std::string &method, const std::string &path,
                     const std::string &body = "",
                     std::optional<std::string> authorization = std::string("Bearer ") + token) {
        return api->handle({method, path, "", body, std::move(authorization)});
    }
    static Json json(const ApiResponse &response) { return Json::parse(response.body); }

    // A refused call: its status and error body, and nothing applied.
    void expect_refused(const ApiResponse &response, int status,
                        const std::optional<std::string> &field, const std::string &error) {
        EXPECT_EQ(response.status, status) << response.body;
        const Json body = json(response);
        EXPECT_EQ(body.size(), 2u) << response.body;
        if (field)
            EXPECT_EQ(body["field"], *field) << response.body;
        else
            EXPECT_TRUE(body["field"].is_null()) << response.body;
        EXPECT_NE(body["error"].get<std::string>().find(error), std::string::npos)
            << response.body;
        EXPECT_EQ(applied, 0);
        EXPECT_EQ(config, before);
    }

    std::string header(const ApiResponse &response, const std::string &name) {
        for (const auto &[key, value] : response.headers)
            if (key == name)
                return value;
        return "(none)";
    }

    Config config, before;
    int applied = 0;
    std::string refuse_apply;
    std::string reload_yaml;
    uint64_t generations = 1;
    std::unique_ptr<ManagementApi> api;
};

// ------------------------------------------------------------------ services

TEST_F(ApiTest, ListsServices) {
    const ApiResponse r = call("GET", "/api/v1/services", "", std::nullopt);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "application/json");
    const Json body = json(r);
    ASSERT_EQ(body["services"].size(), 3u);
    for (size_t i = 0; i < 3; ++i)
        EXPECT_EQ(body["services"][i], service_json(config.services[i]));
    EXPECT_EQ(body["services"][0]["name"], "web");
    EXPECT_EQ(body["services"][0]["backends"][1]["weight"], 2);
}

TEST_F(ApiTest, ShowsOneService) {
    const ApiResponse r = call("GET", "/api/v1/services/dns", "", std::nullopt);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(json(r), service_json(config.services[1]));
    EXPECT_EQ(json(r)["mode"], "nat");
}

TEST_F(ApiTest, UnknownServiceIs404) {
    expect_refused(call("GET", "/api/v1/services/nope"), 404, std::nullopt,
                   "no service is named \"nope\"");
    expect_refused(call("PUT", "/api/v1/services/nope", "{}"), 404, std::nullopt, "nope");
    expect_refused(call("DELETE", "/api/v1/services/nope"), 404, std::nullopt, "nope");
    expect_refused(call("POST", "/api/v1/services/nope/backends", "{}"), 404, std::nullopt,
                   "nope");
}

TEST_F(ApiTest, CreatesAServiceWithItsDefaults) {
    const ApiResponse r = call("POST", "/api/v1/services", R"({
        "name": "api", "vip": "198.18.10.9", "protocol": "tcp", "port": 8080, "mode": "nat",
        "health_check": {"type": "http", "path": "/healthz"},
        "backends": [{"address": "198.18.1.13", "drained": true}]})");
    ASSERT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(header(r, "Location"), "/api/v1/services/api");
    EXPECT_EQ(applied, 1);
    ASSERT_EQ(config.services.size(), 4u);
    const ServiceConfig &created = config.services[3];
    EXPECT_EQ(created.name, "api");
    EXPECT_EQ(created.port, 8080);
    EXPECT_EQ(created.maglev_size, 65537u);
    ASSERT_TRUE(created.health_check);
    EXPECT_EQ(created.health_check->path, "/healthz");
    ASSERT_EQ(created.backends.size(), 1u);
    EXPECT_TRUE(created.backends[0].drained);
    // The service as it runs: every key, defaults filled in.
    EXPECT_EQ(json(r), service_json(created));
    EXPECT_EQ(json(r)["removed_backend_flows"], "keep");
    EXPECT_EQ(json(r)["health_check"]["expected_status"], Json({"200-399"}));
    // The rest of the config is the running one.
    Config rest = config;
    rest.services.pop_back();
    EXPECT_EQ(rest, before);
}

TEST_F(ApiTest, ServiceNameTakenIs409) {
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "web", "vip": "198.18.10.9", "protocol": "tcp"})"),
                   409, "name", "a service named \"web\" exists");
}

TEST_F(ApiTest, MalformedJsonIs400) {
    expect_refused(call("POST", "/api/v1/services", R"({"name": "x",)"), 400, std::nullopt,
                   "malformed JSON: parse error at line 1, column 14");
    expect_refused(call("POST", "/api/v1/services", ""), 400, std::nullopt, "malformed JSON");
    expect_refused(call("POST", "/api/v1/services", "{\"name\": \"\xff\"}"), 400, std::nullopt,
                   "malformed JSON");
    expect_refused(call("PATCH", "/api/v1/services/web/backends/198.18.1.11", "weight=3"), 400,
                   std::nullopt, "malformed JSON");
    expect_refused(call("PUT", "/api/v1/services/web", "[1e400]"), 400, std::nullopt,
                   "malformed JSON: number overflow");
    expect_refused(call("POST", "/api/v1/services", std::string(40, '[') + std::string(40, ']')),
                   400, std::nullopt, "nested deeper than 32 levels");
}

TEST_F(ApiTest, UnknownFieldIs422WithTheLoadersWords) {
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "x", "vip": "198.18.10.9", "protocol": "tcp",
                            "colour": "blue"})"),
                   422, "colour",
                   "unknown key, expected one of: name, vip, protocol, port, mode, "
                   "local_addresses, encapsulation, gue_port, maglev_size, "
                   "removed_backend_flows, timeouts, health_check, backends");
    // Only service keys: a section of the config is no service key.
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "x", "vip": "198.18.10.9", "protocol": "tcp",
                            "eal": {"memory_mb": 64}})"),
                   422, "eal", "unknown key");
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "x", "vip": "198.18.10.9", "protocol": "tcp", "mode": "nat",
                            "backends": [{"address": "198.18.1.13", "weigth": 2}]})"),
                   422, "backends[0].weigth",
                   "unknown key, expected one of: address, port, weight, drained");
}

TEST_F(ApiTest, WrongTypeIs422) {
    const std::string start =
        R"({"name": "x", "vip": "198.18.10.9", "protocol": "tcp", "mode": "nat", )";
    expect_refused(call("POST", "/api/v1/services", start + R"("port": "eighty"})"), 422, "port",
                   "expected a port (0: every port) in 0..65535, got \"eighty\"");
    expect_refused(call("POST", "/api/v1/services", start + R"("port": true})"), 422, "port",
                   "got \"true\"");
    expect_refused(call("POST", "/api/v1/services", start + R"("port": 80.5})"), 422, "port",
                   "got \"80.5\"");
    expect_refused(call("POST", "/api/v1/services", start + R"("port": null})"), 422, "port",
                   "got nothing");
    expect_refused(call("POST", "/api/v1/services", start + R"("backends": {}})"), 422,
                   "backends", "expected a sequence, got a map");
    expect_refused(call("POST", "/api/v1/services",
                        start + R"("health_check": {"type": "http", "rise": -1}})"),
                   422, "health_check.rise", "expected a number of checks in 1..100, got \"-1\"");
    expect_refused(call("POST", "/api/v1/services", "[1, 2]"), 422, std::nullopt,
                   "expected a map, got a sequence");
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": ["x"], "vip": "198.18.10.9", "protocol": "tcp"})"),
                   422, "name", "expected a service name of 1..63 characters of a-z, 0-9, '_', "
                                "'-', got a sequence");
}

TEST_F(ApiTest, MissingKeyIs422) {
    expect_refused(call("POST", "/api/v1/services", R"({"name": "x", "vip": "198.18.10.9"})"),
                   422, "protocol", "required key is missing");
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "x", "vip": "198.18.10.9", "protocol": "tcp"})"),
                   422, "local_addresses",
                   "required key is missing: fullnat needs at least one SNAT address");
}

TEST_F(ApiTest, BadAddressIs422) {
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "x", "vip": "198.18.10.300", "protocol": "tcp"})"),
                   422, "vip", "expected an IPv4 or IPv6 address");
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "x", "vip": "198.18.1.1", "protocol": "tcp"})"),
                   422, "vip", "VIP 198.18.1.1 is a port's own address");
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "x", "vip": "198.18.10.9", "protocol": "tcp", "mode": "nat",
                            "backends": [{"address": "198.18.1.13"}, {"address": "198.18.7.7"}]})"),
                   422, "backends[1].address",
                   "198.18.7.7 is on no port's prefix and no route leads there");
}

TEST_F(ApiTest, DuplicateKeyIs422) {
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "x", "vip": "198.18.10.9", "protocol": "tcp", "mode": "nat",
                            "backends": [{"address": "198.18.1.13"},
                                         {"address": "198.18.1.14", "weight": 1, "weight": 2}]})"),
                   422, "backends[1].weight", "duplicate key");
    expect_refused(call("PATCH", "/api/v1/services/web/backends/198.18.1.11",
                        R"({"weight": 1, "weight": 2})"),
                   422, "weight", "duplicate key");
}

TEST_F(ApiTest, DuplicateVipAndPortIs422) {
    // The new service is the second of the two: the loader blames its VIP.
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "web2", "vip": "198.18.10.1", "protocol": "tcp",
                            "port": 80, "mode": "nat"})"),
                   422, "vip",
                   "duplicate service 198.18.10.1 tcp port 80, first defined at services[0] "
                   "(web)");
    // The changed service is the first: the other one is blamed, by its
    // place in the whole config.
    expect_refused(call("PUT", "/api/v1/services/web",
                        R"({"vip": "198.18.10.2", "protocol": "udp", "port": 53,
                            "mode": "nat"})"),
                   422, "services[1].vip",
                   "duplicate service 198.18.10.2 udp port 53, first defined at services[0] "
                   "(web)");
}

TEST_F(ApiTest, DuplicateBackendsInABody) {
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "x", "vip": "198.18.10.9", "protocol": "tcp", "mode": "nat",
                            "backends": [{"address": "198.18.1.13"},
                                         {"address": "198.18.1.13"}]})"),
                   422, "backends[1]",
                   "duplicate backend '198.18.1.13 port 0', first defined at backends[0]");
}

TEST_F(ApiTest, NothingIsAppliedInPart) {
    // The first backend is fine, the second is not: no service, no backend.
    expect_refused(call("PUT", "/api/v1/services/web",
                        R"({"vip": "198.18.10.1", "protocol": "tcp", "port": 80,
                            "local_addresses": ["198.18.1.100"],
                            "backends": [{"address": "198.18.1.13"},
                                         {"address": "198.18.1.14", "weight": 70000}]})"),
                   422, "backends[1].weight", "expected a weight in 0..65535, got 70000");
}

TEST_F(ApiTest, ReplacesAService) {
    const ApiResponse r = call("PUT", "/api/v1/services/web",
                               R"({"vip": "198.18.10.1", "protocol": "tcp", "port": 80,
                                   "local_addresses": ["198.18.1.100"],
                                   "removed_backend_flows": "reset",
                                   "backends": [{"address": "198.18.1.13", "weight": 5}]})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(applied, 1);
    const ServiceConfig &web = config.services[0];
    EXPECT_EQ(web.name, "web");  // from the path
    EXPECT_EQ(web.removed_backend_flows, RemovedBackendFlows::reset);
    ASSERT_EQ(web.backends.size(), 1u);
    EXPECT_EQ(web.backends[0].weight, 5u);
    EXPECT_EQ(json(r), service_json(web));
    EXPECT_EQ(config.services[1], before.services[1]);

    // What GET gives, PUT takes back unchanged: nothing to publish.
    const ApiResponse same = call("PUT", "/api/v1/services/web", json(r).dump());
    EXPECT_EQ(same.status, 200) << same.body;
    EXPECT_EQ(applied, 1);
}

TEST_F(ApiTest, ServiceCannotBeRenamed) {
    expect_refused(call("PUT", "/api/v1/services/web",
                        R"({"name": "www", "vip": "198.18.10.1", "protocol": "tcp"})"),
                   422, "name", "a service cannot be renamed");
}

TEST_F(ApiTest, DeletesAService) {
    const ApiResponse r = call("DELETE", "/api/v1/services/dns");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json(r), Json({{"deleted", "dns"}}));
    EXPECT_EQ(applied, 1);
    ASSERT_EQ(config.services.size(), 2u);
    EXPECT_EQ(config.services[1].name, "web6");
    EXPECT_EQ(call("GET", "/api/v1/services/dns").status, 404);
}

// ------------------------------------------------------------------ backends

TEST_F(ApiTest, ListsBackendsWithTheirStatus) {
    const ApiResponse r = call("GET", "/api/v1/services/web/backends", "", std::nullopt);
    ASSERT_EQ(r.status, 200) << r.body;
    const Json backends = json(r)["backends"];
    ASSERT_EQ(backends.size(), 2u);
    // The hook's keys follow the backend's (in the hook's order).
    EXPECT_EQ(nlohmann::json(backends[0]),
              nlohmann::json::parse(R"({"address": "198.18.1.11", "port": 0, "weight": 1,
                  "drained": false, "health": "up", "packets": 3, "bytes": 100,
                  "active_flows": 1, "new_flows": 2})"));
    EXPECT_EQ(backends[0].begin().key(), "address");
    EXPECT_EQ(backends[1]["health"], "down");
}

TEST_F(ApiTest, ShowsOneBackendByItsId) {
    ApiResponse r = call("GET", "/api/v1/services/web/backends/198.18.1.12");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json(r)["weight"], 2);
    EXPECT_EQ(json(r)["health"], "down");
    // ADDRESS:PORT works even when the address alone would do.
    EXPECT_EQ(call("GET", "/api/v1/services/web/backends/198.18.1.12:0").status, 200);
    r = call("GET", "/api/v1/services/dns/backends/198.18.1.11:5354");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json(r)["port"], 5354);
    // IPv6, bare and with a port, raw or percent-encoded.
    r = call("GET", "/api/v1/services/web6/backends/2001:db8:0:2::12");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json(r)["address"], "2001:db8:0:2::12");
    r = call("GET", "/api/v1/services/web6/backends/%5B2001:db8:0:2::11%5D%3A8080");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json(r)["port"], 8080);
    EXPECT_EQ(call("GET", "/api/v1/services/web6/backends/[2001:db8:0:2::11]:8080").status, 200);
}

TEST_F(ApiTest, AmbiguousBackendIdIs409) {
    expect_refused(call("GET", "/api/v1/services/dns/backends/198.18.1.11"), 409, std::nullopt,
                   "service dns has 2 backends at 198.18.1.11: name one of 198.18.1.11:5353, "
                   "198.18.1.11:5354");
    expect_refused(call("DELETE", "/api/v1/services/dns/backends/198.18.1.11"), 409,
                   std::nullopt, "name one of");
}

TEST_F(ApiTest, UnknownBackendIs404) {
    expect_refused(call("GET", "/api/v1/services/web/backends/198.18.1.99"), 404, std::nullopt,
                   "service web has no backend \"198.18.1.99\"");
    expect_refused(call("GET", "/api/v1/services/web/backends/198.18.1.11:80"), 404,
                   std::nullopt, "no backend");
    expect_refused(call("PATCH", "/api/v1/services/web/backends/db1", R"({"weight": 1})"), 404,
                   std::nullopt, "\"db1\" is not a backend id: expected ADDRESS, ADDRESS:PORT");
    expect_refused(call("POST", "/api/v1/services/web/backends/[198.18.1.11]:0/drain"), 404,
                   std::nullopt, "is not a backend id");
}

TEST_F(ApiTest, AddsABackend) {
    const ApiResponse r = call("POST", "/api/v1/services/web/backends",
                               R"({"address": "198.18.1.13", "weight": 4})");
    ASSERT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(json(r), Json::parse(R"({"address": "198.18.1.13", "port": 0, "weight": 4,
                                       "drained": false})"));
    EXPECT_EQ(applied, 1);
    ASSERT_EQ(config.services[0].backends.size(), 3u);
    EXPECT_EQ(config.services[0].backends[2].weight, 4u);
}

TEST_F(ApiTest, BackendThatExistsIs409) {
    expect_refused(call("POST", "/api/v1/services/web/backends", R"({"address": "198.18.1.11"})"),
                   409, "address", "service web has backend 198.18.1.11:0 already");
    expect_refused(call("POST", "/api/v1/services/dns/backends",
                        R"({"address": "198.18.1.11", "port": "5353"})"),
                   409, "address", "198.18.1.11:5353 already");
    // Another port of the same address is another backend.
    EXPECT_EQ(call("POST", "/api/v1/services/dns/backends",
                   R"({"address": "198.18.1.11", "port": 5355})")
                  .status,
              201);
}

TEST_F(ApiTest, BadBackendIs422) {
    const std::string path = "/api/v1/services/web/backends";
    expect_refused(call("POST", path, R"({"address": "not-an-address"})"), 422, "address",
                   "expected an IPv4 or IPv6 address like 198.18.10.1 or 2001:db8::10, got "
                   "\"not-an-address\"");
    expect_refused(call("POST", path, R"({"address": "2001:db8:0:2::13"})"), 422, "address",
                   "expected an IPv4 address like the VIP, got 2001:db8:0:2::13");
    expect_refused(call("POST", path, R"({"address": "198.18.1.13", "colour": "red"})"), 422,
                   "colour", "unknown key, expected one of: address, port, weight, drained");
    expect_refused(call("POST", path, R"({"address": "198.18.1.13", "weight": [1]})"), 422,
                   "weight", "expected a weight in 0..65535, got a sequence");
    expect_refused(call("POST", path, R"({"address": "198.18.1.13", "drained": "yes"})"), 422,
                   "drained", "expected one of false, true, got \"yes\"");
    expect_refused(call("POST", path, R"({"weight": 1})"), 422, "address",
                   "required key is missing");
    expect_refused(call("POST", path, R"("198.18.1.13")"), 422, std::nullopt,
                   "expected a map, got \"198.18.1.13\"");
    // The service's rules hold for its new backend.
    expect_refused(call("POST", "/api/v1/services/web6/backends",
                        R"({"address": "2001:db8:0:2::13", "port": 70000})"),
                   422, "port", "expected a port (0: the client's) in 0..65535, got 70000");
}

TEST_F(ApiTest, PatchesWeightAndDrained) {
    ApiResponse r = call("PATCH", "/api/v1/services/web/backends/198.18.1.11", R"({"weight": 7})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json(r), Json::parse(R"({"address": "198.18.1.11", "port": 0, "weight": 7,
                                       "drained": false})"));
    EXPECT_EQ(config.services[0].backends[0].weight, 7u);
    r = call("PATCH", "/api/v1/services/dns/backends/198.18.1.11:5354",
             R"({"drained": true, "weight": 0})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(config.services[1].backends[1].drained);
    EXPECT_EQ(config.services[1].backends[1].weight, 0u);
    EXPECT_FALSE(config.services[1].backends[0].drained);
    EXPECT_EQ(applied, 2);
}

TEST_F(ApiTest, PatchTakesOnlyWeightAndDrained) {
    const std::string path = "/api/v1/services/web/backends/198.18.1.11";
    expect_refused(call("PATCH", path, R"({"weight": 3, "port": 8080})"), 422, "port",
                   "unknown key, expected one of: weight, drained");
    expect_refused(call("PATCH", path, R"({"address": "198.18.1.13"})"), 422, "address",
                   "unknown key");
    expect_refused(call("PATCH", path, R"({"weight": 70000})"), 422, "weight",
                   "expected a weight in 0..65535, got 70000");
    expect_refused(call("PATCH", path, R"({"weight": "heavy"})"), 422, "weight",
                   "got \"heavy\"");
    expect_refused(call("PATCH", path, R"({"drained": 1})"), 422, "drained",
                   "expected one of false, true, got \"1\"");
    expect_refused(call("PATCH", path, "{}"), 422, std::nullopt, "nothing to change");
    expect_refused(call("PATCH", path, "[]"), 422, std::nullopt,
                   "expected a map of weight and/or drained, got a sequence");
}

TEST_F(ApiTest, DeletesABackend) {
    const ApiResponse r = call("DELETE", "/api/v1/services/web6/backends/2001:db8:0:2::11");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json(r), Json({{"deleted", "2001:db8:0:2::11"}}));
    ASSERT_EQ(config.services[2].backends.size(), 1u);
    EXPECT_EQ(config.services[2].backends[0].address.to_string(), "2001:db8:0:2::12");
}

TEST_F(ApiTest, DrainsAndUndrains) {
    ApiResponse r = call("POST", "/api/v1/services/web/backends/198.18.1.12/drain");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json(r)["drained"], true);
    EXPECT_EQ(json(r)["weight"], 2);  // kept for undrain
    EXPECT_TRUE(config.services[0].backends[1].drained);
    EXPECT_EQ(applied, 1);
    // Draining a drained backend changes nothing and publishes nothing.
    EXPECT_EQ(call("POST", "/api/v1/services/web/backends/198.18.1.12/drain").status, 200);
    EXPECT_EQ(applied, 1);
    r = call("POST", "/api/v1/services/web/backends/198.18.1.12/undrain");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json(r)["drained"], false);
    EXPECT_EQ(config, before);
    EXPECT_EQ(applied, 2);
}

// --------------------------------------------- whole-config rules, warnings

TEST_F(ApiTest, ServiceRulesHoldThroughTheApi) {
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "all", "vip": "198.18.10.9", "protocol": "tcp", "mode": "nat",
                            "backends": [{"address": "198.18.1.13", "port": 8080}]})"),
                   422, "backends[0].port",
                   "a service on every port keeps the client's port: leave port out");
    expect_refused(call("POST", "/api/v1/services",
                        R"({"name": "d", "vip": "198.18.10.9", "protocol": "tcp", "port": 80,
                            "mode": "dsr", "maglev_size": 7,
                            "backends": [{"address": "198.18.1.11"}, {"address": "198.18.1.12"},
                              {"address": "198.18.1.13"}, {"address": "198.18.1.14"},
                              {"address": "198.18.1.15"}, {"address": "198.18.1.16"},
                              {"address": "198.18.1.17"}, {"address": "198.18.1.18"}]})"),
                   422, "backends", "8 backends do not fit a Maglev table of 7 slots");
}

TEST_F(ApiTest, WarningsReachApply) {
    Config published;
    ApiHooks hooks;
    hooks.config = [this]() -> const Config & { return config; };
    hooks.apply = [&](Config next) {
        published = std::move(next);
        return std::string();
    };
    const ManagementApi small(hooks);
    const ApiResponse r = small.handle({"POST", "/api/v1/services", "",
                                        R"({"name": "tiny", "vip": "198.18.10.9",
                                            "protocol": "tcp", "mode": "nat", "maglev_size": 7,
                                            "backends": [{"address": "198.18.1.13"}]})",
                                        std::string("Bearer ") + token});
    ASSERT_EQ(r.status, 201) << r.body;
    ASSERT_EQ(published.warnings.size(), 1u);
    EXPECT_EQ(published.warnings[0], "services[3].maglev_size: 7 is less than 100 x 1 backend: "
                                     "shares will be uneven");
}

TEST_F(ApiTest, ApplyThatFailsChangesNothing) {
    refuse_apply = "the snapshot could not be built";
    const ApiResponse r = call("DELETE", "/api/v1/services/web");
    EXPECT_EQ(r.status, 500);
    EXPECT_EQ(json(r)["error"], "the change was not applied: the snapshot could not be built");
    EXPECT_EQ(applied, 1);
    EXPECT_EQ(config, before);
}

TEST_F(ApiTest, OtherSectionsStayAsTheyRun) {
    // Changed behind the loader's back: the API must not revalidate (or
    // re-read) what it cannot change.
    config.api.token_file = "/nonexistent/token";
    config.cores.workers = {5, 6, 7};  // more lcores than this test's CPUs
    before = config;
    const ApiResponse r = call("POST", "/api/v1/services/web/backends/198.18.1.11/drain");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(config.api, before.api);
    EXPECT_EQ(config.cores, before.cores);
    EXPECT_TRUE(config.services[0].backends[0].drained);
}

// ------------------------------------------------------ config, reload, stats

TEST_F(ApiTest, ShowsTheEffectiveConfigWithoutTheToken) {
    const ApiResponse r = call("GET", "/api/v1/config", "", std::nullopt);
    ASSERT_EQ(r.status, 200);
    Json expected = config_json(config);
    expected["api"]["token"] = "<redacted>";
    EXPECT_EQ(json(r), expected);
    EXPECT_EQ(r.body.find(token), std::string::npos);
}

TEST_F(ApiTest, Reloads) {
    reload_yaml = std::string(gateway_yaml).substr(0, std::string(gateway_yaml).find("services:")) +
                  "api: {token: " + token + "}\n";
    const ApiResponse r = call("POST", "/api/v1/reload");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json(r), Json({{"generation", 2}, {"services", 0}}));
    EXPECT_TRUE(config.services.empty());
}

TEST_F(ApiTest, ReloadOfABadFileIs422) {
    reload_yaml = "ports: []\n";
    expect_refused(call("POST", "/api/v1/reload"), 422, std::nullopt,
                   "gateway.yaml:1:8: ports: expected at least one port");
}

TEST_F(ApiTest, StatsAndMetrics) {
    ApiResponse r = call("GET", "/api/v1/stats", "", std::nullopt);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(json(r)["workers"][0]["rx_packets"], 7);
    r = call("GET", "/metrics", "", std::nullopt);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "text/plain; version=0.0.4");
    EXPECT_EQ(r.body, "sluice_up 1\n");
}

// ------------------------------------------------------- auth, paths, methods

TEST_F(ApiTest, MutatingCallsNeedTheToken) {
    const std::string path = "/api/v1/services/web/backends/198.18.1.11/drain";
    ApiResponse r = call("POST", path, "", std::nullopt);
    expect_refused(r, 401, std::nullopt, "Authorization: Bearer");
    EXPECT_EQ(header(r, "WWW-Authenticate"), "Bearer realm=\"sluice\"");
    r = call("POST", path, "", std::string("Basic dXNlcjpwYXNz"));
    expect_refused(r, 401, std::nullopt, "Authorization: Bearer");
    expect_refused(call("POST", path, "", std::string("Bearer")), 401, std::nullopt, "Bearer");
    expect_refused(call("POST", path, "", std::string("Bearer wrong")), 403, std::nullopt,
                   "the bearer token is wrong");
    expect_refused(call("POST", path, "", std::string("Bearer ") + token + "x"), 403,
                   std::nullopt, "wrong");
    expect_refused(call("DELETE", "/api/v1/services/web", "", std::string("Bearer 0123")), 403,
                   std::nullopt, "wrong");
    // The scheme in any case, spaces around.
    EXPECT_EQ(call("POST", path, "", "  bEaReR   " + std::string(token) + " ").status, 200);
    EXPECT_EQ(applied, 1);
}

TEST_F(ApiTest, WithoutATokenTheApiIsReadOnly) {
    config.api.token.clear();
    before = config;
    expect_refused(call("POST", "/api/v1/reload", "", std::string("Bearer anything")), 403,
                   "api.token", "the API is read-only");
    expect_refused(call("PATCH", "/api/v1/services/web/backends/198.18.1.11", "{}",
                        std::nullopt),
                   403, "api.token", "read-only");
    EXPECT_EQ(call("GET", "/api/v1/services", "", std::nullopt).status, 200);
}

TEST_F(ApiTest, UnknownPathIs404) {
    for (const char *path : {"/", "", "/api/v2/services", "/api/v1", "/api/v1/service",
                             "/api/v1/services/web/backend", "/metrics/x",
                             "/api/v1/services/web/backends/198.18.1.11/weight",
                             "/api/v1/services/web/backends/198.18.1.11/drain/now"})
        expect_refused(call("GET", path), 404, std::nullopt, "no such path");
    // A trailing slash names the service "".
    expect_refused(call("GET", "/api/v1/services/"), 404, std::nullopt,
                   "no service is named \"\"");
    expect_refused(call("GET", "/api/v1/services/w%zzb"), 400, std::nullopt,
                   "malformed percent-encoding");
    expect_refused(call("GET", "/api/v1/services/w%2"), 400, std::nullopt, "percent-encoding");
}

TEST_F(ApiTest, WrongMethodIs405WithAllow) {
    const std::pair<std::string, std::string> cases[] = {
        {"DELETE /api/v1/services", "GET, POST"},
        {"PATCH /api/v1/services/web", "GET, PUT, DELETE"},
        {"PUT /api/v1/services/web/backends", "GET, POST"},
        {"POST /api/v1/services/web/backends/198.18.1.11", "GET, PATCH, DELETE"},
        {"GET /api/v1/services/web/backends/198.18.1.11/drain", "POST"},
        {"GET /api/v1/reload", "POST"},
        {"POST /api/v1/config", "GET"},
        {"DELETE /api/v1/stats", "GET"},
        {"PUT /metrics", "GET"},
        {"get /api/v1/services", "GET, POST"},  // methods are case-sensitive
    };
    for (const auto &[request, allow] : cases) {
        const size_t space = request.find(' ');
        const ApiResponse r = call(request.substr(0, space), request.substr(space + 1));
        expect_refused(r, 405, std::nullopt, "is not allowed on");
        EXPECT_EQ(header(r, "Allow"), allow) << request;
    }
}

// ------------------------------------------------------- reading a request

TEST(ApiRequest, PathSegmentsAreDecodedOneByOne) {
    std::vector<std::string> s;
    ASSERT_TRUE(path_segments("/api/v1/services/web/backends/%5B2001:db8::1%5D%3a80", s));
    EXPECT_EQ(s, (std::vector<std::string>{"api", "v1", "services", "web", "backends",
                                           "[2001:db8::1]:80"}));
    ASSERT_TRUE(path_segments("/a/%2F/", s));
    EXPECT_EQ(s, (std::vector<std::string>{"a", "/", ""}));
    EXPECT_FALSE(path_segments("/a%", s));
    EXPECT_FALSE(path_segments("/a%4", s));
    EXPECT_FALSE(path_segments("/a%g0", s));
}

TEST(ApiRequest, BearerToken) {
    EXPECT_EQ(bearer_token("Bearer abc"), "abc");
    EXPECT_EQ(bearer_token("BEARER\tabc  "), "abc");
    EXPECT_EQ(bearer_token("Bearer"), "");
    EXPECT_EQ(bearer_token("Bearer   "), "");
    EXPECT_EQ(bearer_token("Bearerabc"), "");
    EXPECT_EQ(bearer_token("Basic abc"), "");
    EXPECT_EQ(bearer_token(""), "");
}

TEST(ApiRequest, SameSecret) {
    EXPECT_TRUE(same_secret("s3cret", "s3cret"));
    EXPECT_FALSE(same_secret("s3cre", "s3cret"));
    EXPECT_FALSE(same_secret("s3crett", "s3cret"));
    EXPECT_FALSE(same_secret("s3creT", "s3cret"));
    EXPECT_FALSE(same_secret("", "s3cret"));
    // A longer guess whose start is right is still wrong.
    EXPECT_FALSE(same_secret(std::string("s3cret\0", 7), "s3cret"));
}

TEST(ApiRequest, DuplicateKeysAreFoundWhereverTheyAre) {
    Json j;
    auto field = [&](const std::string &text) {
        const auto error = parse_json_body(text, j);
        return error ? error->field.value_or("(null)") : std::string("(none)");
    };
    EXPECT_EQ(field(R"({"a": 1, "b": [1, {"c": 2}], "d": {"e": {}}})"), "(none)");
    EXPECT_EQ(field(R"({"a": 1, "a": 2})"), "a");
    EXPECT_EQ(field(R"({"b": [1, [2, 3], {"c": 2, "c": 3}]})"), "b[2].c");
    EXPECT_EQ(field(R"([{"x": {"y": [0, 0, {"z": 1, "z": 1}]}}])"), "[0].x.y[2].z");
    // The same key in two objects is no duplicate.
    EXPECT_EQ(field(R"([{"a": 1}, {"a": 2}])"), "(none)");
}

} // namespace
} // namespace sluice::ctrl

namespace sluice::ctrl {
namespace {

// With discovery: the API edits the config, shows what is published (the
// feeds' backends merged in), says where each backend came from, and
// leaves a backend that only a feed names to that feed.
class ApiDiscoveryTest : public testing::Test {
protected:
    ApiDiscoveryTest() {
        config = load_config_text(R"(
ports:
  - name: back
    device: net_null0
    addresses: [198.18.1.1/24]
    exception_path: {tap: tb}
discovery:
  feeds:
    - {name: registry, type: etcd, username: gw, password: etcd-secret}
services:
  - name: mesh
    vip: 198.18.10.1
    protocol: tcp
    port: 80
    mode: nat
    backends: [{address: 198.18.1.11}]
    feeds: [registry]
api:
  token: 0123456789abcdef-secret
)",
                                  "gateway.yaml", 4);
        published = config;
        published.services[0].backends.push_back({*parse_ip_address("198.18.1.12"), 80, 3, false});
        ApiHooks hooks;
        hooks.config = [this]() -> const Config & { return config; };
        hooks.published = [this]() -> const Config & { return published; };
        hooks.apply = [this](Config next) {
            ++applied;
            config = std::move(next);
            return std::string();
        };
        hooks.backend_sources = [](const std::string &, const BackendConfig &backend) {
            if (backend.address.to_string() == "198.18.1.12")
                return nlohmann::json::array(
                    {{{"source", "feed:registry"}, {"id", "be2"}, {"state", "active"}}});
            return nlohmann::json::array({{{"source", "config"}, {"state", "active"}}});
        };
        hooks.feeds = [] {
            return nlohmann::json{{"feeds", {{{"name", "registry"}, {"state", "stale"}}}}};
        };
        api = std::make_unique<ManagementApi>(std::move(hooks));
    }

    ApiResponse call(const std::string &method, const std::string &path,
                     const std::string &body = "") {
        return api->handle({method, path, "", body, std::string("Bearer ") + token});
    }

    Config config, published;
    int applied = 0;
    std::unique_ptr<ManagementApi> api;
};

TEST_F(ApiDiscoveryTest, BackendsListedWithTheirSources) {
    const ApiResponse listed = call("GET", "/api/v1/services/mesh/backends");
    ASSERT_EQ(listed.status, 200) << listed.body;
    const Json backends = Json::parse(listed.body)["backends"];
    ASSERT_EQ(backends.size(), 2u) << listed.body;
    EXPECT_EQ(backends[0]["sources"][0]["source"], "config");
    EXPECT_EQ(backends[1]["address"], "198.18.1.12");
    EXPECT_EQ(backends[1]["weight"], 3);
    EXPECT_EQ(backends[1]["sources"][0]["source"], "feed:registry");
    EXPECT_EQ(backends[1]["sources"][0]["id"], "be2");

    const ApiResponse one = call("GET", "/api/v1/services/mesh/backends/198.18.1.12");
    ASSERT_EQ(one.status, 200) << one.body;
    EXPECT_EQ(Json::parse(one.body)["sources"][0]["id"], "be2");
    // The service itself is the config's: its feeds, its own backends.
    const Json service = Json::parse(call("GET", "/api/v1/services/mesh").body);
    EXPECT_EQ(service["backends"].size(), 1u);
    EXPECT_EQ(service["feeds"], Json::array({"registry"}));
}

TEST_F(ApiDiscoveryTest, AFeedsBackendIsTheFeedsToChange) {
    for (const auto &[method, path] : std::vector<std::pair<std::string, std::string>>{
             {"POST", "/drain"}, {"POST", "/undrain"}, {"PATCH", ""}, {"DELETE", ""}}) {
        const ApiResponse refused = call(method, "/api/v1/services/mesh/backends/198.18.1.12" +
                                                     path,
                                         method == "PATCH" ? R"({"weight": 1})" : "");
        EXPECT_EQ(refused.status, 409) << method << path << refused.body;
        EXPECT_NE(refused.body.find("comes from a discovery feed (feed:registry)"),
                  std::string::npos)
            << refused.body;
    }
    EXPECT_EQ(applied, 0);
    EXPECT_EQ(call("GET", "/api/v1/services/mesh/backends/198.18.1.99").status, 404);
    // The config's own backend changes as ever, in the config.
    const ApiResponse drained = call("POST", "/api/v1/services/mesh/backends/198.18.1.11/drain");
    EXPECT_EQ(drained.status, 200) << drained.body;
    EXPECT_EQ(applied, 1);
    EXPECT_TRUE(config.services[0].backends[0].drained);
    EXPECT_EQ(config.services[0].feeds, std::vector<std::string>{"registry"});
}

TEST_F(ApiDiscoveryTest, FeedsAndRedactedPasswords) {
    const ApiResponse feeds = call("GET", "/api/v1/feeds");
    ASSERT_EQ(feeds.status, 200) << feeds.body;
    EXPECT_EQ(Json::parse(feeds.body)["feeds"][0]["state"], "stale");
    EXPECT_EQ(call("POST", "/api/v1/feeds").status, 405);
    const std::string shown = call("GET", "/api/v1/config").body;
    EXPECT_EQ(shown.find("etcd-secret"), std::string::npos) << shown;
    EXPECT_EQ(Json::parse(shown)["discovery"]["feeds"][0]["password"], "<redacted>");
}

TEST(ApiWithoutDiscovery, FeedsAreUnavailable) {
    const Config config = load_config_text("ports: [{name: a, device: net_null0}]\n", "g", 4);
    ApiHooks hooks;
    hooks.config = [&]() -> const Config & { return config; };
    const ManagementApi api(std::move(hooks));
    EXPECT_EQ(api.handle({"GET", "/api/v1/feeds", "", "", std::nullopt}).status, 503);
}

} // namespace
} // namespace sluice::ctrl
