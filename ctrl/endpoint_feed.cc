#include "ctrl/endpoint_feed.h"

#include <nlohmann/json.hpp>

namespace sluice::ctrl {

namespace {

constexpr uint32_t max_weight = 65535;
constexpr size_t max_zone_length = 63;
constexpr size_t max_labels = 64;
constexpr size_t max_label_length = 253;

using Json = nlohmann::json;

std::string kind_of(const Json &value) { return value.type_name(); }

} // namespace

const char *to_string(FeedHealth health) {
    switch (health) {
    case FeedHealth::starting: return "starting";
    case FeedHealth::current: return "current";
    case FeedHealth::stale: return "stale";
    }
    return "unknown";
}

std::string parse_endpoint_json(const std::string &text, Endpoint &endpoint) {
    const Json value = Json::parse(text, nullptr, false);
    if (value.is_discarded())
        return "not JSON";
    if (!value.is_object())
        return "expected an object, got " + kind_of(value);
    Endpoint parsed;
    parsed.id = endpoint.id;
    bool has_address = false, has_ready = false;
    for (const auto &[key, field] : value.items()) {
        if (key == "address") {
            const auto address = field.is_string() ? parse_ip_address(field.get<std::string>())
                                                   : std::nullopt;
            if (!address || address->is_unspecified() || address->is_multicast() ||
                address->is_loopback())
                return "address: expected a unicast IPv4 or IPv6 address, got " + field.dump();
            parsed.address = *address;
            has_address = true;
        } else if (key == "port" || key == "weight") {
            const uint64_t limit = key == "port" ? 65535 : max_weight;
            if (!field.is_number_unsigned() || field.get<uint64_t>() > limit)
                return key + ": expected an integer in 0.." + std::to_string(limit) + ", got " +
                       field.dump();
            if (key == "port")
                parsed.port = uint16_t(field.get<uint64_t>());
            else
                parsed.weight = uint32_t(field.get<uint64_t>());
        } else if (key == "zone") {
            if (!field.is_string() || field.get<std::string>().size() > max_zone_length)
                return "zone: expected a string of at most " + std::to_string(max_zone_length) +
                       " characters, got " + field.dump();
            parsed.zone = field.get<std::string>();
        } else if (key == "labels") {
            if (!field.is_object() || field.size() > max_labels)
                return "labels: expected an object of at most " + std::to_string(max_labels) +
                       " string values";
            for (const auto &[name, label] : field.items()) {
                if (!label.is_string() || name.empty() || name.size() > max_label_length ||
                    label.get<std::string>().size() > max_label_length)
                    return "labels." + name + ": expected a string of at most " +
                           std::to_string(max_label_length) + " characters";
                parsed.labels[name] = label.get<std::string>();
            }
        } else if (key == "ready" || key == "serving" || key == "terminating") {
            if (!field.is_boolean())
                return key + ": expected true or false, got " + field.dump();
            (key == "ready" ? parsed.ready : key == "serving" ? parsed.serving
                                                             : parsed.terminating) =
                field.get<bool>();
            has_ready = has_ready || key == "ready";
        } else {
            return key + ": unknown key (expected address, port, weight, zone, labels, ready, "
                         "serving, terminating)";
        }
    }
    if (!has_address)
        return "address: missing";
    // A terminating endpoint takes no new flows, whatever else it says
    // (EndpointSlice: ready is false while terminating).
    if (parsed.terminating) {
        if (has_ready && parsed.ready)
            return "ready: a terminating endpoint cannot be ready";
        parsed.ready = false;
    }
    endpoint = std::move(parsed);
    return "";
}

} // namespace sluice::ctrl
