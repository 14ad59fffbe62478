// sluiced: validates its config, starts the EAL, opens the ports and their
// exception paths, launches one worker per worker lcore, and runs the control
// plane on the main lcore until SIGTERM or SIGINT.
#include <getopt.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "ctrl/api.h"
#include "ctrl/backend_slots.h"
#include "ctrl/backend_rules.h"
#include "ctrl/config.h"
#include "ctrl/discovery.h"
#include "ctrl/health_checker.h"
#include "ctrl/http_server.h"
#include "ctrl/metrics.h"
#include "ctrl/neighbours.h"
#include "ctrl/snapshot_builder.h"
#include "dataplane/eal.h"
#include "dataplane/exception_path.h"
#include "dataplane/published_snapshot.h"
#include "dataplane/port.h"
#include "dataplane/steering_rules.h"
#include "dataplane/worker.h"

namespace sluice::ctrl {

namespace {

constexpr int exit_runtime_failure = 1;
constexpr int exit_bad_config = 2;

void usage(FILE *out) {
    std::fprintf(out,
                 "usage: sluiced --config FILE [--check]\n"
                 "  --config FILE  YAML configuration (docs/configuration.md)\n"
                 "  --check        validate the configuration and exit\n"
                 "signals: SIGTERM/SIGINT stop, SIGUSR1 prints counters,\n"
                 "         SIGHUP reloads routes and services\n");
}

dataplane::EalOptions eal_options(const Config &config, std::string &error) {
    dataplane::EalOptions options;
    options.main_lcore = config.cores.control;
    options.worker_lcores = config.cores.workers;
    options.lcore_cpus = config.cores.cpus;
    options.memory_mb = config.eal.memory_mb;
    options.log_level = config.eal.log_level;
    options.extra_args = config.eal.extra_args;
    options.file_prefix = config.eal.file_prefix.empty()
                              ? "sluice-" + std::to_string(getpid())
                              : config.eal.file_prefix;
    switch (config.eal.hugepages) {
    case HugepageMode::automatic:
        options.use_hugepages = dataplane::hugepages_available();
        break;
    case HugepageMode::always:
        options.use_hugepages = true;
        if (!dataplane::hugepages_available())
            error = "eal.hugepages is 'always' but no hugepages are free or hugetlbfs is "
                    "not mounted";
        break;
    case HugepageMode::never:
        options.use_hugepages = false;
        break;
    }
    for (const PortConfig &port : config.ports) {
        if (port.is_pci()) {
            options.pci_devices.push_back(port.device);
            continue;
        }
        std::string vdev = port.device;
        // net_af_packet opens one queue pair unless told otherwise.
        if (port.device_name().rfind("net_af_packet", 0) == 0 &&
            vdev.find("qpairs=") == std::string::npos)
            vdev += ",qpairs=" + std::to_string(config.cores.workers.size());
        options.vdevs.push_back(vdev);
    }
    return options;
}

// Mbufs for every descriptor of every queue, the TX buffers and lcore caches
// of every worker, and slack for packets in flight between them.
unsigned mempool_size(const Config &config) {
    const unsigned workers = unsigned(config.cores.workers.size());
    unsigned mbufs = 0;
    for (const PortConfig &port : config.ports) {
        mbufs += workers * (port.rx_descriptors + port.tx_descriptors);
        if (!port.exception_tap.empty())
            mbufs += workers * 2 * 512;
    }
    mbufs += (workers + 1) * (4 * dataplane::max_burst * unsigned(config.ports.size()) + 512);
    mbufs += workers * dataplane::NeighbourWait::capacity;
    return mbufs + 2048;
}

uint64_t monotonic_ms() {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return uint64_t(now.tv_sec) * 1000 + uint64_t(now.tv_nsec) / 1'000'000;
}

// The signals the control plane takes: stop, counters, reload.
sigset_t control_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    for (const int signal : {SIGTERM, SIGINT, SIGUSR1, SIGHUP})
        sigaddset(&signals, signal);
    return signals;
}

class Gateway {
public:
    Gateway(Config config, std::string path)
        : base_(config), config_(std::move(config)), path_(std::move(path)),
          cpus_(online_cpu_count()) {}
    ~Gateway() { shut_down(); }

    bool start(std::string &error);
    void wait_for_stop();
    void shut_down();

private:
    bool open_ports(std::string &error);
    void start_balancing();
    void refresh_neighbours();
    // Re-reads the config file (SIGHUP, the API): "" or why nothing changed.
    std::string reload();
    // Makes `next` (the file's, or the API's) the base config: its feeds
    // run, and it is published with their endpoints merged in. "" or why
    // nothing changed.
    std::string apply_base(Config next);
    MergeResult merge(const Config &base);
    // Merges the feeds' views into the base config and publishes the
    // result when it differs from the running config.
    void publish_merged();
    // Makes `next` the running config: its services, routes and balancing
    // settings take effect in a new snapshot. "" or why nothing changed.
    std::string apply_config(Config next);
    // The section of `next` that only a restart can change, or null.
    const char *needs_restart(const Config &next) const;
    void publish_snapshot();
    // True when no worker holds a flow counted in `slot`.
    bool backend_slot_idle(lb::BackendSlot slot) const;
    void steer_return_traffic();
    bool launch_workers(std::string &error);
    void print_counters();
    std::vector<MetricFamily> metrics() const;

