#include "ctrl/discovery_settings.h"

#include <algorithm>

namespace sluice::ctrl {

namespace {

constexpr size_t max_dns_name_length = 253;  // in text, without the final dot
constexpr uint32_t max_query_timeout_ms = 60'000;
constexpr uint32_t max_tries = 10;

// 1..65535 in decimal.
std::optional<uint16_t> parse_port(std::string_view text) {
    if (text.empty() || text.size() > 5)
        return std::nullopt;
    uint32_t port = 0;
    for (const char c : text) {
        if (c < '0' || c > '9')
            return std::nullopt;
        port = port * 10 + uint32_t(c - '0');
    }
    if (port == 0 || port > 65535)
        return std::nullopt;
    return uint16_t(port);
}

// A DNS name as the config gives it: host-name labels, underscores allowed
// (SRV names begin with them), an optional final dot.
std::string check_dns_name(std::string_view name) {
    if (!name.empty() && name.back() == '.')
        name.remove_suffix(1);
    if (name.empty() || name.size() > max_dns_name_length)
        return "expected a DNS name of 1 to " + std::to_string(max_dns_name_length) +
               " characters";
    size_t label = 0;
    for (const char c : name) {
        if (c == '.') {
            if (label == 0)
                return "expected a DNS name, got an empty label";
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return std::string("expected letters, digits, '-', '_' and dots, got '") + c + "'";
        if (++label > 63)
            return "expected labels of at most 63 characters";
    }
    return label == 0 ? "expected a DNS name, got an empty label" : "";
}

} // namespace

std::optional<EtcdEndpoint> parse_etcd_endpoint(std::string_view text) {
    EtcdEndpoint endpoint;
    if (text.starts_with("https://")) {
        endpoint.tls = true;
        text.remove_prefix(8);
    } else if (text.starts_with("http://")) {
        text.remove_prefix(7);
    }
    std::optional<IpAddress> address;
    std::optional<uint16_t> port;
    if (text.starts_with("[")) {
        const size_t close = text.find("]:");
        if (close == std::string_view::npos)
            return std::nullopt;
        address = parse_ip_address(text.substr(1, close - 1));
        port = parse_port(text.substr(close + 2));
        if (address && address->is_v4())
            return std::nullopt;
    } else {
        const size_t colon = text.rfind(':');
        if (colon == std::string_view::npos)
            return std::nullopt;
        address = parse_ip_address(text.substr(0, colon));
        port = parse_port(text.substr(colon + 1));
        if (address && !address->is_v4())
            return std::nullopt;  // an IPv6 address takes brackets
    }
    if (!address || !port || address->is_unspecified() || address->is_multicast())
        return std::nullopt;
    endpoint.address = *address;
    endpoint.port = *port;
    const std::string host = address->to_string();
    endpoint.host = (address->is_v4() ? host : "[" + host + "]") + ":" + std::to_string(*port);
    return endpoint;
}

std::string validate(const EtcdSettings &s) {
    if (s.endpoints.empty())
        return "endpoints: at least one is needed";
    bool tls = false;
    for (size_t i = 0; i < s.endpoints.size(); ++i) {
        const auto endpoint = parse_etcd_endpoint(s.endpoints[i]);
        if (!endpoint)
            return "endpoints[" + std::to_string(i) + "]: expected [http[s]://]address:port "
                   "(an IPv4 address, or an IPv6 one in brackets), got \"" + s.endpoints[i] + "\"";
        tls = tls || endpoint->tls;
    }
    if (s.prefix.empty() || s.prefix.back() == '/' ||
        std::any_of(s.prefix.begin(), s.prefix.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x21 || c == 0x7f; }))
        return "prefix: expected a key prefix without a trailing '/', spaces or control "
               "characters, got \"" + s.prefix + "\"";
    if (s.username.empty() != s.password.empty())
        return s.username.empty() ? "username: needed with a password"
                                  : "password: needed with a username";
    if (s.tls_cert.empty() != s.tls_key.empty())
        return s.tls_cert.empty() ? "tls_cert: needed with tls_key"
                                  : "tls_key: needed with tls_cert";
    if (!tls && (!s.tls_ca.empty() || !s.tls_cert.empty() || !s.tls_server_name.empty()))
        return "tls settings given, but no endpoint is https://";
    if (s.connect_timeout_ms == 0 || s.request_timeout_ms == 0)
        return "timeouts: expected more than 0 ms";
    if (s.backoff_initial_ms == 0 || s.backoff_max_ms < s.backoff_initial_ms)
        return "backoff: expected 0 < backoff_initial_ms <= backoff_max_ms";
    if (s.range_page_size == 0)
        return "range_page_size: expected at least 1";
    if (s.max_response_bytes < 65536)
        return "max_response_bytes: expected at least 65536";
    return "";
}

std::optional<DnsServerAddress> parse_dns_server(std::string_view text) {
    DnsServerAddress server;
    std::string_view address = text;
    if (text.starts_with('[')) {
        const size_t close = text.find(']');
        if (close == std::string_view::npos)
            return std::nullopt;
        address = text.substr(1, close - 1);
        const std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            const auto port = rest[0] == ':' ? parse_port(rest.substr(1)) : std::nullopt;
            if (!port)
                return std::nullopt;
            server.port = *port;
        }
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        const size_t colon = text.find(':');
        const auto port = parse_port(text.substr(colon + 1));
        if (!port)
            return std::nullopt;
        address = text.substr(0, colon);
        server.port = *port;
    }
    const auto parsed = parse_ip_address(address);
    if (!parsed || parsed->is_unspecified() || parsed->is_multicast() ||
        (text.starts_with('[') && parsed->is_v4()))
        return std::nullopt;
    server.address = *parsed;
    return server;
}

std::string validate(const DnsFeedSettings &settings) {
    for (size_t i = 0; i < settings.servers.size(); ++i)
        if (!parse_dns_server(settings.servers[i]))
            return "servers[" + std::to_string(i) +
                   "]: expected an IPv4 or IPv6 address with an optional port "
                   "(\"198.18.0.53:5353\", \"[2001:db8::53]:5353\"), got \"" +
                   settings.servers[i] + "\"";
    for (const auto &[service, name] : settings.services) {
        if (service.empty())
            return "services: a service name is empty";
        if (const std::string why = check_dns_name(name); !why.empty())
            return "services." + service + ": " + why + ", got \"" + name + "\"";
    }
    if (settings.query_timeout_ms == 0 || settings.query_timeout_ms > max_query_timeout_ms)
        return "query_timeout_ms: expected 1.." + std::to_string(max_query_timeout_ms);
    if (settings.tries == 0 || settings.tries > max_tries)
        return "tries: expected 1.." + std::to_string(max_tries);
    if (settings.min_refresh_s == 0)
        return "min_refresh_s: expected at least 1";
    if (settings.max_refresh_s < settings.min_refresh_s)
        return "max_refresh_s: expected at least min_refresh_s (" +
               std::to_string(settings.min_refresh_s) + ")";
    if (settings.negative_refresh_s == 0)
        return "negative_refresh_s: expected at least 1";
    if (settings.retry_min_ms == 0)
        return "retry_min_ms: expected at least 1";
    if (settings.retry_max_ms < settings.retry_min_ms)
        return "retry_max_ms: expected at least retry_min_ms (" +
               std::to_string(settings.retry_min_ms) + ")";
    return "";
}

} // namespace sluice::ctrl
