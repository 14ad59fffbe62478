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

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <optional>
#include <sstream>

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

// Text for a message: quoted, escaped, and cut short, since it may be anything.
std::string printable(std::string_view text, size_t limit = 60) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < text.size() && i < limit; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '"' || c == '\\')
            out += {'\\', char(c)};
        else if (c < 0x20 || c == 0x7f)
            out += {'\\', 'x', hex[c >> 4], hex[c & 15]};
        else
            out += char(c);
    }
    if (text.size() > limit)
        out += "...";
    return out;
}
std::string quoted(std::string_view text) { return '"' + printable(text) + '"'; }

std::string describe(const YAML::Node &n) {
    switch (n.Type()) {
    case YAML::NodeType::Scalar: return quoted(n.Scalar());
    case YAML::NodeType::Sequence: return "a sequence";
    case YAML::NodeType::Map: return "a map";
    default: return "nothing";
    }
}

// Digits only: no sign, no fraction, no base prefix, no leading zero (YAML 1.1
// would read 010 as octal). Saturates, so that the range check rejects
// overflow with the number as written.
std::optional<uint64_t> parse_unsigned(std::string_view text) {
    if (text.empty() || (text.size() > 1 && text[0] == '0'))
        return std::nullopt;
    uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9')
            return std::nullopt;
        value = value > (UINT64_MAX - 9) / 10 ? UINT64_MAX : value * 10 + uint64_t(c - '0');
    }
    return value;
}

