// The discovery feeds' settings, as the config's `discovery` section gives
// them (docs/configuration.md), with the checks that need no sockets. They
// live beside the config loader, which checks them at load time; the feeds
// (ctrl/etcd_feed.h, ctrl/dns_feed.h, ctrl/file_feed.h) and the gateway's
// registration (ctrl/etcd_registration.h) take them as they are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/net_addr.h"

namespace sluice::ctrl {

// An etcd client URL as the settings name it.
struct EtcdEndpoint {
    IpAddress address;
    uint16_t port = 2379;
    bool tls = false;
    std::string host;  // "127.0.0.1:2379", "[2001:db8::1]:2379": Host header and messages
};

struct EtcdSettings {
    std::string name;  // the feed's name in the config, for FeedStatus; unused by the registration
    // Client URLs: "127.0.0.1:2379", "http://[2001:db8::1]:2379",
    // "https://198.18.0.5:2379". Addresses, not names: resolving a name
    // would block the control plane's loop.
    std::vector<std::string> endpoints{"127.0.0.1:2379"};
    // The feed reads <prefix>/<service>/<endpoint-id>; the registration
    // writes <prefix>/<instance>. No trailing '/'.
    std::string prefix = "/sluice/endpoints";
    std::string username, password;  // both or neither
    std::string password_file;       // where the password was read from, if from a file
    std::string tls_ca;              // PEM file; "" = the system's CAs
    std::string tls_cert, tls_key;   // client certificate and key (PEM), both or neither
    std::string tls_server_name;     // name etcd's certificate must carry; "" = its IP address
    uint32_t connect_timeout_ms = 3000;
    uint32_t request_timeout_ms = 5000;
    // A watch that says nothing for this long is taken as lost, and resumed
    // on a new connection from the revision reached: cheap, so this may be
    // far shorter than etcd's progress-notify interval (10 min by default;
    // --experimental-watch-progress-notify-interval).
    uint32_t watch_silence_ms = 10000;
    uint32_t backoff_initial_ms = 100;
    uint32_t backoff_max_ms = 5000;
    uint32_t range_page_size = 1000;   // keys per range read; the initial load is paged
    size_t max_response_bytes = 64 << 20;  // one answer, or one watch response

    bool operator==(const EtcdSettings &) const = default;
};

// "" or why the settings cannot be used, naming the field:
// "endpoints[1]: expected [http[s]://]address:port (...), got \"x\"".
std::string validate(const EtcdSettings &settings);
std::optional<EtcdEndpoint> parse_etcd_endpoint(std::string_view text);

struct DnsFeedSettings {
    std::string name;  // the feed's name in the config and in its status
    // Resolvers to ask, in order, as "address" or "address:port", an IPv6
    // address in brackets when it has a port: "127.0.0.1:5353", "[::1]:53",
    // "2001:db8::53". Empty: the nameservers of /etc/resolv.conf.
    std::vector<std::string> servers;
    // Service name → the SRV name to look up ("web" → "_http._tcp.web.mesh.test").
    std::map<std::string, std::string> services;
    // One try on one server; c-ares doubles it for each later round of tries.
    uint32_t query_timeout_ms = 1000;
    uint32_t tries = 2;  // rounds over the servers before a lookup fails
    uint32_t min_refresh_s = 1;
    uint32_t max_refresh_s = 300;
    uint32_t negative_refresh_s = 5;  // after a negative answer with no SOA
    uint32_t retry_min_ms = 1000;
    uint32_t retry_max_ms = 30000;

    bool operator==(const DnsFeedSettings &) const = default;
};

// "" or why the settings cannot be used, naming the field:
// "servers[1]: expected an IPv4 or IPv6 address with an optional port, got \"x:y:z\"".
std::string validate(const DnsFeedSettings &settings);

// A resolver of the DNS feed: "198.18.0.53", "198.18.0.53:5353",
// "2001:db8::53", "[2001:db8::53]:5353".
struct DnsServerAddress {
    IpAddress address;
    uint16_t port = 53;
};
std::optional<DnsServerAddress> parse_dns_server(std::string_view text);

struct FileFeedSettings {
    std::string name;  // the feed's name in the config, for FeedStatus
    std::string path;  // the endpoints file
    int debounce_ms = 50;

    bool operator==(const FileFeedSettings &) const = default;
};

} // namespace sluice::ctrl
