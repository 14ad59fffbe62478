#include "ctrl/counters_report.h"

#include <rte_ethdev.h>

namespace sluice::ctrl {

namespace {

void write_worker(std::ostream &out, const dataplane::WorkerContext &worker) {
    const auto &c = worker.counters;
    const std::string label = "{worker=\"" + std::to_string(worker.id) + "\"}";
    const std::pair<const char *, const Counter *> counters[] = {
        {"rx_packets", &c.rx_packets},
        {"rx_bytes", &c.rx_bytes},
        {"tx_packets", &c.tx_packets},
        {"tx_bytes", &c.tx_bytes},
        {"arp_replies", &c.arp_replies},
        {"icmp_echo_replies", &c.icmp_echo_replies},
        {"icmpv6_echo_replies", &c.icmpv6_echo_replies},
        {"neighbor_advertisements", &c.neighbor_advertisements},
        {"to_kernel_packets", &c.to_kernel},
        {"from_kernel_packets", &c.from_kernel},
        {"steered_out_packets", &c.steered_out},
        {"steered_in_packets", &c.steered_in},
        {"neighbour_waits", &c.neighbour_waits},
        {"busy_cycles", &c.busy_cycles},
        {"idle_cycles", &c.idle_cycles},
        {"idle_sleeps", &c.idle_sleeps},
    };
    for (const auto &[name, counter] : counters)
        out << "sluice_worker_" << name << label << ' ' << counter->read() << '\n';
    if (worker.balancing) {
        const auto &b = worker.balancing->counters;
        const std::pair<const char *, const Counter *> balancing[] = {
            {"new_flows", &b.new_flows},
            {"to_backend_packets", &b.to_backend_packets},
            {"to_client_packets", &b.to_client_packets},
            {"stateless_packets", &b.stateless_packets},
            {"icmp_errors_translated", &b.icmp_errors},
            {"later_fragments", &b.later_fragments},
            {"resets_sent", &b.resets_sent},
            {"icmp_too_big_sent", &b.icmp_too_big_sent},
        };
        for (const auto &[name, counter] : balancing)
            out << "sluice_worker_" << name << label << ' ' << counter->read() << '\n';
        // Read across threads without a lock: a gauge, possibly a poll old.
        out << "sluice_worker_flows" << label << ' ' << worker.balancing->flows->size() << '\n';
    }
    for (size_t reason = 1; reason < drop_reason_count; ++reason) {
        const uint64_t drops = c.drops[reason].read();
        if (drops)
            out << "sluice_worker_drops{worker=\"" << worker.id << "\",reason=\""
                << drop_reason_name(DropReason(reason)) << "\"} " << drops << '\n';
    }
}

void write_port(std::ostream &out, const std::string &name, uint16_t port_id) {
    rte_eth_stats stats;
    if (rte_eth_stats_get(port_id, &stats) != 0)
        return;
    const std::string label = "{port=\"" + name + "\"}";
    out << "sluice_port_rx_packets" << label << ' ' << stats.ipackets << '\n'
        << "sluice_port_tx_packets" << label << ' ' << stats.opackets << '\n'
        << "sluice_port_rx_bytes" << label << ' ' << stats.ibytes << '\n'
        << "sluice_port_tx_bytes" << label << ' ' << stats.obytes << '\n'
        << "sluice_port_rx_missed" << label << ' ' << stats.imissed << '\n'
        << "sluice_port_rx_errors" << label << ' ' << stats.ierrors << '\n'
        << "sluice_port_tx_errors" << label << ' ' << stats.oerrors << '\n'
        << "sluice_port_rx_no_mbuf" << label << ' ' << stats.rx_nombuf << '\n';
}

} // namespace

void write_counters(std::ostream &out, const CountersView &view) {
    for (const auto &worker : view.workers)
        write_worker(out, *worker);
    for (const auto &port : view.ports) {
        write_port(out, port.name, port.port_id);
        if (port.has_exception_path)
            write_port(out, port.exception_tap, port.exception_port_id);
    }
}

} // namespace sluice::ctrl
