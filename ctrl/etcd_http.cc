#include "ctrl/etcd_http.h"

#include "ctrl/http_syntax.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>


namespace sluice::ctrl {

namespace {

// A chunk-size line must end (its CR included) within this many bytes: its
// extensions are ignored, but must end somewhere.
constexpr size_t max_chunk_size_line = 1024;

std::string lowered(std::string_view text) {
    std::string out(text);
    for (char &c : out)
        c = ascii_lower(c);
    return out;
}

// True when the comma-separated list holds `token` (any case).
bool list_contains(std::string_view list, std::string_view token) {
    while (!list.empty()) {
        const size_t comma = list.find(',');
        if (lowered(trim_whitespace(list.substr(0, comma))) == token)
            return true;
        if (comma == std::string_view::npos)
            break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

} // namespace

void append_http_post(std::string &out, std::string_view host, std::string_view path,
                      const std::vector<std::pair<std::string, std::string>> &headers,
                      std::string_view body) {
    out.append("POST ").append(path).append(" HTTP/1.1\r\nHost: ").append(host);
    out.append("\r\nContent-Type: application/json\r\nContent-Length: ");
    out.append(std::to_string(body.size())).append("\r\n");
    for (const auto &[name, value] : headers)
        out.append(name).append(": ").append(value).append("\r\n");
    out.append("\r\n").append(body);
}

const std::string *HttpResponseReader::header(std::string_view name) const {
    for (const auto &[key, value] : headers_)
        if (key == name)
            return &value;
    return nullptr;
}

bool HttpResponseReader::take(std::string_view bytes) {
    if (stage_ == Stage::failed)
        return false;
    input_.append(bytes.data(), bytes.size());
    return parse();
}

void HttpResponseReader::take_end_of_input() {
    if (stage_ == Stage::close_body && input_.empty()) {
        stage_ = Stage::done;
        return;
    }
    if (stage_ == Stage::done || stage_ == Stage::failed)
        return;
    fail(stage_ == Stage::head && input_.empty() && status_ == 0
             ? "connection closed before a response"
             : stage_ == Stage::head ? "connection closed within the response's head"
                                     : "connection closed within the response's body");
}

void HttpResponseReader::next() {
    if (stage_ == Stage::failed)
        return;
    stage_ = Stage::head;
    scanned_ = 0;
    status_ = 0;
    headers_.clear();
    keep_alive_ = true;
    body_left_ = 0;
    trailer_bytes_ = 0;
    body_.clear();
    parse();
}

bool HttpResponseReader::fail(std::string message) {
    stage_ = Stage::failed;
    error_ = std::move(message);
    input_.clear();
    body_.clear();
    return false;
}

bool HttpResponseReader::append_body(std::string_view bytes) {
    if (body_.size() + bytes.size() > limits_.max_body_bytes)
        return fail("a body of more than " + std::to_string(limits_.max_body_bytes) + " bytes");
    body_.append(bytes.data(), bytes.size());
    return true;
}

bool HttpResponseReader::parse() {
    size_t used = 0;  // of input_, erased once at the end
    const auto rest = [&] { return std::string_view(input_).substr(used); };
    for (;;) {
        switch (stage_) {
        case Stage::head: {
            if (used > 0) {
                input_.erase(0, used);
                used = 0;
            }
            if (!parse_head())
                return !failed();
            continue;
        }
        case Stage::sized_body:
        case Stage::chunk_data: {
            // A Content-Length body and a chunk's data: body_left_ bytes.
            const std::string_view available = rest();
            const size_t taken = std::min(available.size(), body_left_);
            if (!append_body(available.substr(0, taken)))
                return false;
            used += taken;
            body_left_ -= taken;
            if (body_left_ > 0)
                break;
            stage_ = stage_ == Stage::sized_body ? Stage::done : Stage::chunk_end;
            continue;
        }
        case Stage::close_body: {
            if (!append_body(rest()))
                return false;
            used = input_.size();
            break;
        }
        case Stage::chunk_size: {
            const std::string_view available = rest();
            const size_t end = available.find("\r\n");
            if (end == std::string_view::npos) {
                // Even a CRLF next could not end it in time: the same
                // refusal as when the whole line is there.
                if (available.size() > max_chunk_size_line)
                    return fail("a chunk-size line longer than " +
                                std::to_string(max_chunk_size_line) + " bytes");
                break;
            }
            if (end + 1 > max_chunk_size_line)
                return fail("a chunk-size line longer than " +
                            std::to_string(max_chunk_size_line) + " bytes");
            const std::string_view line = available.substr(0, end);
            size_t digits = 0;
            uint64_t size = 0;
            while (digits < line.size() && hex_value(line[digits]) >= 0) {
                if (digits == 15)  // 60 bits: far beyond any limit, never overflows
                    return fail("a chunk size too large");
                size = size * 16 + uint64_t(hex_value(line[digits]));
                ++digits;
            }
            // chunk-ext (RFC 9112 7.1.1) is ignored; BWS before it is allowed.
            const std::string_view after = trim_whitespace(line.substr(digits));
            if (digits == 0 || (!after.empty() && after.front() != ';') || !is_field_value(after))
                return fail("a malformed chunk-size line");
            used += end + 2;
            if (size == 0) {
                stage_ = Stage::trailers;
                continue;
            }
            if (size > limits_.max_body_bytes - std::min(body_.size(), limits_.max_body_bytes))
                return fail("a body of more than " + std::to_string(limits_.max_body_bytes) +
                            " bytes");
            body_left_ = size_t(size);
            stage_ = Stage::chunk_data;
            continue;
        }
        case Stage::chunk_end: {
            const std::string_view available = rest();
            if ((!available.empty() && available[0] != '\r') ||
                (available.size() >= 2 && available[1] != '\n'))
                return fail("a chunk not followed by CRLF");
            if (available.size() < 2)
                break;
            used += 2;
            stage_ = Stage::chunk_size;
            continue;
        }
        case Stage::trailers: {
            const std::string_view available = rest();
            const size_t end = available.find("\r\n");
            if (end == std::string_view::npos) {
                if (trailer_bytes_ + available.size() > limits_.max_header_bytes)
                    return fail("a trailer section longer than " +
                                std::to_string(limits_.max_header_bytes) + " bytes");
                break;
            }
            trailer_bytes_ += end + 2;
            if (trailer_bytes_ > limits_.max_header_bytes)
                return fail("a trailer section longer than " +
                            std::to_string(limits_.max_header_bytes) + " bytes");
            const std::string_view line = available.substr(0, end);
            if (!is_field_value(line) || line.find('\n') != std::string_view::npos)
                return fail("a malformed trailer line");
            used += end + 2;
            if (line.empty())
                stage_ = Stage::done;
            continue;
        }
        case Stage::done:
        case Stage::failed:
            break;
        }
        break;
    }
    if (stage_ != Stage::failed && used > 0)
        input_.erase(0, used);
    return stage_ != Stage::failed;
}

// Returns true when the head was read (and the stage moved on), false when
// more bytes are needed or on failure.
bool HttpResponseReader::parse_head() {
    const size_t from = scanned_ >= 3 ? scanned_ - 3 : 0;
    const size_t end = input_.find("\r\n\r\n", from);
    if (end == std::string::npos) {
        if (input_.size() > limits_.max_header_bytes)
            return fail("a response head longer than " + std::to_string(limits_.max_header_bytes) +
                        " bytes");
        scanned_ = input_.size();
        return false;
    }
    if (end + 4 > limits_.max_header_bytes)
        return fail("a response head longer than " + std::to_string(limits_.max_header_bytes) +
                    " bytes");
    std::string_view head = std::string_view(input_).substr(0, end + 2);
    // Every line ends with CRLF: a lone CR or LF is a smuggling vector.
    for (size_t i = 0; i < head.size(); ++i) {
        const bool crlf = head[i] == '\r' && i + 1 < head.size() && head[i + 1] == '\n';
        if ((head[i] == '\r' && !crlf) || (head[i] == '\n' && (i == 0 || head[i - 1] != '\r')))
            return fail("a bare CR or LF in the response head");
    }
    const size_t status_end = head.find("\r\n");
    const std::string_view status_line = head.substr(0, status_end);
    const std::optional<int> status = parse_status_line(status_line);
    if (!status)
        return fail("a malformed status line");
    const bool http10 = status_line[7] == '0';
    std::vector<std::pair<std::string, std::string>> headers;
    std::string_view lines = head.substr(status_end + 2);
    while (!lines.empty()) {
        const size_t line_end = lines.find("\r\n");
        const std::string_view line = lines.substr(0, line_end);
        lines.remove_prefix(line_end + 2);
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0 ||
            !std::all_of(line.begin(), line.begin() + colon, is_token_char))
            return fail("a malformed header line");
        const std::string_view value = trim_whitespace(line.substr(colon + 1));
        if (!is_field_value(value))
            return fail("a malformed header value");
        headers.emplace_back(lowered(line.substr(0, colon)), std::string(value));
    }
    input_.erase(0, end + 4);
    scanned_ = 0;
    if (*status >= 100 && *status < 200) {
        if (*status == 101)
            return fail("an unexpected 101 (Switching Protocols)");
        return true;  // interim: read the next head
    }
    status_ = *status;
    headers_ = std::move(headers);
    keep_alive_ = !http10;
    std::optional<uint64_t> length;
    bool chunked = false;
    for (const auto &[name, value] : headers_) {
        if (name == "connection" && list_contains(value, "close"))
            keep_alive_ = false;
        if (name == "transfer-encoding") {
            if (chunked || lowered(value) != "chunked")
                return fail("an unsupported transfer coding: " + value);
            chunked = true;
        }
        if (name == "content-length") {
            if (value.empty() || value.size() > 18 ||
                !std::all_of(value.begin(), value.end(),
                             [](char c) { return c >= '0' && c <= '9'; }))
                return fail("a malformed Content-Length");
            const uint64_t parsed = std::stoull(value);
            if (length && *length != parsed)
                return fail("conflicting Content-Length headers");
            length = parsed;
        }
    }
    if (chunked && length)
        return fail("both Content-Length and Transfer-Encoding");
    if (status_ == 204 || status_ == 304) {
        stage_ = Stage::done;
    } else if (chunked) {
        stage_ = Stage::chunk_size;
    } else if (length) {
        if (*length > limits_.max_body_bytes)
            return fail("a body of more than " + std::to_string(limits_.max_body_bytes) +
                        " bytes");
        body_left_ = size_t(*length);
        stage_ = body_left_ == 0 ? Stage::done : Stage::sized_body;
    } else {
        stage_ = Stage::close_body;
        keep_alive_ = false;
    }
    return true;
}

} // namespace sluice::ctrl