std::string plural(size_t n, const char *word) {
    return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// Rules for strings.
using Rule = bool (*)(std::string_view);

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

// A value of the file, with the name and position an error about it uses.
struct Field {
    YAML::Node node;
    std::string path;  // "ports[1].exception_path.tap"; "" for the document
    YAML::Mark mark;
};

// A map whose keys are all known and appear once.
struct Section {
    Field self;
    std::vector<std::pair<std::string, Field>> fields;

    const Field *find(std::string_view key) const {
        for (const auto &[name, field] : fields)
            if (name == key)
                return &field;
        return nullptr;
    }
};

std::string join(const std::string &parent, std::string_view key) {
    return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

class Loader {
public:
    Loader(const std::string &source, unsigned cpu_count) : source_(source), cpus_(cpu_count) {}

    Config load(std::string_view yaml) const;

private:
    // The first and only document of the file.
    YAML::Node parse(std::string_view yaml) const;
    Config read(const YAML::Node &document) const;

    // ---- field readers ----

    [[noreturn]] void fail(const YAML::Mark &mark, const std::string &key,
                           const std::string &message) const {
        // yaml-cpp counts from 0, and -1 for "no position": the latter stays 0.
        throw ConfigError(source_, std::max(mark.line + 1, 0), std::max(mark.column + 1, 0),
                          key.empty() ? "(top level)" : key, message);
    }
    [[noreturn]] void fail(const Field &f, const std::string &message) const {
        fail(f.mark, f.path, message);
    }

    Section map(const Field &f, std::initializer_list<std::string_view> keys) const {
        if (!f.node.IsMap())
            fail(f, "expected a map, got " + describe(f.node));
        std::string expected;
        for (std::string_view k : keys)
            expected += (expected.empty() ? "" : ", ") + std::string(k);
        Section s{f, {}};
        for (auto it = f.node.begin(); it != f.node.end(); ++it) {
            const YAML::Node key = it->first, value = it->second;
            if (!key.IsScalar())
                fail(key.Mark(), f.path, "expected a key name, got " + describe(key));
            const std::string &name = key.Scalar();
            const std::string path = join(f.path, printable(name));
            bool known = false;
            for (std::string_view k : keys)
                known = known || k == name;
            if (!known)
                fail(key.Mark(), path,
                     keys.size() == 1 ? "unknown key, expected " + expected
                                      : "unknown key, expected one of: " + expected);
            if (const Field *first = s.find(name))
                fail(key.Mark(), path,
                     "duplicate key, first at line " + std::to_string(first->mark.line + 1));
            // yaml-cpp places an empty value where the next token starts,
            // often on the next line: point at its key instead.
            s.fields.push_back({name, {value, path, value.IsNull() ? key.Mark() : value.Mark()}});
        }
        return s;
    }

    const Field &require(const Section &s, std::string_view key) const {
        if (const Field *f = s.find(key))
            return *f;
        fail(s.self.mark, join(s.self.path, key), "required key is missing");
    }

    std::vector<Field> sequence(const Field &f) const {
        if (!f.node.IsSequence())
            fail(f, "expected a sequence, got " + describe(f.node));
        std::vector<Field> items;
        for (auto it = f.node.begin(); it != f.node.end(); ++it) {
            const std::string path = f.path + "[" + std::to_string(items.size()) + "]";
            items.push_back({*it, path, it->Mark()});
        }
        return items;
    }

    const std::string &scalar(const Field &f, const std::string &what) const {
        if (!f.node.IsScalar())
            fail(f, "expected " + what + ", got " + describe(f.node));
        return f.node.Scalar();
    }

    unsigned integer(const Field &f, unsigned lo, unsigned hi,
                     const std::string &what = "an integer") const {
        const std::string expected = what + " in " + std::to_string(lo) + ".." + std::to_string(hi);
        const std::string &text = scalar(f, expected);
        const auto value = parse_unsigned(text);
        if (!value)
            fail(f, "expected " + expected + ", got " + quoted(text));
        if (*value < lo || *value > hi)
            fail(f, "expected " + expected + ", got " + printable(text));
        return unsigned(*value);
    }

    size_t choice(const Field &f, std::initializer_list<std::string_view> options) const {
        std::string expected;
        for (std::string_view o : options)
            expected += (expected.empty() ? "one of " : ", ") + std::string(o);
        const std::string &text = scalar(f, expected);
        size_t i = 0;
        for (std::string_view o : options) {
            if (o == text)
                return i;
            ++i;
        }
        fail(f, "expected " + expected + ", got " + quoted(text));
    }

    std::string text(const Field &f, const std::string &what, Rule rule) const {
        const std::string &value = scalar(f, what);
        if (!rule(value))
            fail(f, "expected " + what + ", got " + quoted(value));
        return value;
    }

    // Remembers a value that must be unique across ports.
    void claim(std::map<std::string, int> &seen, const std::string &id, const Field &f,
               const std::string &what) const {
        const auto [it, inserted] = seen.emplace(id, f.mark.line + 1);
        if (!inserted)
            fail(f, "duplicate " + what + " '" + printable(id) + "', first defined at line " +
                        std::to_string(it->second));
    }

    // ---- sections ----

    void read_eal(const Field &f, EalConfig &eal) const;
    void read_cores(const Section &top, CoreConfig &cores) const;
    void read_worker(const Field &f, WorkerTuning &worker) const;
    void read_ports(const Field &f, std::vector<PortConfig> &ports) const;
    void read_addresses(const Field &f, std::map<std::string, int> &seen,
                        std::vector<InterfaceAddress> &addresses) const;

    const std::string &source_;
    unsigned cpus_;
};

// Where each document of a stream starts, and whether it holds anything.
class DocumentProbe : public YAML::EventHandler {
public:
    YAML::Mark start;
    bool content = false;

    void OnDocumentStart(const YAML::Mark &mark) override {
        start = mark;
        content = false;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark &, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark &, YAML::anchor_t) override { content = true; }
    void OnScalar(const YAML::Mark &, const std::string &, YAML::anchor_t,
                  const std::string &) override {
        content = true;
    }
    void OnSequenceStart(const YAML::Mark &, const std::string &, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
        content = true;
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark &, const std::string &, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {
        content = true;
    }
    void OnMapEnd() override {}
};

YAML::Node Loader::parse(std::string_view yaml) const {
    const std::string text(yaml);
    // When a document starts with a token that cannot start a node (",x", or
    // ", b" after "[a]"), yaml-cpp 0.7 reports an empty document and consumes
    // nothing: LoadAll() then never returns, and Load() quietly ignores the
    // rest of the file. So walk the documents with the low-level parser first,
    // and stop where it stops moving.
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentProbe probe;
    int previous = -1;
    for (int n = 0; parser.HandleNextDocument(probe); ++n) {
        const int pos = probe.start.pos;
        if (n > 0 && probe.content)
            fail(probe.start, "(yaml)", "expected one YAML document, found a second one");
        if (pos <= previous)
            fail(probe.start, "(yaml)",
                 "unexpected " +
                     (size_t(pos) < text.size() ? quoted(text.substr(size_t(pos), 1))
                                                : std::string("text")) +
                     ", expected a value, a map or a sequence");
        previous = pos;
    }
    return YAML::Load(text);
}

Config Loader::load(std::string_view yaml) const {
    try {
        return read(parse(yaml));
    } catch (const YAML::Exception &e) {  // syntax errors, and anything else from yaml-cpp
        fail(e.mark, "(yaml)", e.msg);
    }
}

Config Loader::read(const YAML::Node &document) const {
    if (document.IsNull())
        throw ConfigError(source_, 1, 1, "(top level)", "the file is empty; ports: is required");

    Config config;
    config.source = source_;
    const Section top = map({document, "", document.Mark()}, {"eal", "cores", "worker", "ports"});
    if (const Field *f = top.find("eal"))
        read_eal(*f, config.eal);
    read_cores(top, config.cores);
    if (const Field *f = top.find("worker"))
        read_worker(*f, config.worker);
    read_ports(require(top, "ports"), config.ports);
    return config;
}

void Loader::read_eal(const Field &f, EalConfig &eal) const {
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
void Loader::read_cores(const Section &top, CoreConfig &cores) const {
    std::optional<Section> s;
    if (const Field *f = top.find("cores"))
        s = map(*f, {"control", "workers"});
    // An absent key is blamed on its section, or on the top of the file.
    const YAML::Mark at = s ? s->self.mark : top.self.mark;
    const Field *given_control = s ? s->find("control") : nullptr;
    const Field *given_workers = s ? s->find("workers") : nullptr;
    const Field control = given_control ? *given_control : Field{{}, "cores.control", at};
    const Field workers = given_workers ? *given_workers : Field{{}, "cores.workers", at};

    auto read_id = [this](const Field &f) {
        const auto id = parse_unsigned(scalar(f, "an lcore id (an integer)"));
        if (!id)
            fail(f, "expected an lcore id (an integer), got " + describe(f.node));
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
    if (1 + ids.size() > cpus_)
        fail(workers, plural(ids.size(), "worker") + (given_workers ? "" : " (the default)") +
                          " and 1 control lcore need " + plural(1 + ids.size(), "CPU") +
                          ", this machine has " + std::to_string(cpus_));

    const std::string cpus = plural(cpus_, "CPU") +
                             (cpus_ == 1 ? " (0)" : " (0-" + std::to_string(cpus_ - 1) + ")");
    auto check_exists = [&](const Field &f, uint64_t id) {
        if (id >= cpus_)
            fail(f, lcore(f, id) + " does not exist: this machine has " + cpus);
    };
    check_exists(control, control_id);
    for (size_t i = 0; i < items.size(); ++i)
        check_exists(items[i], ids[i]);

    cores.control = unsigned(control_id);
    cores.workers.assign(ids.begin(), ids.end());
}

void Loader::read_worker(const Field &f, WorkerTuning &worker) const {
    const Section s = map(f, {"burst_size", "tx_drain_us", "idle_sleep_max_us"});
    if (const Field *v = s.find("burst_size"))
        worker.burst_size = integer(*v, 1, 64);
    if (const Field *v = s.find("tx_drain_us"))
        worker.tx_drain_us = integer(*v, 1, 100000);
    if (const Field *v = s.find("idle_sleep_max_us"))
        worker.idle_sleep_max_us = integer(*v, 0, 100000);
}

void Loader::read_ports(const Field &f, std::vector<PortConfig> &ports) const {
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

void Loader::read_addresses(const Field &f, std::map<std::string, int> &seen,
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

} // namespace

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
    return Loader(source_name, cpu_count).load(yaml);
}

Config load_config_text(std::string_view yaml, const std::string &source_name) {
    return load_config_text(yaml, source_name, online_cpu_count());
}

Config load_config_file(const std::string &path) {
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
    return load_config_text(text, path);
}

} // namespace sluice::ctrl
