// What a request to the management API carries, read strictly: the
// segments of its path, the token of its Authorization header, its JSON
// body. ctrl/api.cc routes on them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ctrl/config_emit.h"

namespace sluice::ctrl {

// Deeper bodies are refused: SERVICE is 4 levels deep, nothing needs 32.
constexpr unsigned max_body_depth = 32;

// The segments of `path` after its leading '/', each percent-decoded
// (RFC 3986 section 2.1) after splitting, so that %2F separates nothing:
// "/a/%5B1%5D/" gives "a", "[1]", "". False on a bad escape.
bool path_segments(std::string_view path, std::vector<std::string> &segments);

// The token of "Bearer TOKEN", with the scheme in any case (RFC 9110
// section 11.1) and spaces around; "" for any other header.
std::string_view bearer_token(std::string_view header);

// Whether `given` is `expected`, in a time that does not depend on `given`.
bool same_secret(std::string_view given, std::string_view expected);

struct BodyError {
    int status;  // 400: not JSON, or too deep; 422: a key twice in one object
    std::string error;
    std::optional<std::string> field;
};

// A request body as JSON. Besides JSON's own rules, a key twice in one
// object is refused, as in the config file (RFC 8259 leaves it to the
// receiver); its field is the key's path, like "backends[1].weight".
std::optional<BodyError> parse_json_body(const std::string &text, Json &out);

} // namespace sluice::ctrl