    // The management API and the health checks, on the control plane's loop.
    bool start_api(std::string &error);
    HttpResponse serve(const HttpRequest &request);
    nlohmann::json backend_status(const std::string &service, const BackendConfig &backend) const;
    void update_health_targets();
    void take_health_changes();

    // Discovery: the registration's value, the API's views, the log.
    std::string registration_value() const;
    nlohmann::json feeds_json() const;
    nlohmann::json backend_sources(const std::string &service, const BackendConfig &backend) const;
    void service_discovery();
    BackendHealth health_of(const ServiceConfig &service, const BackendConfig &backend) const;

    // The file's config with the API's changes, and what runs: the base with
    // the discovery feeds' endpoints merged into its services.
    Config base_;
    Config config_;
    const std::string path_;
    const unsigned cpus_;  // before the EAL pins this thread to its lcore
    bool eal_started_ = false;
    bool workers_launched_ = false;
    std::atomic<bool> stop_{false};
    std::map<int, rte_mempool *> pools_;  // by NUMA socket
    std::vector<dataplane::Port> ports_;
    std::vector<std::unique_ptr<dataplane::WorkerContext>> workers_;
    // With more than one worker: their inboxes and how flows are owned.
    std::unique_ptr<dataplane::WorkerSteering> steering_;

    // Balancing, when services are configured.
    std::unique_ptr<dataplane::PublishedSnapshot> snapshot_;
    std::unique_ptr<NeighbourWatcher> neighbours_;
    std::map<NeighbourKey, MacAddress> known_neighbours_;
    // Backends an earlier config had: their flows may still run, so their
    // next hops stay known.
    std::vector<IpAddress> retired_backends_;
    BackendSlots backend_slots_;
    // Profile 0 is lb.timeouts, which only a restart changes.
    TimeoutProfiles timeout_profiles_{config_.lb.timeouts};
    uint64_t generation_ = 0;

    HealthChecker health_;
    // Health state changes, by service, backend address and port.
    std::map<std::tuple<std::string, std::string, uint16_t>, uint64_t> health_changes_;
    std::unique_ptr<ManagementApi> api_;
    HttpServer http_;

