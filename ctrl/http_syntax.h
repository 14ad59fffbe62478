// HTTP/1.1's small rules (RFC 9110, RFC 9112), shared by the management
// API's server (ctrl/http_message.h), etcd's client (ctrl/etcd_http.h) and
// the health checks (ctrl/health_checker.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::ctrl {

char ascii_lower(char c);
bool equals_ignoring_case(std::string_view a, std::string_view b);
// RFC 9110 5.6.2: the characters of a token (methods, header names).
bool is_token_char(char c);
bool is_token(std::string_view text);
// RFC 9110 5.5: field values are visible characters, obs-text, SP and HTAB.
bool is_field_value(std::string_view text);
// Without the spaces and tabs at either end (OWS).
std::string_view trim_whitespace(std::string_view text);
// 0..15 for a hex digit, -1 for anything else.
int hex_value(char c);
// The status code of an HTTP/1.x status line (RFC 9112 section 4), without
// its line ending, or nothing when the line is malformed. Accepts a missing
// reason phrase with or without its space, as many servers send.
std::optional<uint16_t> parse_status_line(std::string_view line);

} // namespace sluice::ctrl
