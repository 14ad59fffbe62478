// sluiced's counters as metric families: per worker (traffic, cycles, drops
// by reason), per service and backend (packets, bytes, new and open flows,
// health), per port (the device's statistics and xstats). One collection,
// two renderings: Prometheus text for /metrics and SIGUSR1, JSON for the API.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctrl/backend_slots.h"
#include "ctrl/config.h"
#include "ctrl/discovery.h"
#include "dataplane/port.h"
#include "dataplane/worker.h"

namespace sluice::ctrl {

struct MetricSample {
    std::vector<std::pair<std::string, std::string>> labels;
    uint64_t value = 0;
};

struct MetricFamily {
    enum class Type { counter, gauge };
    std::string name;  // counters end in _total
    Type type = Type::counter;
    std::string help;
    std::vector<MetricSample> samples;
};

// A backend's health as the checks see it: "up", "down" or "unchecked".
using HealthOf = std::function<const char *(const ServiceConfig &, const BackendConfig &)>;
// How many times its health changed.
using HealthChangesOf = std::function<uint64_t(const std::string &service, const BackendConfig &)>;

struct MetricsView {
    const std::vector<std::unique_ptr<dataplane::WorkerContext>> &workers;
    const std::vector<dataplane::Port> &ports;
    const Config &config;
    const BackendSlots &slots;
    HealthOf health;
    HealthChangesOf health_changes;
    const Discovery *discovery = nullptr;
};

// One backend's counters, summed over the workers.
struct BackendTotals {
    uint64_t packets = 0, bytes = 0, new_flows = 0, active_flows = 0;
};
BackendTotals backend_totals(const std::vector<std::unique_ptr<dataplane::WorkerContext>> &workers,
                             lb::BackendSlot slot);

// Reads every counter once (relaxed loads; workers keep running).
std::vector<MetricFamily> collect_metrics(const MetricsView &view);

// The Prometheus text exposition format, version 0.0.4.
std::string prometheus_text(const std::vector<MetricFamily> &families);
// {"<name>": {"type": ..., "help": ..., "samples": [{"labels": {...}, "value": N}]}}
nlohmann::json metrics_json(const std::vector<MetricFamily> &families);

} // namespace sluice::ctrl