    Discovery discovery_;
    std::string instance_;  // the registration's default name: the host's
    Provenance provenance_;
    std::vector<IgnoredEndpoints> ignored_;
    std::string registered_value_;
};

bool Gateway::start(std::string &error) {
    const dataplane::EalOptions options = eal_options(config_, error);
    if (!error.empty())
        return false;
    if (!dataplane::start_eal(options, error))
        return false;
    eal_started_ = true;
    std::printf("sluiced: EAL up (%s), %zu worker(s)\n",
                options.use_hugepages ? "hugepages" : "no hugepages",
                config_.cores.workers.size());
    if (!open_ports(error))
        return false;
    start_balancing();
    if (!launch_workers(error))
        return false;
    update_health_targets();
    if (!start_api(error))
        return false;
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    instance_ = host;
    registered_value_ = registration_value();
    if (const std::string refused = discovery_.configure(base_, instance_, registered_value_);
        !refused.empty()) {
        error = refused;
        return false;
    }
    publish_merged();
    if (neighbours_) {
        // The kernel resolves the backends through the running workers. Give
        // it a moment before announcing: until then, their packets would be
        // dropped as unresolved.
        const size_t wanted = wanted_neighbours(config_, retired_backends_).size();
        for (int attempt = 0; attempt < 60 && known_neighbours_.size() < wanted; ++attempt) {
            refresh_neighbours();
            if (known_neighbours_.size() < wanted)
                usleep(50'000);
        }
    }
    std::printf("sluiced: running\n");
    return true;
}

// Always, even with no services yet: a reload may add some, and the
// snapshot also says what each port answers ARP, ND and echo for.
void Gateway::start_balancing() {
    snapshot_ = std::make_unique<dataplane::PublishedSnapshot>(
        unsigned(config_.cores.workers.size()));
    neighbours_ = std::make_unique<NeighbourWatcher>();
    std::string error;
    // No worker runs yet: every slot is idle, and the config was checked to
    // fit (slots, and the flow tables' timeout profiles).
    backend_slots_.assign(config_, [](lb::BackendSlot) { return true; }, error);
    timeout_profiles_.assign(config_, error);
    publish_snapshot();
    std::printf("sluiced: balancing %zu service(s)\n", config_.services.size());
    steer_return_traffic();
}

// With several workers, fullnat answers must reach the worker owning their
// SNAT port: by rte_flow rules where the port takes them, else by the
// workers passing packets to each other (always on, whatever the rules do).
void Gateway::steer_return_traffic() {
    const unsigned workers = unsigned(config_.cores.workers.size());
    if (workers < 2)
        return;
    std::vector<IpAddress> snat;
    for (const ServiceConfig &service : config_.services)
        for (const IpAddress &address : service.local_addresses)
            if (std::find(snat.begin(), snat.end(), address) == snat.end())
                snat.push_back(address);
    const lb::SnatSlices slices(workers);
    for (const dataplane::Port &port : ports_) {
        std::string refused;
        const int rules = dataplane::install_steering_rules(port.port_id, snat, slices, refused);
        if (rules >= 0)
            std::printf("sluiced: port %s: %d rte_flow rule(s) steer fullnat answers\n",
                        port.name.c_str(), rules);
        else
            std::printf("sluiced: port %s: rte_flow refused (%s): answers are steered in "
                        "software\n",
                        port.name.c_str(), refused.c_str());
    }
}

// Asks the kernel to resolve (or re-confirm) the backends' MACs, and publishes
// a new snapshot when what it knows has changed.
void Gateway::refresh_neighbours() {
    std::map<NeighbourKey, MacAddress> found =
        neighbours_->refresh(wanted_neighbours(config_, retired_backends_));
    if (found == known_neighbours_)
        return;
    for (const auto &[key, mac] : found)
        if (!known_neighbours_.count(key) || known_neighbours_.at(key) != mac)
            std::printf("sluiced: neighbour %s is at %s on %s\n", key.second.c_str(),
                        mac.to_string().c_str(), key.first.c_str());
    for (const auto &[key, mac] : known_neighbours_)
        if (!found.count(key))
            std::printf("sluiced: neighbour %s on %s is unreachable\n", key.second.c_str(),
                        key.first.c_str());
    known_neighbours_ = std::move(found);
    publish_snapshot();
}

void Gateway::publish_snapshot() {
    const auto state_of = [this](const ServiceConfig &service, const BackendConfig &backend) {
        return BackendState{backend_slots_.slot(service.name, backend),
                            health_of(service, backend) == BackendHealth::down};
    };
    snapshot_->publish(build_snapshot(config_, ports_, retired_backends_, known_neighbours_,
                                      state_of, timeout_profiles_, ++generation_));
}

bool Gateway::backend_slot_idle(lb::BackendSlot slot) const {
    for (const auto &worker : workers_) {
        const dataplane::WorkerBalancing &balancing = *worker->balancing;
        // Ended after opened: a flow opened between the two reads only makes
        // the slot look busy.
        const uint64_t ended = balancing.flows->ended_flows(slot);
        if (balancing.balancer->backend_counters(slot).new_flows.read() != ended)
            return false;
    }
    return true;
}

// SIGHUP: the routes, services and balancing settings of the file take
// effect at once, in a new snapshot; established flows keep their backends.
// A file that fails validation, or that changes what only a restart can
// (EAL, cores, worker tuning, ports), changes nothing.
std::string Gateway::reload() {
    Config next;
    try {
        next = load_config_file(path_, cpus_);
    } catch (const ConfigError &e) {
        std::printf("sluiced: reload refused, nothing changed: %s\n", e.what());
        return e.what();
    }
    for (const std::string &warning : next.warnings)
        std::printf("sluiced: warning: %s\n", warning.c_str());
    const std::string refused = apply_base(std::move(next));
    if (!refused.empty()) {
        std::printf("sluiced: reload refused, nothing changed: %s\n", refused.c_str());
        return refused;
    }
    std::printf("sluiced: reloaded %s: %zu service(s), generation %lu\n", path_.c_str(),
                config_.services.size(), (unsigned long)generation_);
    return "";
}

const char *Gateway::needs_restart(const Config &next) const {
    return !(next.eal == config_.eal)       ? "eal"
           : !(next.cores == config_.cores)   ? "cores"
           : !(next.worker == config_.worker) ? "worker"
           : !(next.ports == config_.ports)   ? "ports"
           : !(next.api == config_.api)       ? "api"
           : !(next.lb.flow_table_size == config_.lb.flow_table_size &&
               next.lb.timeouts == config_.lb.timeouts)
               ? "lb.flow_table_size and lb.timeouts"
           : !(next.tcp == config_.tcp) ? "tcp"
                                        : nullptr;
}

// `base` with the feeds' endpoints that meet the config's rules for a backend.
MergeResult Gateway::merge(const Config &base) {
    const BackendRules rules(base);
    return discovery_.merge(
        base, EndpointMerger::Clock::now(),
        [&rules](const ServiceConfig &service, const BackendConfig &backend) {
            const auto problem = rules.check(service, backend);
            return problem ? problem->key + ": " + problem->message : std::string();
        });
}

std::string Gateway::apply_base(Config next) {
    if (const char *fixed = needs_restart(next))
        return std::string(fixed) + " changed, which needs a restart";
    // New feeds start first; they take over only once the rest is accepted.
    if (const std::string refused = discovery_.prepare(next, instance_, registered_value_);
        !refused.empty())
        return refused;
    const MergeResult merged = merge(next);
    if (const std::string refused = apply_config(merged.config); !refused.empty()) {
        discovery_.abandon();
        return refused;
    }
    base_ = std::move(next);
    provenance_ = merged.provenance;
    ignored_ = merged.ignored;
    discovery_.commit();
    // The feeds that came or went change the merge.
    publish_merged();
    return "";
}

void Gateway::publish_merged() {
    MergeResult merged = merge(base_);
    for (const IgnoredEndpoints &ignored : merged.ignored)
        if (std::find(ignored_.begin(), ignored_.end(), ignored) == ignored_.end())
            std::printf("sluiced: discovery: feed %s, service %s%s%s: ignored: %s\n",
                        ignored.feed.c_str(), ignored.service.c_str(),
                        ignored.id.empty() ? "" : ", endpoint ", ignored.id.c_str(),
                        ignored.reason.c_str());
    provenance_ = std::move(merged.provenance);
    ignored_ = std::move(merged.ignored);
    if (merged.config == config_)
        return;
    if (const std::string refused = apply_config(std::move(merged.config)); !refused.empty()) {
        std::printf("sluiced: discovery: the feeds' endpoints were not published: %s\n",
                    refused.c_str());
        return;
    }
    size_t backends = 0;
    for (const ServiceConfig &service : config_.services)
        backends += service.backends.size();
    std::printf("sluiced: discovery: published %zu backend(s), generation %lu\n", backends,
                (unsigned long)generation_);
}

std::string Gateway::apply_config(Config next) {
    if (const char *fixed = needs_restart(next))
        return std::string(fixed) + " changed, which needs a restart";
    std::string error;
    // Profiles first: one given out for nothing, when the slots then
    // refuse, only uses up one of the run's 255.
    if (!timeout_profiles_.assign(next, error))
        return error;
    if (!backend_slots_.assign(
            next, [this](lb::BackendSlot slot) { return backend_slot_idle(slot); }, error))
        return error;
    for (const ServiceConfig &service : config_.services)
        for (const BackendConfig &backend : service.backends)
            if (std::find(retired_backends_.begin(), retired_backends_.end(), backend.address) ==
                retired_backends_.end())
                retired_backends_.push_back(backend.address);
    config_ = std::move(next);
    update_health_targets();
    publish_snapshot();
    steer_return_traffic();
    refresh_neighbours();
    return "";
}

bool Gateway::open_ports(std::string &error) {
    const uint16_t queues = uint16_t(config_.cores.workers.size());
    unsigned max_mtu = 0;
    for (const PortConfig &port : config_.ports)
        max_mtu = std::max(max_mtu, port.mtu);

    for (const PortConfig &port_config : config_.ports) {
        dataplane::Port port;
        port.name = port_config.name;
        const std::string where = "port " + port_config.name + " (" + port_config.device + "): ";
        if (!dataplane::find_port(port_config.device_name(), port.port_id, error)) {
            error = where + error;
            return false;
        }
        port.socket = dataplane::port_socket(port.port_id);
        rte_mempool *&pool = pools_[port.socket];
        if (!pool && !(pool = dataplane::create_mempool(port.socket, mempool_size(config_),
                                                        dataplane::mbuf_data_room(max_mtu),
                                                        error)))
            return false;

        const dataplane::QueueSetup setup{queues, port_config.rx_descriptors,
                                          port_config.tx_descriptors, port_config.mtu, true};
        if (!dataplane::start_port(port.port_id, setup, pool, error)) {
            error = where + error;
            rte_eth_dev_close(port.port_id);
            return false;
        }
        port.mac = dataplane::port_mac(port.port_id);
        port.local = local_addresses(config_, port_config, port.mac);
        port.exception_tap = port_config.exception_tap;
        // From here on shut_down() closes it, whatever fails next.
        ports_.push_back(port);
        if (!port_config.exception_tap.empty() &&
            !dataplane::open_exception_path(ports_.back(), setup, port_config.addresses, pool,
                                            error)) {
            error = where + error;
            return false;
        }
        std::printf("sluiced: port %s up: %s mac %s%s%s\n", port.name.c_str(),
                    port_config.device.c_str(), port.mac.to_string().c_str(),
                    port.exception_tap.empty() ? "" : ", exception path ",
                    port.exception_tap.c_str());
    }
    return true;
}

bool Gateway::launch_workers(std::string &error) {
    const unsigned workers = unsigned(config_.cores.workers.size());
    if (workers > 1) {
        steering_ = std::make_unique<dataplane::WorkerSteering>(workers);
        for (unsigned i = 0; i < workers; ++i) {
            // Room for a few bursts from every other worker.
            const std::string name = "steer-inbox-" + std::to_string(i);
            rte_ring *inbox = rte_ring_create_elem(
                name.c_str(), sizeof(dataplane::SteeredPacket),
                rte_align32pow2(workers * 8 * dataplane::max_burst),
                rte_lcore_to_socket_id(config_.cores.workers[i]), RING_F_SC_DEQ);
            if (!inbox) {
                error = "cannot create " + name + ": " + rte_strerror(rte_errno);
                return false;
            }
            steering_->inboxes.push_back(inbox);
        }
    }
    const lb::SnatSlices slices(workers);
    for (size_t i = 0; i < workers; ++i) {
        auto worker = std::make_unique<dataplane::WorkerContext>();
        worker->id = unsigned(i);
        worker->settings = {config_.worker.burst_size, config_.worker.tx_drain_us,
                            config_.worker.idle_sleep_max_us};
        worker->stop = &stop_;
        worker->steering = steering_.get();
        for (const dataplane::Port &port : ports_) {
            dataplane::WorkerPort view;
            view.port_id = port.port_id;
            view.queue_id = uint16_t(i);
            view.has_exception_path = port.has_exception_path;
            view.exception_port_id = port.exception_port_id;
            view.local = &port.local;
            worker->ports.push_back(view);
        }
        auto balancing = std::make_unique<dataplane::WorkerBalancing>();
        balancing->snapshot = snapshot_.get();
        balancing->flows = std::make_unique<lb::FlowTable>(config_.lb.flow_table_size,
                                                           lb::HashKey::random(),
                                                           timeout_profiles_.timeouts(0));
        if (i == 0)
            std::printf("sluiced: flow tables of %u flows in %s\n", config_.lb.flow_table_size,
                        balancing->flows->in_reserved_hugepages()
                            ? "reserved hugepages"
                            : "transparent hugepages (no reserved ones left)");
        // Each worker owns a slice of the local ports: fullnat's SNAT ports
        // first, then the TCP's for the proxy's backend connections.
        const lb::SnatPortRange slice = slices.slice(unsigned(i));
        const unsigned tcp_ports =
            (unsigned(slice.last) - slice.first + 1) * config_.tcp.backend_port_share / 100;
        const lb::SnatPortRange snat{slice.first, uint16_t(slice.last - tcp_ports)};
        balancing->balancer = std::make_unique<lb::L4Balancer>(
            *balancing->flows, snat, std::random_device{}());
        worker->balancing = std::move(balancing);
        if (tcp_ports) {
            const TcpConfig &tcp = config_.tcp;
            dataplane::WorkerTcpSettings settings;
            settings.connection.mss = uint16_t(tcp.mss);
            settings.connection.send_buffer = tcp.send_buffer;
            settings.connection.receive_buffer = tcp.receive_buffer;
            // A window scale that lets the offered window span the buffer.
            settings.connection.window_shift = 0;
            while (settings.connection.window_shift < 14 &&
                   (uint64_t(65535) << settings.connection.window_shift) < tcp.receive_buffer)
                ++settings.connection.window_shift;
            settings.connection.congestion =
                tcp.cubic ? tcp::Congestion::cubic : tcp::Congestion::newreno;
            settings.connection.keepalive_idle_us = uint64_t(tcp.keepalive_idle) * 1'000'000;
            settings.connection.keepalive_interval_us = tcp.keepalive_interval * 1'000'000u;
            settings.connection.keepalive_probes = tcp.keepalive_probes;
            settings.limits = {tcp.max_connections, tcp.syn_backlog, tcp.max_time_wait};
            settings.ports = {uint16_t(snat.last + 1), slice.last};
            settings.proxy.idle_timeout_us = uint64_t(tcp.idle_timeout) * 1'000'000;
            settings.secret = uint64_t(std::random_device{}()) << 32 | std::random_device{}();
            // The pool of the worker's NUMA socket, if a port is there.
            const auto pool = pools_.find(int(rte_lcore_to_socket_id(config_.cores.workers[i])));
            worker->tcp = std::make_unique<dataplane::WorkerTcp>(
                settings, *worker, (pool != pools_.end() ? pool : pools_.begin())->second);
        }
        workers_.push_back(std::move(worker));
    }
    for (size_t i = 0; i < workers_.size(); ++i)
        rte_eal_remote_launch(dataplane::run_worker, workers_[i].get(),
                              config_.cores.workers[i]);
    workers_launched_ = true;
    return true;
}

std::vector<MetricFamily> Gateway::metrics() const {
    return collect_metrics(MetricsView{
        workers_, ports_, config_, backend_slots_,
        [this](const ServiceConfig &service, const BackendConfig &backend) {
            return to_string(health_of(service, backend));
        },
        [this](const std::string &service, const BackendConfig &backend) {
            const auto found = health_changes_.find(
                {service, backend.address.to_string(), backend.port});
            return found == health_changes_.end() ? uint64_t(0) : found->second;
        },
        &discovery_});
}

// The port a backend's check connects to, which is also how the checker
// knows the target: the check's own, else the backend's, else the service's.
uint16_t health_check_port(const ServiceConfig &service, const BackendConfig &backend) {
    return service.health_check->port     ? service.health_check->port
           : backend.port                  ? backend.port
                                           : service.port;
}

BackendHealth Gateway::health_of(const ServiceConfig &service,
                                 const BackendConfig &backend) const {
    if (!service.health_check)
        return BackendHealth::unchecked;
    return health_.health(service.name, backend.address, health_check_port(service, backend));
}

void Gateway::update_health_targets() {
    std::vector<HealthTarget> targets;
    for (const ServiceConfig &service : config_.services)
        if (service.health_check)
            for (const BackendConfig &backend : service.backends)
                targets.push_back({service.name, backend.address,
                                   health_check_port(service, backend), *service.health_check});
    health_.set_targets(std::move(targets));
}

// Health verdicts since the last call: logged, counted, and published when
// they change whether a backend takes flows.
void Gateway::take_health_changes() {
    bool publish = false;
    for (const HealthChange &change : health_.take_changes()) {
        const ServiceConfig *service = nullptr;
        for (const ServiceConfig &candidate : config_.services)
            if (candidate.name == change.service && candidate.health_check)
                service = &candidate;
        if (!service)
            continue;  // a target the config no longer has
        for (const BackendConfig &backend : service->backends) {
            if (backend.address != change.address ||
                health_check_port(*service, backend) != change.port)
                continue;
            ++health_changes_[{service->name, backend.address.to_string(), backend.port}];
        }
        std::printf("sluiced: health: %s %s port %u: %s -> %s%s%s\n", change.service.c_str(),
                    change.address.to_string().c_str(), unsigned(change.port),
                    to_string(change.from), to_string(change.to),
                    change.reason.empty() ? "" : ": ", change.reason.c_str());
        const bool was_down = change.from == BackendHealth::down;
        publish = publish || was_down != (change.to == BackendHealth::down);
    }
    if (publish)
        publish_snapshot();
}

nlohmann::json Gateway::backend_status(const std::string &service,
                                       const BackendConfig &backend) const {
    const BackendTotals totals = backend_totals(workers_, backend_slots_.slot(service, backend));
    const char *health = "unchecked";
    for (const ServiceConfig &candidate : config_.services)
        if (candidate.name == service)
            health = to_string(health_of(candidate, backend));
    return {{"health", health},
            {"packets", totals.packets},
            {"bytes", totals.bytes},
            {"active_flows", totals.active_flows},
            {"new_flows", totals.new_flows}};
}

bool Gateway::start_api(std::string &error) {
    ApiHooks hooks;
    hooks.config = [this]() -> const Config & { return base_; };
    hooks.published = [this]() -> const Config & { return config_; };
    hooks.apply = [this](Config next) { return apply_base(std::move(next)); };
    hooks.backend_sources = [this](const std::string &service, const BackendConfig &backend) {
        return backend_sources(service, backend);
    };
    hooks.feeds = [this] { return feeds_json(); };
    hooks.reload = [this](uint64_t &generation, size_t &services) {
        const std::string refused = reload();
        generation = generation_;
        services = base_.services.size();
        return refused;
    };
    hooks.stats = [this] { return metrics_json(metrics()); };
    hooks.backend_status = [this](const std::string &service, const BackendConfig &backend) {
        return backend_status(service, backend);
    };
    hooks.metrics = [this] { return prometheus_text(metrics()); };
    api_ = std::make_unique<ManagementApi>(std::move(hooks));

    const ApiConfig &api = config_.api;
    HttpServerSettings settings;
    settings.listen = api.listen();
    settings.max_body_bytes = api.max_body_bytes;
    settings.max_clients = api.max_clients;
    if (api.tls) {
        settings.tls_certificate = api.tls->certificate;
        settings.tls_private_key = api.tls->private_key;
        settings.tls_client_ca = api.tls->client_ca;
    }
    if (!http_.start(settings, [this](const HttpRequest &request) { return serve(request); },
                     error)) {
        error = "api: " + error;
        return false;
    }
    std::printf("sluiced: API on %s://%s%s\n", api.tls ? "https" : "http", api.listen().c_str(),
                api.read_only() ? " (read-only: no token configured)" : "");
    return true;
}

HttpResponse Gateway::serve(const HttpRequest &request) {
    ApiRequest call;
    call.method = request.method;
    call.path = request.target.substr(0, request.target.find('?'));
    call.query = request.query;
    call.body = request.body;
    if (const std::string *authorization = request.header("authorization"))
        call.authorization = *authorization;
    const ApiResponse answer = api_->handle(call);
    // Changes are worth a line in the log; reads are not.
    if (request.method != "GET" && request.method != "HEAD")
        std::printf("sluiced: api: %s %s from %s: %d\n", request.method.c_str(),
                    call.path.c_str(), request.peer.c_str(), answer.status);
    HttpResponse response;
    response.status = answer.status;
    response.content_type = answer.content_type;
    response.body = answer.body;
    response.headers = answer.headers;
    return response;
}

void Gateway::service_discovery() {
    if (discovery_.service(EndpointMerger::Clock::now()))
        publish_merged();
    for (const std::string &event : discovery_.take_events())
        std::printf("sluiced: %s\n", event.c_str());
    // What the gateway publishes of itself follows its services and their health.
    if (std::string value = registration_value(); value != registered_value_) {
        registered_value_ = std::move(value);
        discovery_.set_registration_value(registered_value_);
    }
}

// The registration's value: this instance, its API, its VIPs and whether
// each service has a backend taking new flows.
std::string Gateway::registration_value() const {
    nlohmann::json vips = nlohmann::json::array();
    bool serving = true;
    for (const ServiceConfig &service : config_.services) {
        bool available = false;
        for (const BackendConfig &backend : service.backends)
            available = available || (!backend.drained && backend.weight > 0 &&
                                       health_of(service, backend) != BackendHealth::down);
        serving = serving && available;
        vips.push_back({{"service", service.name},
                        {"vip", service.vip.to_string()},
                        {"protocol", service.protocol == 17 ? "udp" : "tcp"},
                        {"port", service.port},
                        {"available", available}});
    }
    const auto &registration = base_.discovery.registration;
    const std::string &instance =
        registration && !registration->instance.empty() ? registration->instance : instance_;
    return nlohmann::json{{"instance", instance},
                          {"api", config_.api.listen()},
                          {"health", serving ? "serving" : "degraded"},
                          {"vips", vips}}
        .dump();
}

nlohmann::json Gateway::backend_sources(const std::string &service,
                                        const BackendConfig &backend) const {
    nlohmann::json sources = nlohmann::json::array();
    const auto origins = provenance_.find(service);
    if (origins == provenance_.end())
        return sources;
    for (const BackendOrigin &origin : origins->second) {
        if (origin.address != backend.address || origin.port != backend.port)
            continue;
        for (const BackendSource &source : origin.sources) {
            nlohmann::json j = {{"source", source.source}, {"state", to_string(source.state)}};
            if (!source.id.empty())
                j["id"] = source.id;
            // The registry's words for the endpoint: where it runs, what it is.
            const std::string feed_prefix = feed_source("");
            const Endpoint *endpoint =
                source.source.rfind(feed_prefix, 0) == 0
                    ? discovery_.endpoint(source.source.substr(feed_prefix.size()), service,
                                          source.id)
                    : nullptr;
            if (endpoint && !endpoint->zone.empty())
                j["zone"] = endpoint->zone;
            if (endpoint && !endpoint->labels.empty())
                j["labels"] = endpoint->labels;
            if (source.leaves_at)
                j["leaves_in_ms"] = std::max<int64_t>(
                    0, std::chrono::duration_cast<std::chrono::milliseconds>(
                           *source.leaves_at - EndpointMerger::Clock::now())
                           .count());
            sources.push_back(j);
        }
    }
    return sources;
}

nlohmann::json Gateway::feeds_json() const {
    nlohmann::json feeds = nlohmann::json::array();
    for (const FeedReport &report : discovery_.feeds()) {
        const FeedStatus &status = report.status;
        feeds.push_back({{"name", status.name},
                         {"type", status.kind},
                         {"state", to_string(status.health)},
                         {"detail", status.detail},
                         {"updates", status.updates},
                         {"revision", status.revision},
                         {"endpoints", report.endpoints},
                         {"services", report.services},
                         {"bound_to", report.bound_to}});
    }
    nlohmann::json ignored = nlohmann::json::array();
    for (const IgnoredEndpoints &entry : ignored_)
        ignored.push_back({{"feed", entry.feed},
                           {"service", entry.service},
                           {"id", entry.id},
                           {"reason", entry.reason}});
    nlohmann::json body = {{"feeds", feeds}, {"ignored", ignored}, {"registration", nullptr}};
    if (const auto registration = discovery_.registration())
        body["registration"] = {{"key", registration->key},
                                {"registered", registration->registered},
                                {"lease", registration->lease},
                                {"detail", registration->detail},
                                {"grants", registration->grants},
                                {"keepalives", registration->keepalives}};
    return body;
}

void Gateway::print_counters() {
    std::cout << prometheus_text(metrics());
    std::cout.flush();
}

void Gateway::wait_for_stop() {
    // The control plane's loop: one poll() over the signals and every
    // control-plane module, woken by whichever has work or the nearest
    // deadline. Neighbours are refreshed every second, and every 100 ms
    // while some are unknown (packets may be waiting for them).
    const sigset_t signals = control_signals();
    const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd < 0) {
        std::printf("sluiced: signalfd: %s\n", std::strerror(errno));
        return;
    }
    uint64_t next_refresh = monotonic_ms();
    for (;;) {
        const bool unresolved =
            neighbours_ &&
            known_neighbours_.size() < wanted_neighbours(config_, retired_backends_).size();
        const uint64_t now = monotonic_ms();
        if (now >= next_refresh) {
            if (neighbours_)
                refresh_neighbours();
            next_refresh = now + (unresolved ? 100 : 1000);
        }
        std::vector<pollfd> fds = {
            {signal_fd, POLLIN, 0}, {http_.fd(), POLLIN, 0}, {health_.fd(), POLLIN, 0}};
        discovery_.poll_fds(fds);
        int timeout = int(std::min<uint64_t>(next_refresh - std::min(next_refresh, now), 1000));
        for (const int wanted : {http_.timeout_ms(), health_.timeout_ms(),
                                 discovery_.timeout_ms(EndpointMerger::Clock::now())})
            if (wanted >= 0)
                timeout = std::min(timeout, wanted);
        if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
            std::printf("sluiced: poll: %s\n", std::strerror(errno));
            break;
        }
        signalfd_siginfo info;
        bool stop = false;
        while (read(signal_fd, &info, sizeof info) == ssize_t(sizeof info)) {
            if (info.ssi_signo == SIGHUP) {
                reload();
            } else if (info.ssi_signo == SIGUSR1) {
                std::printf("sluiced: counters\n");
                std::fflush(stdout);
                print_counters();
            } else {
                std::printf("sluiced: %s, stopping\n",
                            info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
                stop = true;
            }
        }
        if (stop)
            break;
        health_.service();
        take_health_changes();
        http_.service();
        service_discovery();
    }
    http_.stop();
    discovery_.stop();
    close(signal_fd);
}

void Gateway::shut_down() {
    if (!eal_started_)
        return;
    if (workers_launched_) {
        stop_.store(true, std::memory_order_relaxed);
        rte_eal_mp_wait_lcore();
        workers_launched_ = false;
        std::printf("sluiced: workers stopped; final counters\n");
        std::fflush(stdout);
        print_counters();
    }
    workers_.clear();
    if (steering_) {
        for (rte_ring *inbox : steering_->inboxes) {
            dataplane::SteeredPacket left;
            while (rte_ring_dequeue_elem(inbox, &left, sizeof left) == 0)
                rte_pktmbuf_free(left.packet);
            rte_ring_free(inbox);
        }
        steering_.reset();
    }
    snapshot_.reset();
    for (dataplane::Port &port : ports_)
        dataplane::close_port(port);
    ports_.clear();
    for (auto &[socket, pool] : pools_)
        rte_mempool_free(pool);
    pools_.clear();
    rte_eal_cleanup();
    eal_started_ = false;
    std::printf("sluiced: stopped\n");
    std::fflush(stdout);
}

int run(int argc, char **argv) {
    std::string config_path;
    bool check_only = false;
    static const option long_options[] = {
        {"config", required_argument, nullptr, 'c'},
        {"check", no_argument, nullptr, 'k'},
        {"help", no_argument, nullptr, 'h'},
        {nullptr, 0, nullptr, 0},
    };
    for (int opt; (opt = getopt_long(argc, argv, "c:h", long_options, nullptr)) != -1;) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'k': check_only = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return exit_bad_config;
        }
    }
    if (config_path.empty() || optind != argc) {
        usage(stderr);
        return exit_bad_config;
    }

    Config config;
    try {
        config = load_config_file(config_path);
    } catch (const ConfigError &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return exit_bad_config;
    }
    for (const std::string &warning : config.warnings)
        std::fprintf(stderr, "warning: %s\n", warning.c_str());
    if (check_only) {
        std::printf("%s: configuration is valid\n", config_path.c_str());
        return 0;
    }

    // Signals are taken by the main lcore through a signalfd; every thread
    // the EAL starts inherits this mask and never sees them.
    const sigset_t signals = control_signals();
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    Gateway gateway(std::move(config), config_path);
    std::string error;
    if (!gateway.start(error)) {
        std::fprintf(stderr, "sluiced: %s\n", error.c_str());
        return exit_runtime_failure;
    }
    gateway.wait_for_stop();
    gateway.shut_down();
    return 0;
}

} // namespace

} // namespace sluice::ctrl

int main(int argc, char **argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    // A client of the API or a health-checked backend that goes away must
    // cost a failed write, not the gateway.
    signal(SIGPIPE, SIG_IGN);
    return sluice::ctrl::run(argc, argv);
}
