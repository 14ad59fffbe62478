#include "ctrl/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>

#include <sstream>

namespace sluice::ctrl {

std::string printable(std::string_view text, size_t limit) {
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

namespace {

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

} // namespace

YAML::Node YamlReader::parse(std::string_view yaml) const {
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

} // namespace sluice::ctrl
