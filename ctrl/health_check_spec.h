// What a service's active health check does, as the config and the API state
// it. ctrl/health_checker.h runs it; ctrl/config_services.cc reads it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sluice::ctrl {

enum class HealthCheckType { tcp, http };

struct HealthCheckSpec {
    HealthCheckType type = HealthCheckType::tcp;
    uint32_t interval_ms = 2000;  // between the starts of two checks
    uint32_t timeout_ms = 1000;   // a check not done by then failed
    uint32_t rise = 2;            // passes in a row that bring a down backend up
    uint32_t fall = 3;            // failures in a row that take an up backend down
    uint16_t port = 0;            // 0: the backend's port (or the service's port)
    // http only
    std::string method = "GET";   // GET or HEAD
    std::string path = "/";
    std::string host;             // Host header; empty: the backend's address
    // Inclusive status ranges that pass; empty means 200-399.
    std::vector<std::pair<uint16_t, uint16_t>> expected_status;

    bool operator==(const HealthCheckSpec &) const = default;
};

} // namespace sluice::ctrl
