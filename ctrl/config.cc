// The strict loader for sluiced's YAML configuration (see config.h and
// docs/configuration.md). It reads the file in two layers: a few field readers
// that know YAML (maps whose keys are checked, sequences, integers, choices,
// strings that follow a rule), then one function per section that knows the
// schema. The first problem found is thrown as a ConfigError that points at the
// offending key or value; nothing is half-loaded.
//
// Exceptions are fine here: this runs in the control plane before the EAL
// starts. Nothing thrown by yaml-cpp leaves this file.
#include "ctrl/config.h"
#include "ctrl/config_loader.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <optional>

namespace sluice::ctrl {

ConfigError::ConfigError(std::string file, int line, int column, std::string key,
                         std::string message)
    : std::runtime_error(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                         key + ": " + message),
      file_(std::move(file)), key_(std::move(key)), message_(std::move(message)), line_(line),
      column_(column) {}

namespace {

constexpr unsigned max_workers = 127;
constexpr size_t max_ifname = 15;  // IFNAMSIZ - 1

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_lower_alnum_or(char c, std::string_view extra) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || extra.find(c) != extra.npos;
}
bool made_of(std::string_view s, std::string_view extra) {
    return std::all_of(s.begin(), s.end(), [&](char c) { return is_lower_alnum_or(c, extra); });
}
unsigned hex_value(char c) {
    return c <= '9' ? unsigned(c - '0') : unsigned((c | 0x20) - 'a' + 10);
}

// "0000:03:00.0" or "03:00.0": domain, bus, device (0-1f), function (0-7).
bool is_pci_address(std::string_view s) {
    if (s.size() == 12) {
        if (!is_hex(s[0]) || !is_hex(s[1]) || !is_hex(s[2]) || !is_hex(s[3]) || s[4] != ':')
            return false;
        s.remove_prefix(5);
    }
    return s.size() == 7 && is_hex(s[0]) && is_hex(s[1]) && s[2] == ':' && is_hex(s[3]) &&
           is_hex(s[4]) && hex_value(s[3]) * 16 + hex_value(s[4]) <= 0x1f && s[5] == '.' &&
           s[6] >= '0' && s[6] <= '7';
}

bool is_vdev_name(std::string_view s) {
    return s.size() > 4 && s.substr(0, 4) == "net_" && made_of(s.substr(4), "_");
}

// The same device written two ways must collide: 03:00.0 is 0000:03:00.0.
std::string device_identity(std::string_view name) {
    std::string id(name);
    if (!is_pci_address(id))
        return id;
    for (char &c : id)
        c = char(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    return id.size() == 7 ? "0000:" + id : id;
}

// Rules for strings.

bool is_eal_argument(std::string_view s) { return !s.empty() && s.find('\0') == s.npos; }

bool is_file_prefix(std::string_view s) {
    return !s.empty() && s.size() <= 64 && made_of(s, "_-ABCDEFGHIJKLMNOPQRSTUVWXYZ");
}

bool is_port_name(std::string_view s) {
    return !s.empty() && s.size() <= max_ifname && s[0] >= 'a' && s[0] <= 'z' && made_of(s, "_-");
}

// What the kernel accepts as an interface name (dev_valid_name()).
bool is_ifname(std::string_view s) {
    constexpr std::string_view forbidden("/: \t\n\v\f\r\0", 10);
    return !s.empty() && s.size() <= max_ifname && s != "." && s != ".." &&
           s.find_first_of(forbidden) == s.npos;
}

// What is wrong with a device string, or nothing.
std::string device_problem(std::string_view s) {
    const size_t comma = s.find(',');
    const std::string_view name = s.substr(0, comma);
    if (!is_pci_address(name) && !is_vdev_name(name))
        return quoted(name) + " is neither a PCI address nor a net_ vdev name";
    if (comma == s.npos)
        return "";
    std::string_view args = s.substr(comma + 1);
    while (true) {
        const size_t next = args.find(',');
        const std::string_view arg = args.substr(0, next);
        const size_t eq = arg.find('=');
        if (arg.empty())
            return "empty device argument";
        if (eq == arg.npos)
            return "argument " + quoted(arg) + " is not key=value";
        const std::string_view key = arg.substr(0, eq), value = arg.substr(eq + 1);
        if (key.empty() || !made_of(key, "_"))
            return "argument key " + quoted(key) + " is not made of a-z, 0-9, '_'";
        if (value.empty())
            return "argument " + quoted(key) + " has no value";
        if (std::any_of(value.begin(), value.end(),
                        [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; }))
            return "the value of " + quoted(key) + " contains a space or control character";
        if (next == args.npos)
            return "";
        args.remove_prefix(next + 1);
    }
}

} // namespace

Config ConfigLoader::load(std::string_view yaml) const {
    try {
        return read(parse(yaml));
    } catch (const YAML::Exception &e) {  // syntax errors, and anything else from yaml-cpp
        fail(e.mark, "(yaml)", e.msg);
    }
}

Config ConfigLoader::read(const YAML::Node &document) const {
    if (document.IsNull())
        throw ConfigError(source_, 1, 1, "(top level)", "the file is empty; ports: is required");

    Config config;
    config.source = source_;
    const Section top = map({document, "", document.Mark()},
                            {"eal", "cores", "worker", "ports", "routes", "lb", "tcp",
                             "discovery", "services", "api"});
    if (const Field *f = top.find("eal"))
        read_eal(*f, config.eal);
    read_cores(top, config);
    if (const Field *f = top.find("worker"))
        read_worker(*f, config.worker);
    read_ports(require(top, "ports"), config.ports);
    if (const Field *f = top.find("routes"))
        read_routes(*f, config);
    if (const Field *f = top.find("lb"))
        read_lb(*f, config.lb);
    if (const Field *f = top.find("tcp"))
        read_tcp(*f, config.tcp);
    // Before services, which name its feeds.
    if (const Field *f = top.find("discovery"))
        read_discovery(*f, config.discovery);
    if (const Field *f = top.find("services"))
        read_services(*f, config);
    if (const Field *f = top.find("api"))
        read_api(*f, config);
    return config;
}

void ConfigLoader::read_eal(const Field &f, EalConfig &eal) const {
    const Section s = map(f, {"hugepages", "memory_mb", "file_prefix", "log_level", "extra_args"});
    if (const Field *v = s.find("hugepages"))  // in HugepageMode's order
        eal.hugepages = HugepageMode(choice(*v, {"auto", "always", "never"}));
    if (const Field *v = s.find("memory_mb"))
        eal.memory_mb = integer(*v, 64, 1048576);
    if (const Field *v = s.find("file_prefix"))
        eal.file_prefix = text(*v, "1..64 characters of A-Z, a-z, 0-9, '_', '-'", is_file_prefix);
    if (const Field *v = s.find("log_level")) {
        choice(*v, {"emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"});
        eal.log_level = v->node.Scalar();
    }
    if (const Field *v = s.find("extra_args"))
        for (const Field &arg : sequence(*v))
            eal.extra_args.push_back(text(arg, "a non-empty EAL argument", is_eal_argument));
}

// The lcore checks run in the order that gives the most useful message: a list
// that cannot fit on this machine says so before any one lcore is blamed.
void ConfigLoader::read_cores(const Section &top, Config &config) const {
    CoreConfig &cores = config.cores;
    std::optional<Section> s;
    if (const Field *f = top.find("cores"))
        s = map(*f, {"control", "workers", "cpus"});
    // An absent key is blamed on its section, or on the top of the file.
    const YAML::Mark at = s ? s->self.mark : top.self.mark;
    const Field *given_control = s ? s->find("control") : nullptr;
    const Field *given_workers = s ? s->find("workers") : nullptr;
    const Field *given_cpus = s ? s->find("cpus") : nullptr;
    const Field control = given_control ? *given_control : Field{{}, "cores.control", at};
    const Field workers = given_workers ? *given_workers : Field{{}, "cores.workers", at};

    auto read_id = [this](const Field &f, const char *what = "an lcore id (an integer)") {
        const auto id = parse_unsigned(scalar(f, what));
        if (!id)
            fail(f, std::string("expected ") + what + ", got " + describe(f.node));
        return *id;
    };
    // As written, since an id too large for uint64_t saturates when parsed.
    auto lcore = [](const Field &f, uint64_t id) {
        return "lcore " + (f.node.IsScalar() ? printable(f.node.Scalar()) : std::to_string(id));
    };

    const uint64_t control_id = given_control ? read_id(control) : cores.control;
    std::vector<Field> items;
    std::vector<uint64_t> ids(cores.workers.begin(), cores.workers.end());
    if (given_workers) {
        items = sequence(workers);
        if (items.empty())
            fail(workers, "expected at least one worker lcore, got an empty sequence");
        if (items.size() > max_workers)
            fail(workers, "expected at most " + std::to_string(max_workers) + " workers, got " +
                              std::to_string(items.size()));
        ids.clear();
        for (const Field &item : items) {
            const uint64_t id = read_id(item);
            const auto first = std::find(ids.begin(), ids.end(), id);
            if (first != ids.end())
                fail(item, lcore(item, id) + " is listed twice, first at line " +
                               std::to_string(items[size_t(first - ids.begin())].mark.line + 1));
            if (id == control_id)
                fail(item, lcore(item, id) +
                               " is the control lcore (cores.control); a worker needs its own");
            ids.push_back(id);
        }
    } else if (std::find(ids.begin(), ids.end(), control_id) != ids.end()) {
        fail(control, lcore(control, control_id) +
                          " is also the default worker lcore; list cores.workers as well");
    }

    const std::string cpus = plural(cpus_, "CPU") +
                             (cpus_ == 1 ? " (0)" : " (0-" + std::to_string(cpus_ - 1) + ")");
    // Lcores placed on a CPU of another number, checked before the count.
    std::map<unsigned, unsigned> placed;
    if (given_cpus) {
        // A map from lcore ids to CPUs: its keys are numbers, not names.
        if (!given_cpus->node.IsMap())
            fail(*given_cpus, "expected a map of lcore: CPU, got " + describe(given_cpus->node));
        for (auto it = given_cpus->node.begin(); it != given_cpus->node.end(); ++it) {
            const Field key{it->first, "cores.cpus", it->first.Mark()};
            const uint64_t id = read_id(key);
            const Field value{it->second, "cores.cpus." + std::to_string(id),
                              it->second.IsNull() ? it->first.Mark() : it->second.Mark()};
            if (placed.count(unsigned(id)))
                fail(key, "lcore " + std::to_string(id) + " is placed twice");
            if (id != control_id && std::find(ids.begin(), ids.end(), id) == ids.end())
                fail(key, "lcore " + std::to_string(id) +
                              " is neither cores.control nor one of cores.workers");
            const uint64_t cpu = read_id(value, "a CPU number (an integer)");
            if (cpu >= cpus_)
                fail(value, "CPU " + std::to_string(cpu) + " does not exist: this machine has " +
                                cpus);
            placed[unsigned(id)] = unsigned(cpu);
        }
    }
    if (placed.empty() && 1 + ids.size() > cpus_)
        fail(workers, plural(ids.size(), "worker") + (given_workers ? "" : " (the default)") +
                          " and 1 control lcore need " + plural(1 + ids.size(), "CPU") +
                          ", this machine has " + std::to_string(cpus_));

    auto check_exists = [&](const Field &f, uint64_t id) {
        if (!placed.count(unsigned(id)) && id >= cpus_)
            fail(f, lcore(f, id) + " does not exist: this machine has " + cpus +
                        " (cores.cpus can place it on one)");
    };
    check_exists(control, control_id);
    for (size_t i = 0; i < items.size(); ++i)
        check_exists(items[i], ids[i]);

    cores.control = unsigned(control_id);
    cores.workers.assign(ids.begin(), ids.end());
    cores.cpus = placed;
    // Busy-polling lcores on one CPU take turns: worth saying.
    std::map<unsigned, std::vector<unsigned>> by_cpu;
    by_cpu[cores.cpus.count(cores.control) ? cores.cpus.at(cores.control) : cores.control]
        .push_back(cores.control);
    for (const unsigned worker : cores.workers)
        by_cpu[cores.cpus.count(worker) ? cores.cpus.at(worker) : worker].push_back(worker);
    for (const auto &[cpu, lcores] : by_cpu)
        if (lcores.size() > 1) {
            std::string names;
            for (const unsigned id : lcores)
                names += (names.empty() ? "" : ", ") + std::to_string(id);
            config.warnings.push_back("cores.cpus: lcores " + names + " share CPU " +
                                      std::to_string(cpu) +
                                      " and take turns on it (for tests, not for speed)");
        }
}

void ConfigLoader::read_worker(const Field &f, WorkerTuning &worker) const {
    const Section s = map(f, {"burst_size", "tx_drain_us", "idle_sleep_max_us"});
    if (const Field *v = s.find("burst_size"))
        worker.burst_size = integer(*v, 1, 64);
    if (const Field *v = s.find("tx_drain_us"))
        worker.tx_drain_us = integer(*v, 1, 100000);
    if (const Field *v = s.find("idle_sleep_max_us"))
        worker.idle_sleep_max_us = integer(*v, 0, 100000);
}

void ConfigLoader::read_ports(const Field &f, std::vector<PortConfig> &ports) const {
    const std::vector<Field> items = sequence(f);
    if (items.empty())
        fail(f, "expected at least one port, got an empty sequence");
    std::map<std::string, int> names, devices, addresses, taps;

    auto descriptors = [this](const Field &v) {
        const unsigned n = integer(v, 64, 16384, "a power of two");
        if ((n & (n - 1)) != 0)
            fail(v, "expected a power of two in 64..16384, got " + std::to_string(n));
        return n;
    };

    for (const Field &item : items) {
        const Section s = map(item, {"name", "device", "addresses", "mtu", "rx_descriptors",
                                     "tx_descriptors", "exception_path"});
        PortConfig port;
        const Field &name = require(s, "name");
        port.name = text(name,
                         "a port name of 1..15 characters of a-z, 0-9, '_', '-', "
                         "starting with a letter",
                         is_port_name);
        claim(names, port.name, name, "port name");

        const Field &device = require(s, "device");
        const std::string what = "a PCI address like 0000:03:00.0 or a vdev like net_af_packet0, "
                                 "optionally followed by ,key=value arguments";
        port.device = scalar(device, what);
        if (const std::string problem = device_problem(port.device); !problem.empty())
            fail(device, "expected " + what + ", got " + quoted(port.device) + ": " + problem);
        claim(devices, device_identity(port.device_name()), device, "device");

        if (const Field *v = s.find("addresses"))
            read_addresses(*v, addresses, port.addresses);
        if (const Field *v = s.find("mtu"))
            port.mtu = integer(*v, 68, 9000);
        if (const Field *v = s.find("rx_descriptors"))
            port.rx_descriptors = descriptors(*v);
        if (const Field *v = s.find("tx_descriptors"))
            port.tx_descriptors = descriptors(*v);
        if (const Field *v = s.find("exception_path")) {
            const Section exception_path = map(*v, {"tap"});
            const Field &tap = require(exception_path, "tap");
            port.exception_tap = text(tap,
                                      "a Linux interface name of 1..15 characters without "
                                      "'/', ':', whitespace or NUL, not \".\" or \"..\"",
                                      is_ifname);
            claim(taps, port.exception_tap, tap, "TAP name");
        }
        ports.push_back(std::move(port));
    }
}

void ConfigLoader::read_addresses(const Field &f, std::map<std::string, int> &seen,
                            std::vector<InterfaceAddress> &addresses) const {
    const std::string what = "an address with prefix length like 198.18.0.1/24 or 2001:db8::1/64";
    for (const Field &item : sequence(f)) {
        const std::string &text = scalar(item, what);
        const auto a = parse_interface_address(text);
        if (!a && text.find('/') == text.npos && parse_ip_address(text))
            fail(item, "expected " + what + ", got " + quoted(text) +
                           ": the prefix length is missing");
        if (!a)
            fail(item, "expected " + what + ", got " + quoted(text));
        const IpAddress &ip = a->address;
        const char *bad = ip.is_unspecified() ? "the unspecified address"
                          : ip.is_multicast() ? "a multicast address"
                          : ip.is_loopback()  ? "a loopback address"
                          : ip.is_v4() && ip.v4_be() == 0xffffffff ? "the broadcast address"
                                                                    : nullptr;
        if (bad)
            fail(item, "expected a unicast address, got " + ip.to_string() + ", " + bad);
        claim(seen, ip.to_string(), item, "address");
        addresses.push_back(*a);
    }
}

bool Config::operator==(const Config &other) const {
    return eal == other.eal && cores == other.cores && worker == other.worker &&
           ports == other.ports && routes == other.routes && lb == other.lb && tcp == other.tcp &&
           services == other.services && api == other.api && discovery == other.discovery;
}

std::string PortConfig::device_name() const { return device.substr(0, device.find(',')); }

bool PortConfig::is_pci() const { return is_pci_address(device_name()); }

unsigned online_cpu_count() {
    // The affinity mask, not the CPUs present: taskset and cgroups shrink it.
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return unsigned(CPU_COUNT(&set));
    const long online = sysconf(_SC_NPROCESSORS_ONLN);  // beyond CPU_SETSIZE CPUs
    return online > 0 ? unsigned(online) : 1;
}

Config load_config_text(std::string_view yaml, const std::string &source_name,
                        unsigned cpu_count) {
    return ConfigLoader(source_name, cpu_count).load(yaml);
}

Config load_config_text(std::string_view yaml, const std::string &source_name) {
    return load_config_text(yaml, source_name, online_cpu_count());
}

Config load_config_file(const std::string &path) {
    return load_config_file(path, online_cpu_count());
}

Config load_config_file(const std::string &path, unsigned cpu_count) {
    auto cannot_read = [&](int error) {
        return ConfigError(path, 0, 0, "(file)", std::string("cannot read: ") + std::strerror(error));
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw cannot_read(errno);
    std::string text;
    char buffer[16384];
    while (true) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            const int error = errno;
            ::close(fd);
            throw cannot_read(error);
        }
        text.append(buffer, size_t(n));
    }
    ::close(fd);
    return load_config_text(text, path, cpu_count);
}

} // namespace sluice::ctrl
