#include "ctrl/api_request.h"

#include <set>

#include "ctrl/http_message.h"
#include "ctrl/yaml_reader.h"

namespace sluice::ctrl {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

} // namespace

bool path_segments(std::string_view path, std::vector<std::string> &segments) {
    segments.clear();
    for (size_t at = 1; at <= path.size();) {
        const size_t end = std::min(path.find('/', at), path.size());
        std::string segment;
        if (!percent_decode(path.substr(at, end - at), segment))
            return false;
        segments.push_back(std::move(segment));
        at = end + 1;
    }
    return true;
}

std::string_view bearer_token(std::string_view header) {
    while (!header.empty() && is_space(header.front()))
        header.remove_prefix(1);
    while (!header.empty() && is_space(header.back()))
        header.remove_suffix(1);
    constexpr std::string_view scheme = "bearer";
    if (header.size() <= scheme.size() || !is_space(header[scheme.size()]))
        return {};
    for (size_t i = 0; i < scheme.size(); ++i)
        if ((header[i] | 0x20) != scheme[i])
            return {};
    header.remove_prefix(scheme.size());
    while (!header.empty() && is_space(header.front()))
        header.remove_prefix(1);
    return header;
}

// The loop runs over the expected token and compares every byte, whatever
// `given` is, so the time says nothing about how much of it was right.
bool same_secret(std::string_view given, std::string_view expected) {
    unsigned char difference = given.size() != expected.size();
    for (size_t i = 0; i < expected.size(); ++i)
        difference |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
    return difference == 0;
}

std::optional<BodyError> parse_json_body(const std::string &text, Json &out) {
    // Where the parser is: one frame per open object or array.
    struct Frame {
        bool array = false;
        size_t index = 0;  // of the element being read, in an array
        std::string key;   // being read, in an object
        std::set<std::string> keys;
    };
    std::vector<Frame> frames;
    std::optional<std::string> duplicate;
    bool too_deep = false;
    auto element_done = [&] {
        if (!frames.empty() && frames.back().array)
            ++frames.back().index;
    };
    const Json::parser_callback_t callback = [&](int depth, Json::parse_event_t event,
                                                 Json &parsed) {
        using Event = Json::parse_event_t;
        switch (event) {
        case Event::object_start:
        case Event::array_start:
            if (depth >= int(max_body_depth)) {
                too_deep = true;
                return false;  // skipped; the parser itself does not recurse
            }
            frames.push_back({event == Event::array_start, 0, {}, {}});
            break;
        case Event::key: {
            Frame &frame = frames.back();
            frame.key = parsed.get<std::string>();
            if (!frame.keys.insert(frame.key).second && !duplicate) {
                std::string path;
                for (size_t i = 0; i + 1 < frames.size(); ++i)
                    path = frames[i].array ? path + "[" + std::to_string(frames[i].index) + "]"
                                           : join(path, printable(frames[i].key));
                duplicate = join(path, printable(frame.key));
            }
            break;
        }
        case Event::object_end:
        case Event::array_end:
            frames.pop_back();
            element_done();
            break;
        case Event::value:
            element_done();
            break;
        }
        return true;
    };
    try {
        out = Json::parse(text, callback);
    } catch (const Json::exception &e) {
        // "[json.exception.parse_error.101] parse error at line 1, ..."
        std::string what = e.what();
        if (const size_t end = what.find("] "); what[0] == '[' && end != std::string::npos)
            what.erase(0, end + 2);
        return BodyError{400, "malformed JSON: " + what, std::nullopt};
    }
    if (too_deep)
        return BodyError{400,
                         "the JSON body is nested deeper than " +
                             std::to_string(max_body_depth) + " levels",
                         std::nullopt};
    if (duplicate)
        return BodyError{422, "duplicate key", duplicate};
    return std::nullopt;
}

} // namespace sluice::ctrl
