// Strict reading of YAML for configuration files: every map's keys are
// checked against what is allowed, every scalar against its type and range,
// and the first problem is thrown as a ConfigError naming FILE:LINE:COLUMN
// and the key's path. The config loader's sections (config.cc,
// config_services.cc) are written on top of these readers.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ctrl/config.h"

namespace sluice::ctrl {

// Text for a message: quoted, escaped, and cut short, since it may be anything.
std::string printable(std::string_view text, size_t limit = 60);
std::string quoted(std::string_view text);
// Exact matches, so that std::quoted, found by argument-dependent lookup
// wherever <iomanip> is included, never wins.
inline std::string quoted(const std::string &text) { return quoted(std::string_view(text)); }
inline std::string quoted(const char *text) { return quoted(std::string_view(text)); }
// "a map", "a sequence", "nothing" or the quoted scalar.
std::string describe(const YAML::Node &n);
// Digits only: no sign, no fraction, no base prefix, no leading zero (YAML 1.1
// would read 010 as octal). Saturates, so that the range check rejects
// overflow with the number as written.
std::optional<uint64_t> parse_unsigned(std::string_view text);
std::string plural(size_t n, const char *word);

// Rules for strings.
using Rule = bool (*)(std::string_view);

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

inline std::string join(const std::string &parent, std::string_view key) {
    return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

class YamlReader {
public:
    explicit YamlReader(const std::string &source) : source_(source) {}

    // The first and only document of `yaml`.
    YAML::Node parse(std::string_view yaml) const;

    [[noreturn]] void fail(const YAML::Mark &mark, const std::string &key,
                           const std::string &message) const {
        // yaml-cpp counts from 0, and -1 for "no position": the latter stays 0.
        throw ConfigError(source_, std::max(mark.line + 1, 0), std::max(mark.column + 1, 0),
                          key.empty() ? "(top level)" : key, message);
    }
    [[noreturn]] void fail(const Field &f, const std::string &message) const {
        fail(f.mark, f.path, message);
    }

    // A Config::warnings line about `f`, positioned like an error.
    std::string warning(const Field &f, const std::string &message) const {
        return source_ + ":" + std::to_string(f.mark.line + 1) + ":" +
               std::to_string(f.mark.column + 1) + ": " + f.path + ": " + message;
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

    // YAML 1.1's yes, no, on and off are not booleans here.
    bool boolean(const Field &f) const {
        return choice(f, {"false", "true"}) == 1;
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

protected:
    const std::string &source_;
};

} // namespace sluice::ctrl
