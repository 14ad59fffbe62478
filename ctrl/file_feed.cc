#include "ctrl/file_feed.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <stdexcept>
#include <utility>
#include <vector>

#include "ctrl/yaml_reader.h"

namespace sluice::ctrl {

namespace {

using Json = nlohmann::json;
using Nanoseconds = int64_t;

constexpr Nanoseconds nanoseconds_per_ms = 1'000'000;
constexpr Nanoseconds rewatch_interval = 1000 * nanoseconds_per_ms;
// A burst of events longer than this many debounces is read anyway, so a
// file rewritten without pause is still read now and then.
constexpr Nanoseconds max_debounces_per_burst = 10;
constexpr off_t max_file_bytes = 16 << 20;
constexpr size_t max_id_length = 253;
// An endpoint's values nest two deep (labels); deeper is refused before it
// can cost recursion.
constexpr int max_depth = 8;

Nanoseconds monotonic_now() {
    timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return Nanoseconds(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// FNV-1a, 64 bits: stable across builds and runs, unlike std::hash.
uint64_t fnv1a(std::string_view bytes) {
    uint64_t hash = 0xcbf29ce484222325;
    for (const char c : bytes) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3;
    }
    return hash;
}

std::string hex64(uint64_t value) {
    static const char digits[] = "0123456789abcdef";
    std::string text(16, '0');
    for (int i = 15; i >= 0; --i, value >>= 4)
        text[size_t(i)] = digits[value & 15];
    return text;
}

// The reader of one file's text: the config loader's strict YAML readers
// for the file's structure, parse_endpoint_json() for each endpoint's
// values, so that an endpoint's rules are written once for the etcd and
// file feeds alike.
class EndpointFileReader : public YamlReader {
public:
    using YamlReader::YamlReader;

    EndpointSet read(std::string_view text) const {
        const YAML::Node document = parse(text);
        if (document.IsNull())  // which has no position
            throw ConfigError(source_, 1, 1, "(top level)",
                              "the file is empty; services: is required");
        const Section top = map({document, "", document.Mark()}, {"services"});
        const Field &services = require(top, "services");
        if (!services.node.IsMap())
            fail(services, "expected a map of service names to endpoint sequences, got " +
                               describe(services.node));
        EndpointSet set;
        std::map<std::string, int> names;
        for (auto it = services.node.begin(); it != services.node.end(); ++it) {
            const YAML::Node key = it->first;
            if (!key.IsScalar() || key.Scalar().empty())
                fail(key.Mark(), services.path, "expected a service name, got " + describe(key));
            const std::string &name = key.Scalar();
            const Field service{it->second, join(services.path, printable(name)),
                                it->second.IsNull() ? key.Mark() : it->second.Mark()};
            claim(names, name, {key, service.path, key.Mark()}, "service");
            std::vector<Endpoint> &endpoints = set[name];
            std::map<std::string, int> ids;
            for (const Field &item : sequence(service))
                endpoints.push_back(read_endpoint(item, ids));
        }
        return set;
    }

private:
    // One key of an endpoint's map, with the marks an error about it uses.
    struct Entry {
        std::string name;
        YAML::Node key, value;
    };

    Endpoint read_endpoint(const Field &item, std::map<std::string, int> &ids) const {
        if (!item.node.IsMap())
            fail(item, "expected an endpoint map, got " + describe(item.node));
        std::vector<Entry> entries;
        std::map<std::string, int> keys;
        Json values = Json::object();
        for (auto it = item.node.begin(); it != item.node.end(); ++it) {
            const YAML::Node key = it->first;
            if (!key.IsScalar())
                fail(key.Mark(), item.path, "expected a key name, got " + describe(key));
            const std::string &name = key.Scalar();
            const std::string path = join(item.path, printable(name));
            if (const auto [first, fresh] = keys.emplace(name, key.Mark().line + 1); !fresh)
                fail(key.Mark(), path,
                     "duplicate key, first at line " + std::to_string(first->second));
            entries.push_back({name, key, it->second});
            if (name != "id")
                values[name] = to_json(it->second, path, 1);
        }

        Endpoint endpoint;
        std::string text;
        try {
            text = values.dump();
        } catch (const Json::type_error &) {  // nlohmann refuses to write invalid UTF-8
            fail(item, "a key or string value is not valid UTF-8");
        }
        const std::string problem = parse_endpoint_json(text, endpoint);
        if (!problem.empty())
            blame(item, entries, problem);

        const auto id = std::find_if(entries.begin(), entries.end(),
                                     [](const Entry &entry) { return entry.name == "id"; });
        if (id == entries.end())
            fail(item.mark, join(item.path, "id"), "required key is missing");
        const Field id_field{id->value, join(item.path, "id"), mark_of(*id)};
        const Json id_value = to_json(id->value, id_field.path, 1);
        if (!id_value.is_string() || !is_id(id_value.get<std::string>()))
            fail(id_field, "expected a string of 1.." + std::to_string(max_id_length) +
                               " characters, UTF-8 without control characters, got " +
                               describe(id->value));
        endpoint.id = id_value.get<std::string>();
        claim(ids, endpoint.id, id_field, "id");
        return endpoint;
    }

    // Ids are shown by the API and sluicectl, as JSON.
    static bool is_id(const std::string &id) {
        if (id.empty() || id.size() > max_id_length ||
            std::any_of(id.begin(), id.end(),
                        [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
            return false;
        try {
            (void)Json(id).dump();
            return true;
        } catch (const Json::type_error &) {
            return false;
        }
    }

    // Where the value of an entry is, or its key when it has none (yaml-cpp
    // places an empty value where the next token starts).
    static YAML::Mark mark_of(const Entry &entry) {
        return entry.value.IsNull() ? entry.key.Mark() : entry.value.Mark();
    }

    // parse_endpoint_json() says "KEY: message" (or "labels.NAME: message"):
    // point at that key, or at its value, in the file.
    [[noreturn]] void blame(const Field &item, const std::vector<Entry> &entries,
                            const std::string &problem) const {
        const size_t colon = problem.find(": ");
        if (colon == std::string::npos)
            fail(item, problem);
        const std::string key = problem.substr(0, colon);
        const std::string message = problem.substr(colon + 2);
        const std::string top = key.substr(0, key.find('.'));
        const std::string path = join(item.path, printable(key));
        for (const Entry &entry : entries) {
            if (entry.name != top)
                continue;
            if (message.starts_with("unknown key"))
                fail(entry.key.Mark(), path, message);
            // A label: its own value, when the label's name is found.
            if (key.size() > top.size() && entry.value.IsMap())
                for (auto it = entry.value.begin(); it != entry.value.end(); ++it)
                    if (it->first.IsScalar() && it->first.Scalar() == key.substr(top.size() + 1))
                        fail(it->second.IsNull() ? it->first.Mark() : it->second.Mark(), path,
                             message);
            fail(mark_of(entry), path, message);
        }
        fail(item.mark, path, message);  // a key that is missing
    }

    // A node as the JSON it would be: a plain scalar that JSON reads as a
    // number, true, false or null is that; any other scalar (quoted, or a
    // word like "yes") is a string. So `"port": "80"` is a string in JSON and
    // YAML alike, and parse_endpoint_json() refuses it in both.
    Json to_json(const YAML::Node &node, const std::string &path, int depth) const {
        if (depth > max_depth)
            fail(node.Mark(), path, "nested too deeply");
        switch (node.Type()) {
        case YAML::NodeType::Scalar: {
            if (node.Tag() == "?") {
                Json value = Json::parse(node.Scalar(), nullptr, false);
                if (!value.is_discarded() && (value.is_number() || value.is_boolean()))
                    return value;
            }
            return node.Scalar();
        }
        case YAML::NodeType::Sequence: {
            Json array = Json::array();
            size_t i = 0;
            for (auto it = node.begin(); it != node.end(); ++it, ++i)
                array.push_back(to_json(*it, path + "[" + std::to_string(i) + "]", depth + 1));
            return array;
        }
        case YAML::NodeType::Map: {
            Json object = Json::object();
            for (auto it = node.begin(); it != node.end(); ++it) {
                const YAML::Node key = it->first;
                if (!key.IsScalar())
                    fail(key.Mark(), path, "expected a key name, got " + describe(key));
                const std::string child = join(path, printable(key.Scalar()));
                if (object.contains(key.Scalar()))
                    fail(key.Mark(), child, "duplicate key");
                object[key.Scalar()] = to_json(it->second, child, depth + 1);
            }
            return object;
        }
        default:
            return nullptr;
        }
    }
};

std::string error_text(int error) { return std::strerror(error); }

} // namespace

std::string parse_endpoint_file(std::string_view text, const std::string &source,
                                EndpointSet &out) {
    const EndpointFileReader reader(source);
    try {
        try {
            out = reader.read(text);
            return "";
        } catch (const YAML::Exception &e) {  // syntax errors, and anything else from yaml-cpp
            reader.fail(e.mark, "(yaml)", e.msg);
        }
    } catch (const ConfigError &e) {
        return e.what();
    }
}

bool FileFeed::FileIdentity::operator==(const FileIdentity &other) const {
    return device == other.device && inode == other.inode && size == other.size &&
           modified.tv_sec == other.modified.tv_sec &&
           modified.tv_nsec == other.modified.tv_nsec && changed.tv_sec == other.changed.tv_sec &&
           changed.tv_nsec == other.changed.tv_nsec;
}

FileFeed::FileFeed(FileFeedSettings settings) : settings_(std::move(settings)) {
    status_.name = settings_.name;
    status_.kind = "file";
    const size_t slash = settings_.path.rfind('/');
    directory_ = slash == std::string::npos ? "."
                 : slash == 0                 ? "/"
                                              : settings_.path.substr(0, slash);
    file_name_ = slash == std::string::npos ? settings_.path : settings_.path.substr(slash + 1);
    inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_ < 0)
        throw std::runtime_error("file feed " + settings_.name +
                                 ": cannot create an inotify instance: " + error_text(errno));
    watch_directory(monotonic_now());
    load(true);
}

FileFeed::~FileFeed() { ::close(inotify_); }

bool FileFeed::watch_directory(Nanoseconds now) {
    // IN_MOVE_SELF and IN_DELETE_SELF: the directory itself goes, and with
    // it the watch (IN_IGNORED follows).
    constexpr uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE |
                              IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
    watch_ = ::inotify_add_watch(inotify_, directory_.c_str(), mask);
    rewatch_at_ = watch_ >= 0 ? -1 : now + rewatch_interval;
    return watch_ >= 0;
}

int FileFeed::timeout_ms() const {
    Nanoseconds next = -1;
    for (const Nanoseconds when : {load_at_, rewatch_at_})
        if (when >= 0 && (next < 0 || when < next))
            next = when;
    if (next < 0)
        return -1;
    const Nanoseconds wait = next - monotonic_now();
    if (wait <= 0)
        return 0;
    // Rounded up: waking a little early would only find nothing due yet.
    const Nanoseconds ms = (wait + nanoseconds_per_ms - 1) / nanoseconds_per_ms;
    return ms > INT_MAX ? INT_MAX : int(ms);
}

void FileFeed::service() noexcept {
    read_events(monotonic_now());
    const Nanoseconds now = monotonic_now();
    if (rewatch_at_ >= 0 && rewatch_at_ <= now) {
        // Watched again: read what happened meanwhile. Still not (the
        // directory is gone, or inotify is out of watches): poll the file.
        if (watch_directory(now))
            note_event(true, now);
        else if (load_at_ < 0)
            load(false);
    }
    if (load_at_ >= 0 && load_at_ <= now) {
        const bool forced = load_forced_;
        load_at_ = burst_start_ = -1;
        load_forced_ = false;
        load(forced);
    }
}

void FileFeed::read_events(Nanoseconds now) {
    alignas(inotify_event) char buffer[4096];
    // A bounded batch, as the health checker does: what is left keeps the
    // descriptor readable, so the caller's poll() returns at once for it.
    for (int batch = 0; batch < 16; ++batch) {
        const ssize_t length = ::read(inotify_, buffer, sizeof buffer);
        if (length <= 0)
            return;  // EAGAIN: all read; EINTR: the next poll() brings us back
        for (ssize_t at = 0; at < length;) {
            inotify_event event;
            std::memcpy(&event, buffer + at, sizeof event);
            const char *name = buffer + at + sizeof event;
            at += ssize_t(sizeof event + event.len);
            if (event.mask & IN_Q_OVERFLOW) {  // events were lost: read the file again
                note_event(true, now);
                continue;
            }
            if (event.wd != watch_)
                continue;  // a watch replaced since
            if (event.mask & IN_IGNORED) {  // the directory is gone, or unmounted
                watch_ = -1;
                rewatch_at_ = now;  // at once: it may be back already (a rename)
                note_event(true, now);
                continue;
            }
            if (event.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
                // The watch follows the directory's inode, not its path: watch
                // the path again.
                ::inotify_rm_watch(inotify_, watch_);
                watch_ = -1;
                rewatch_at_ = now;
                note_event(true, now);
                continue;
            }
            note_event(event.len > 0 && file_name_ == name, now);
        }
    }
}

void FileFeed::note_event(bool about_the_file, Nanoseconds now) {
    const Nanoseconds debounce =
        Nanoseconds(std::max(settings_.debounce_ms, 0)) * nanoseconds_per_ms;
    if (burst_start_ < 0)
        burst_start_ = now;
    load_at_ = std::min(now + debounce, burst_start_ + max_debounces_per_burst * debounce);
    load_forced_ = load_forced_ || about_the_file;
}

void FileFeed::refuse(std::string why) {
    // Before a first good file the feed is still starting; after one, what it
    // has goes on in service, stale.
    status_.health = has_view_ ? FeedHealth::stale : FeedHealth::starting;
    status_.detail = std::move(why);
}

void FileFeed::load(bool forced) {
    const std::string &path = settings_.path;
    // O_NONBLOCK: a FIFO put at the path must not block the control plane.
    const int file = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (file < 0) {
        identity_ = {};
        return refuse(path + ": cannot open: " + error_text(errno));
    }
    struct stat info;
    if (::fstat(file, &info) < 0) {
        const int error = errno;
        ::close(file);
        identity_ = {};
        return refuse(path + ": cannot stat: " + error_text(error));
    }
    const FileIdentity identity{info.st_dev, info.st_ino, info.st_size, info.st_mtim,
                                info.st_ctim};
    if (!forced && identity == identity_) {
        ::close(file);
        return;
    }
    identity_ = identity;
    if (!S_ISREG(info.st_mode)) {
        ::close(file);
        return refuse(path + ": not a regular file");
    }
    if (info.st_size > max_file_bytes) {
        ::close(file);
        return refuse(path + ": " + std::to_string(info.st_size) + " bytes, more than the " +
                      std::to_string(max_file_bytes) + " an endpoints file may have");
    }
    std::string text;
    char chunk[65536];
    for (;;) {
        const ssize_t got = ::read(file, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            const int error = errno;
            ::close(file);
            return refuse(path + ": cannot read: " + error_text(error));
        }
        if (got == 0)
            break;
        text.append(chunk, size_t(got));
        if (text.size() > size_t(max_file_bytes)) {  // grew while being read
            ::close(file);
            return refuse(path + ": more than " + std::to_string(max_file_bytes) +
                          " bytes, more than an endpoints file may have");
        }
    }
    ::close(file);

    const uint64_t hash = fnv1a(text);
    if (has_view_ && hash == good_hash_) {  // the good file again (a touch, or put back)
        status_.health = FeedHealth::current;
        status_.detail.clear();
        return;
    }
    if (has_refused_ && hash == refused_hash_)
        return refuse(refused_problem_);  // the same bad file: the same message
    EndpointSet parsed;
    std::string problem = parse_endpoint_file(text, path, parsed);
    if (!problem.empty()) {
        refused_hash_ = hash;
        refused_problem_ = problem;
        has_refused_ = true;
        return refuse(std::move(problem));
    }
    has_refused_ = false;
    good_hash_ = hash;
    status_.revision = hex64(hash);
    status_.health = FeedHealth::current;
    status_.detail.clear();
    if (!has_view_ || parsed != view_) {
        view_ = std::move(parsed);
        has_view_ = true;
        changed_ = true;
        ++status_.updates;
    }
}

bool FileFeed::take_endpoints(EndpointSet &out) {
    if (!changed_)
        return false;
    out = view_;
    changed_ = false;
    return true;
}

FeedStatus FileFeed::status() const { return status_; }

} // namespace sluice::ctrl
