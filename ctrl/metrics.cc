#include "ctrl/metrics.h"

#include <rte_ethdev.h>

#include <initializer_list>
#include <map>

namespace sluice::ctrl {

namespace {

using Type = MetricFamily::Type;
using Labels = std::vector<std::pair<std::string, std::string>>;

// Families in the order they are first named; samples appended as found.
class Collector {
public:
    void add(const std::string &name, Type type, const char *help, Labels labels,
             uint64_t value) {
        auto [at, fresh] = index_.try_emplace(name, families_.size());
        if (fresh)
            families_.push_back({name, type, help, {}});
        families_[at->second].samples.push_back({std::move(labels), value});
    }
    std::vector<MetricFamily> take() { return std::move(families_); }

private:
    std::vector<MetricFamily> families_;
    std::map<std::string, size_t> index_;
};

// A counter's name (without prefix and _total), its help and its value.
struct CounterValue {
    const char *name, *help;
    uint64_t value;
};

void add_counters(Collector &out, const std::string &prefix, const Labels &labels,
                  std::initializer_list<CounterValue> counters) {
    for (const CounterValue &counter : counters)
        out.add(prefix + counter.name + "_total", Type::counter, counter.help, labels,
                counter.value);
}

void collect_worker(Collector &out, const dataplane::WorkerContext &worker) {
    const auto &c = worker.counters;
    const Labels label = {{"worker", std::to_string(worker.id)}};
    add_counters(out, "sluice_worker_", label, {
        {"rx_packets", "Packets received from the ports.", c.rx_packets.read()},
        {"rx_bytes", "Bytes received from the ports.", c.rx_bytes.read()},
        {"tx_packets", "Packets sent on the ports and exception paths.", c.tx_packets.read()},
        {"tx_bytes", "Bytes sent on the ports and exception paths.", c.tx_bytes.read()},
        {"arp_replies", "ARP requests answered.", c.arp_replies.read()},
        {"icmp_echo_replies", "ICMP echo requests answered.", c.icmp_echo_replies.read()},
        {"icmpv6_echo_replies", "ICMPv6 echo requests answered.", c.icmpv6_echo_replies.read()},
        {"neighbor_advertisements", "Neighbor solicitations answered.",
         c.neighbor_advertisements.read()},
        {"to_kernel_packets", "Packets handed to the kernel (exception path).", c.to_kernel.read()},
        {"from_kernel_packets", "Packets the kernel sent through the exception path.",
         c.from_kernel.read()},
        {"steered_out_packets", "Packets passed to the worker owning their flow.",
         c.steered_out.read()},
        {"steered_in_packets", "Packets taken from other workers.", c.steered_in.read()},
        {"neighbour_waits", "Packets held until their next hop's MAC was known.",
         c.neighbour_waits.read()},
        {"busy_cycles", "TSC cycles spent on polls that received packets.", c.busy_cycles.read()},
        {"idle_cycles", "TSC cycles spent on empty polls and sleeps.", c.idle_cycles.read()},
        {"idle_sleeps", "Sleeps of the idle backoff.", c.idle_sleeps.read()},
    });

    if (worker.balancing) {
        const auto &b = worker.balancing->counters;
        add_counters(out, "sluice_worker_", label, {
            {"new_flows", "Flows created.", b.new_flows.read()},
            {"to_backend_packets", "Packets balanced toward a backend.",
             b.to_backend_packets.read()},
            {"to_client_packets", "Backend answers rewritten back to the client.",
             b.to_client_packets.read()},
            {"stateless_packets", "Packets balanced by Maglev alone: the flow table was full.",
             b.stateless_packets.read()},
            {"icmp_errors_translated", "ICMP errors about a flow translated and passed on.",
             b.icmp_errors.read()},
            {"later_fragments", "Fragments after the first, balanced as their datagram.",
             b.later_fragments.read()},
            {"resets_sent", "RSTs sent to clients whose backend left a reset service.",
             b.resets_sent.read()},
            {"icmp_too_big_sent", "ICMP too-big sent for packets too large to encapsulate.",
             b.icmp_too_big_sent.read()},
        });

        // Read across threads without a lock: possibly a poll old.
        out.add("sluice_worker_flows", Type::gauge,
                "Flows in the worker's table (expired ones not yet reclaimed included).", label,
                worker.balancing->flows->size());
    }
    if (worker.tcp) {
        const dataplane::TcpFigures &t = worker.tcp->figures();
        const lb::ProxyCounters &p = worker.tcp->proxy_counters();
        out.add("sluice_tcp_connections", Type::gauge,
                "Connections of the worker's TCP, client and backend sides.", label,
                t.connections.read());
        out.add("sluice_tcp_time_wait", Type::gauge, "TIME-WAIT entries of the worker's TCP.",
                label, t.time_wait.read());
        out.add("sluice_tcp_half_open", Type::gauge, "Connections in SYN-RECEIVED.", label,
                t.half_open.read());
        out.add("sluice_proxy_sessions", Type::gauge,
                "Proxied client connections with their backend connections.", label,
                t.sessions.read());
        add_counters(out, "sluice_tcp_", label, {
            {"accepted", "Client connections accepted.", t.accepted.read()},
            {"connected", "Connections opened to backends.", t.connected.read()},
            {"closed", "Connections ended, any way.", t.closed.read()},
            {"resets_sent", "RSTs sent for segments of no connection.", t.resets_sent.read()},
            {"refused_full", "Connections refused: max_connections reached.",
             t.refused_full.read()},
            {"syn_cookies_sent", "SYN-ACKs with a cookie: the SYN backlog was full.",
             t.syn_cookies_sent.read()},
            {"syn_cookies_accepted", "Connections made from a returning cookie.",
             t.syn_cookies_accepted.read()},
            {"syn_cookies_refused", "ACKs whose cookie did not verify.",
             t.syn_cookies_refused.read()},
            {"time_wait_evicted", "TIME-WAIT entries dropped early: the table was full.",
             t.time_wait_evicted.read()},
            {"segments_in", "Segments taken by the worker's TCP.", t.segments_in.read()},
            {"segments_out", "Segments the worker's TCP sent.", t.segments_out.read()},
        });
        add_counters(out, "sluice_proxy_", label, {
            {"sessions", "Client connections the proxy took.", p.sessions.read()},
            {"backend_connected", "Backend connections established.",
             p.backend_connected.read()},
            {"backend_failed", "Backend connections refused, timed out or without a port.",
             p.backend_failed.read()},
            {"no_backend", "Clients refused: their service had no backend.", p.no_backend.read()},
            {"idle_timeouts", "Sessions reset for idleness.", p.idle_timeouts.read()},
            {"resets", "Sessions ended by a reset on either side.", p.resets.read()},
            {"bytes_to_backend", "Bytes relayed from clients to backends.",
             p.bytes_to_backend.read()},
            {"bytes_to_client", "Bytes relayed from backends to clients.",
             p.bytes_to_client.read()},
        });
    }
    for (size_t reason = 1; reason < drop_reason_count; ++reason)
        out.add("sluice_worker_drops_total", Type::counter, "Packets dropped, by reason.",
                {{"worker", std::to_string(worker.id)},
                 {"reason", drop_reason_name(DropReason(reason))}},
                c.drops[reason].read());
}

void collect_backends(Collector &out, const MetricsView &view) {
    for (const ServiceConfig &service : view.config.services) {
        BackendTotals service_totals;
        uint64_t up = 0;
        for (const BackendConfig &backend : service.backends) {
            const BackendTotals totals =
                backend_totals(view.workers, view.slots.slot(service.name, backend));
            const char *health = view.health(service, backend);
            const Labels labels = {{"service", service.name},
                                   {"address", backend.address.to_string()},
                                   {"port", std::to_string(backend.port)}};
            out.add("sluice_backend_packets_total", Type::counter,
                    "Packets balanced to and from the backend.", labels, totals.packets);
            out.add("sluice_backend_bytes_total", Type::counter,
                    "Bytes balanced to and from the backend.", labels, totals.bytes);
            out.add("sluice_backend_new_flows_total", Type::counter,
                    "Flows the backend was given.", labels, totals.new_flows);
            out.add("sluice_backend_active_flows", Type::gauge,
                    "Flows of the backend in the workers' tables.", labels, totals.active_flows);
            const bool is_up = std::string_view(health) != "down";
            out.add("sluice_backend_up", Type::gauge,
                    "1 when the backend takes flows by its health (up or unchecked), 0 when "
                    "down.",
                    labels, is_up);
            out.add("sluice_backend_health_changes_total", Type::counter,
                    "Times the backend's health check verdict changed.", labels,
                    view.health_changes(service.name, backend));
            out.add("sluice_backend_drained", Type::gauge,
                    "1 when the backend is drained: no new flows, its flows go on.", labels,
                    backend.drained);
            out.add("sluice_backend_weight", Type::gauge, "The backend's Maglev weight.", labels,
                    backend.weight);
            service_totals.packets += totals.packets;
            service_totals.bytes += totals.bytes;
            service_totals.new_flows += totals.new_flows;
            service_totals.active_flows += totals.active_flows;
            up += is_up;
        }
        const Labels labels = {{"service", service.name}};
        out.add("sluice_service_packets_total", Type::counter,
                "Packets balanced to and from the service's backends.", labels,
                service_totals.packets);
        out.add("sluice_service_bytes_total", Type::counter,
                "Bytes balanced to and from the service's backends.", labels,
                service_totals.bytes);
        out.add("sluice_service_new_flows_total", Type::counter, "Flows the service was given.",
                labels, service_totals.new_flows);
        out.add("sluice_service_active_flows", Type::gauge,
                "Flows of the service in the workers' tables.", labels,
                service_totals.active_flows);
        out.add("sluice_service_backends_up", Type::gauge,
                "Backends of the service that are up or unchecked.", labels, up);
    }
}

void collect_port(Collector &out, const std::string &name, uint16_t port_id) {
    rte_eth_stats stats;
    if (rte_eth_stats_get(port_id, &stats) == 0) {
        const Labels label = {{"port", name}};
        add_counters(out, "sluice_port_", label, {
            {"rx_packets", "Packets the device received.", stats.ipackets},
            {"tx_packets", "Packets the device sent.", stats.opackets},
            {"rx_bytes", "Bytes the device received.", stats.ibytes},
            {"tx_bytes", "Bytes the device sent.", stats.obytes},
            {"rx_missed", "Packets the device dropped: no room in an RX queue.", stats.imissed},
            {"rx_errors", "Erroneous packets the device received.", stats.ierrors},
            {"tx_errors", "Packets the device failed to send.", stats.oerrors},
            {"rx_no_mbuf", "Receptions that failed for want of an mbuf.", stats.rx_nombuf},
        });
    }
    const int count = rte_eth_xstats_get_names(port_id, nullptr, 0);
    if (count <= 0)
        return;
    std::vector<rte_eth_xstat_name> names(static_cast<size_t>(count));
    std::vector<rte_eth_xstat> values(static_cast<size_t>(count));
    if (rte_eth_xstats_get_names(port_id, names.data(), unsigned(count)) != count ||
        rte_eth_xstats_get(port_id, values.data(), unsigned(count)) != count)
        return;
    for (const rte_eth_xstat &value : values)
        if (value.id < names.size())
            out.add("sluice_port_xstat_total", Type::counter,
                    "The device's extended statistics (DPDK xstats), by name.",
                    {{"port", name}, {"xstat", names[value.id].name}}, value.value);
}

// Label values escape backslash, double quote and newline.
void write_label_value(std::string &out, const std::string &value) {
    for (const char c : value) {
        if (c == '\\' || c == '"')
            out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
}

} // namespace

BackendTotals backend_totals(const std::vector<std::unique_ptr<dataplane::WorkerContext>> &workers,
                             lb::BackendSlot slot) {
    BackendTotals totals;
    if (slot == lb::no_backend_slot)
        return totals;
    for (const auto &worker : workers) {
        if (!worker->balancing)
            continue;
        // Ended first: a flow opened between the reads never makes the open
        // count wrap below zero.
        const uint64_t ended = worker->balancing->flows->ended_flows(slot);
        const lb::BackendCounters &c = worker->balancing->balancer->backend_counters(slot);
        const uint64_t opened = c.new_flows.read();
        totals.packets += c.packets.read();
        totals.bytes += c.bytes.read();
        totals.new_flows += opened;
        totals.active_flows += opened - ended;
    }
    return totals;
}

// Each feed's state and view, and the registration's.
void collect_discovery(Collector &out, const Discovery &discovery) {
    for (const FeedReport &report : discovery.feeds()) {
        const FeedStatus &status = report.status;
        const Labels labels = {{"feed", status.name}, {"type", status.kind}};
        out.add("sluice_discovery_feed_stale", Type::gauge,
                "1 while the feed has lost its source and serves its last known endpoints.",
                labels, status.health == FeedHealth::stale);
        out.add("sluice_discovery_feed_current", Type::gauge,
                "1 while the feed is in step with its source.", labels,
                status.health == FeedHealth::current);
        out.add("sluice_discovery_feed_endpoints", Type::gauge,
                "Endpoints in the feed's last view.", labels, report.endpoints);
        out.add("sluice_discovery_feed_updates_total", Type::counter,
                "Changed views the feed delivered.", labels, status.updates);
    }
    if (const auto registration = discovery.registration()) {
        const Labels labels = {{"key", registration->key}};
        out.add("sluice_discovery_registered", Type::gauge,
                "1 while the gateway's key is in etcd under a live lease.", labels,
                registration->registered);
        out.add("sluice_discovery_registration_leases_total", Type::counter,
                "Leases granted to the registration: more than 1 when one was lost.", labels,
                registration->grants);
    }
}

std::vector<MetricFamily> collect_metrics(const MetricsView &view) {
    Collector out;
    for (const auto &worker : view.workers)
        collect_worker(out, *worker);
    collect_backends(out, view);
    if (view.discovery)
        collect_discovery(out, *view.discovery);
    for (const auto &port : view.ports) {
        collect_port(out, port.name, port.port_id);
        if (port.has_exception_path)
            collect_port(out, port.exception_tap, port.exception_port_id);
    }
    return out.take();
}

std::string prometheus_text(const std::vector<MetricFamily> &families) {
    std::string out;
    for (const MetricFamily &family : families) {
        out += "# HELP " + family.name + ' ' + family.help + '\n';
        out += "# TYPE " + family.name +
               (family.type == MetricFamily::Type::counter ? " counter\n" : " gauge\n");
        for (const MetricSample &sample : family.samples) {
            out += family.name;
            if (!sample.labels.empty()) {
                out += '{';
                for (size_t i = 0; i < sample.labels.size(); ++i) {
                    if (i)
                        out += ',';
                    out += sample.labels[i].first + "=\"";
                    write_label_value(out, sample.labels[i].second);
                    out += '"';
                }
                out += '}';
            }
            out += ' ' + std::to_string(sample.value) + '\n';
        }
    }
    return out;
}

nlohmann::json metrics_json(const std::vector<MetricFamily> &families) {
    nlohmann::json out = nlohmann::json::object();
    for (const MetricFamily &family : families) {
        nlohmann::json samples = nlohmann::json::array();
        for (const MetricSample &sample : family.samples) {
            nlohmann::json labels = nlohmann::json::object();
            for (const auto &[key, value] : sample.labels)
                labels[key] = value;
            samples.push_back({{"labels", std::move(labels)}, {"value", sample.value}});
        }
        out[family.name] = {
            {"type", family.type == MetricFamily::Type::counter ? "counter" : "gauge"},
            {"help", family.help},
            {"samples", std::move(samples)}};
    }
    return out;
}

} // namespace sluice::ctrl
