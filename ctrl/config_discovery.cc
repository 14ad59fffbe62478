// The `discovery` section of the config: the feeds the gateway follows for
// services' endpoints (etcd, DNS SRV, a watched file) and its own
// registration in etcd (docs/discovery.md), and each service's `feeds`.
// Files named here (TLS, a password file) are read at load time, like the
// API's, so that a feed that could never start stops the config instead.
#include <algorithm>

#include "ctrl/config_loader.h"

namespace sluice::ctrl {

namespace {

constexpr unsigned max_grace_ms = 3'600'000;
constexpr unsigned max_timeout_ms = 3'600'000;

bool is_visible(std::string_view s) {
    return !s.empty() && s.size() <= 4096 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

bool is_dns_text(std::string_view s) { return !s.empty() && s.size() <= 254 && is_visible(s); }

} // namespace

const char *to_string(FeedKind kind) {
    switch (kind) {
    case FeedKind::etcd: return "etcd";
    case FeedKind::dns: return "dns";
    case FeedKind::file: return "file";
    }
    return "etcd";
}

void ConfigLoader::read_discovery(const Field &f, DiscoveryConfig &discovery) const {
    const Section s = map(f, {"deletion_grace_ms", "feeds", "registration"});
    if (const Field *v = s.find("deletion_grace_ms"))
        discovery.deletion_grace_ms = integer(*v, 0, max_grace_ms, "milliseconds");
    if (const Field *v = s.find("feeds")) {
        std::map<std::string, int> names;
        for (const Field &item : sequence(*v)) {
            FeedConfig feed = read_feed(item);
            claim(names, feed.name, item, "feed name");
            discovery.feeds.push_back(std::move(feed));
        }
    }
    if (const Field *v = s.find("registration"))
        discovery.registration = read_registration(*v);
}

FeedConfig ConfigLoader::read_feed(const Field &f) const {
    if (!f.node.IsMap())
        fail(f, "expected a map, got " + describe(f.node));
    FeedConfig feed;
    // The keys allowed depend on the type: read it first.
    const YAML::Node type_node = f.node["type"];
    if (!type_node)
        fail(f.mark, join(f.path, "type"), "required key is missing: etcd, dns or file");
    const Field type{type_node, join(f.path, "type"), type_node.Mark()};
    feed.kind = FeedKind(choice(type, {"etcd", "dns", "file"}));  // in FeedKind's order
    switch (feed.kind) {
    case FeedKind::etcd: {
        const Section s = map(f, {"name", "type", "endpoints", "prefix", "username", "password",
                                  "password_file", "tls", "connect_timeout_ms",
                                  "request_timeout_ms", "watch_silence_ms"});
        feed.name = text(require(s, "name"), service_name_rule, is_service_name);
        read_etcd_connection(s, feed.etcd);
        if (const Field *v = s.find("watch_silence_ms"))
            feed.etcd.watch_silence_ms = integer(*v, 1000, max_timeout_ms, "milliseconds");
        feed.etcd.name = feed.name;
        break;
    }
    case FeedKind::dns: {
        const Section s = map(f, {"name", "type", "servers", "services", "query_timeout_ms",
                                  "tries", "min_refresh_s", "max_refresh_s",
                                  "negative_refresh_s"});
        feed.name = text(require(s, "name"), service_name_rule, is_service_name);
        DnsFeedSettings &dns = feed.dns;
        dns.name = feed.name;
        if (const Field *v = s.find("servers"))
            for (const Field &item : sequence(*v)) {
                const std::string what = "a resolver like 198.18.0.53, 198.18.0.53:5353 or "
                                         "[2001:db8::53]:5353";
                const std::string &server = scalar(item, what);
                if (!parse_dns_server(server))
                    fail(item, "expected " + what + ", got " + quoted(server));
                dns.servers.push_back(server);
            }
        // Service name → the SRV name the feed looks up for it.
        const Field &services = require(s, "services");
        if (!services.node.IsMap() || services.node.size() == 0)
            fail(services, "expected a map of service name: SRV name, got " +
                               (services.node.IsMap() ? std::string("an empty map")
                                                      : describe(services.node)));
        for (auto it = services.node.begin(); it != services.node.end(); ++it) {
            const Field key{it->first, services.path, it->first.Mark()};
            const std::string service = text(key, service_name_rule, is_service_name);
            const Field value{it->second, join(services.path, service), it->second.Mark()};
            const std::string &name = scalar(value, "an SRV name like _http._tcp.web.mesh.test");
            if (!dns.services.emplace(service, name).second)
                fail(key, "duplicate service " + quoted(service));
        }
        if (const Field *v = s.find("query_timeout_ms"))
            dns.query_timeout_ms = integer(*v, 1, 60'000, "milliseconds");
        if (const Field *v = s.find("tries"))
            dns.tries = integer(*v, 1, 10, "a number of tries");
        if (const Field *v = s.find("min_refresh_s"))
            dns.min_refresh_s = integer(*v, 1, 86'400, "seconds");
        if (const Field *v = s.find("max_refresh_s"))
            dns.max_refresh_s = integer(*v, dns.min_refresh_s, 86'400,
                                        "seconds, at least min_refresh_s");
        if (const Field *v = s.find("negative_refresh_s"))
            dns.negative_refresh_s = integer(*v, 1, 86'400, "seconds");
        // The SRV names' syntax, as the feed will look them up.
        if (const std::string why = validate(dns); !why.empty())
            fail(s.self, why);
        break;
    }
    case FeedKind::file: {
        const Section s = map(f, {"name", "type", "path"});
        feed.name = text(require(s, "name"), service_name_rule, is_service_name);
        feed.file.name = feed.name;
        feed.file.path = text(require(s, "path"), "a file name", is_path);
        // The file may come later: the feed waits for it, stale.
        break;
    }
    }
    return feed;
}

void ConfigLoader::read_etcd_connection(const Section &s, EtcdSettings &etcd) const {
    if (const Field *v = s.find("endpoints")) {
        const std::vector<Field> items = sequence(*v);
        if (items.empty())
            fail(*v, "expected at least one etcd endpoint, got an empty sequence");
        etcd.endpoints.clear();
        for (const Field &item : items) {
            const std::string what =
                "an etcd client URL like 198.18.0.2:2379, http://198.18.0.2:2379 or "
                "https://[2001:db8::2]:2379 (an address, not a name)";
            const std::string &url = scalar(item, what);
            if (!parse_etcd_endpoint(url))
                fail(item, "expected " + what + ", got " + quoted(url));
            etcd.endpoints.push_back(url);
        }
    }
    if (const Field *v = s.find("prefix"))
        etcd.prefix = text(*v, "a key prefix starting with '/', without a trailing '/' or spaces",
                           [](std::string_view p) {
                               return is_visible(p) && p[0] == '/' && p.back() != '/';
                           });
    const Field *username = s.find("username");
    const Field *password = s.find("password");
    const Field *password_file = s.find("password_file");
    if (password && password_file)
        fail(*password_file, "give password or password_file, not both");
    if (username)
        etcd.username = text(*username, "a user name of visible ASCII characters", is_visible);
    if (password)
        etcd.password = text(*password, "a password of visible ASCII characters", is_visible);
    if (password_file) {
        mode_t mode = 0;
        const std::string line = first_line_of(*password_file, etcd.password_file, mode);
        if (!is_visible(line))
            fail(*password_file, "the first line of " + quoted(etcd.password_file) +
                                     " must hold the password, in visible ASCII characters");
        etcd.password = line;
    }
    if (username && !password && !password_file)
        fail(*username, "a username needs a password or password_file");
    if (!username && (password || password_file))
        fail(password ? *password : *password_file, "a password needs a username");

    const bool tls_endpoint = std::any_of(
        etcd.endpoints.begin(), etcd.endpoints.end(),
        [](const std::string &url) { return parse_etcd_endpoint(url)->tls; });
    if (const Field *v = s.find("tls")) {
        if (!tls_endpoint)
            fail(*v, "no endpoint is https://: TLS settings would not be used");
        const Section t = map(*v, {"ca", "certificate", "private_key", "server_name"});
        if (const Field *ca = t.find("ca"))
            etcd.tls_ca = readable_file(*ca);
        const Field *certificate = t.find("certificate");
        const Field *key = t.find("private_key");
        if (certificate && !key)
            fail(t.self.mark, join(t.self.path, "private_key"),
                 "required key is missing: a certificate needs its private key");
        if (key && !certificate)
            fail(t.self.mark, join(t.self.path, "certificate"),
                 "required key is missing: a private key needs its certificate");
        if (certificate) {
            etcd.tls_cert = readable_file(*certificate);
            etcd.tls_key = readable_file(*key);
        }
        if (const Field *name = t.find("server_name"))
            etcd.tls_server_name = text(*name, "a DNS name", is_dns_text);
    }
    if (const Field *v = s.find("connect_timeout_ms"))
        etcd.connect_timeout_ms = integer(*v, 10, max_timeout_ms, "milliseconds");
    if (const Field *v = s.find("request_timeout_ms"))
        etcd.request_timeout_ms = integer(*v, 10, max_timeout_ms, "milliseconds");
    // What the fields above cannot show alone.
    if (const std::string why = validate(etcd); !why.empty())
        fail(s.self, why);
}

RegistrationConfig ConfigLoader::read_registration(const Field &f) const {
    const Section s = map(f, {"endpoints", "prefix", "username", "password", "password_file",
                              "tls", "connect_timeout_ms", "request_timeout_ms", "instance",
                              "ttl_s"});
    RegistrationConfig registration;
    registration.etcd.prefix = "/sluice/gateways";
    read_etcd_connection(s, registration.etcd);
    if (const Field *v = s.find("instance"))
        registration.instance =
            text(*v, "an instance name of visible ASCII characters, without '/'",
                 [](std::string_view name) {
                     return is_visible(name) && name.size() <= 253 &&
                            name.find('/') == name.npos;
                 });
    if (const Field *v = s.find("ttl_s"))
        registration.ttl_s = integer(*v, 3, 3600, "seconds");
    return registration;
}

std::vector<std::string> ConfigLoader::read_service_feeds(const Field &f,
                                                          const Config &config) const {
    std::vector<std::string> feeds;
    std::map<std::string, int> seen;
    for (const Field &item : sequence(f)) {
        const std::string &name = scalar(item, "the name of a discovery feed");
        const auto &known = config.discovery.feeds;
        if (std::none_of(known.begin(), known.end(),
                         [&](const FeedConfig &feed) { return feed.name == name; })) {
            std::string names;
            for (const FeedConfig &feed : known)
                names += (names.empty() ? "" : ", ") + feed.name;
            fail(item, "no discovery feed is named " + quoted(name) +
                           (names.empty() ? "; discovery.feeds defines none"
                                          : "; discovery.feeds has " + names));
        }
        claim(seen, name, item, "feed");
        feeds.push_back(name);
    }
    return feeds;
}

} // namespace sluice::ctrl
