#include "ctrl/http_message.h"

#include "ctrl/http_syntax.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>

namespace sluice::ctrl {

namespace {

// A chunk-size line must end (its CR included) within this many bytes: its
// extensions are ignored, but must end somewhere.
constexpr size_t kMaxChunkSizeLine = 1024;

// Calls `each` with every comma-separated element of a header list, trimmed.
template <typename Each>
void for_each_element(std::string_view list, Each each) {
    while (true) {
        const size_t comma = list.find(',');
        const std::string_view element = trim_whitespace(list.substr(0, comma));
        if (!element.empty())
            each(element);
        if (comma == std::string_view::npos)
            return;
        list.remove_prefix(comma + 1);
    }
}


// RFC 9112 3: method SP request-target SP HTTP-version.
std::optional<HttpParseError> parse_request_line(std::string_view line, HttpRequest &request,
                                                 HttpFraming &framing) {
    const size_t first_space = line.find(' ');
    const size_t second_space = first_space == std::string_view::npos
                                    ? std::string_view::npos
                                    : line.find(' ', first_space + 1);
    if (second_space == std::string_view::npos)
        return HttpParseError{400, "malformed request line"};
    const std::string_view method = line.substr(0, first_space);
    const std::string_view target = line.substr(first_space + 1, second_space - first_space - 1);
    const std::string_view version = line.substr(second_space + 1);
    const bool target_ok = !target.empty() && std::all_of(target.begin(), target.end(), [](char c) {
        return c > 0x20 && c < 0x7f;
    });
    if (!is_token(method) || !target_ok)
        return HttpParseError{400, "malformed request line"};
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
        hex_value(version[5]) < 0 || hex_value(version[5]) > 9 || hex_value(version[7]) < 0 ||
        hex_value(version[7]) > 9)
        return HttpParseError{400, "malformed HTTP version"};
    if (version[5] != '1')
        return HttpParseError{505, "only HTTP/1.0 and HTTP/1.1 are supported"};
    // RFC 9110 6.2: a later 1.x minor version is answered as 1.1.
    framing.minor_version = version[7] == '0' ? 0 : 1;
    framing.keep_alive = framing.minor_version == 1;

    request.method = std::string(method);
    request.target = std::string(target);
    if (target == "*" && method == "OPTIONS") {
        request.path = "*";
        return std::nullopt;
    }
    std::string_view path_and_query = target;
    bool absolute = false;
    // RFC 9112 3.2.2: a server accepts the absolute form as well.
    for (const std::string_view scheme : {"http://", "https://"})
        if (target.size() > scheme.size() &&
            equals_ignoring_case(target.substr(0, scheme.size()), scheme)) {
            const std::string_view rest = target.substr(scheme.size());
            const size_t authority_end = rest.find_first_of("/?");
            path_and_query = authority_end == std::string_view::npos ? "" : rest.substr(authority_end);
            absolute = true;
        }
    if (!absolute && path_and_query.front() != '/')
        return HttpParseError{400, "invalid request target"};
    const size_t question = path_and_query.find('?');
    const std::string_view raw_path = path_and_query.substr(0, question);
    if (question != std::string_view::npos)
        request.query = std::string(path_and_query.substr(question + 1));
    if (!percent_decode(raw_path.empty() ? "/" : raw_path, request.path))
        return HttpParseError{400, "invalid percent-encoding in the request path"};
    return std::nullopt;
}

// The header lines after the request line, and the framing they imply
// (RFC 9112 6 and 9.3; RFC 9110 7.2 and 10.1.1).
std::optional<HttpParseError> parse_headers(std::string_view lines, HttpRequest &request,
                                            HttpFraming &framing) {
    unsigned hosts = 0;
    bool has_content_length = false, has_transfer_encoding = false, chunked_last = false;
    std::string expect;
    while (!lines.empty()) {
        const size_t end = lines.find("\r\n");
        const std::string_view line = lines.substr(0, end);
        lines.remove_prefix(end == std::string_view::npos ? lines.size() : end + 2);
        if (line.empty())
            break;
        if (line.front() == ' ' || line.front() == '\t')
            return HttpParseError{400, "obsolete header line folding"};
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos || !is_token(line.substr(0, colon)))
            return HttpParseError{400, "malformed header line"};
        const std::string_view value = trim_whitespace(line.substr(colon + 1));
        if (!is_field_value(value))
            return HttpParseError{400, "invalid character in a header value"};
        std::string name(line.substr(0, colon));
        std::transform(name.begin(), name.end(), name.begin(), ascii_lower);

        if (name == "host") {
            ++hosts;
        } else if (name == "content-length") {
            // Repeated identical values are one value (RFC 9110 8.6); anything
            // else could frame the body two ways.
            size_t length = 0;
            if (value.empty() || value.size() > 18 ||
                !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
                return HttpParseError{400, "invalid Content-Length"};
            for (const char digit : value)
                length = length * 10 + size_t(digit - '0');
            if (has_content_length && length != framing.content_length)
                return HttpParseError{400, "conflicting Content-Length headers"};
            has_content_length = true;
            framing.content_length = length;
        } else if (name == "transfer-encoding") {
            has_transfer_encoding = true;
            bool unsupported = false;
            for_each_element(value, [&](std::string_view coding) {
                // Only chunked is understood; a coding after chunked, or
                // chunked twice, leaves the message without framing.
                if (!equals_ignoring_case(coding, "chunked") || chunked_last)
                    unsupported = true;
                chunked_last = true;
            });
            if (unsupported)
                return HttpParseError{501, "only the chunked transfer coding is supported"};
        } else if (name == "connection") {
            for_each_element(value, [&](std::string_view option) {
                if (equals_ignoring_case(option, "close"))
                    framing.keep_alive = false;
                else if (equals_ignoring_case(option, "keep-alive") && framing.minor_version == 0)
                    framing.keep_alive = true;
            });
        } else if (name == "expect") {
            expect = std::string(value);
        }
        request.headers.emplace_back(std::move(name), std::string(value));
    }
    // Connection: close wins over keep-alive whatever their order.
    for (const auto &[name, value] : request.headers)
        if (name == "connection")
            for_each_element(value, [&](std::string_view option) {
                if (equals_ignoring_case(option, "close"))
                    framing.keep_alive = false;
            });
    if (hosts > 1 || (hosts == 0 && framing.minor_version == 1))
        return HttpParseError{400, "an HTTP/1.1 request needs exactly one Host header"};
    if (has_transfer_encoding) {
        if (has_content_length)
            return HttpParseError{400, "both Content-Length and Transfer-Encoding"};
        if (framing.minor_version == 0)
            return HttpParseError{400, "Transfer-Encoding in an HTTP/1.0 request"};
        if (!chunked_last)
            return HttpParseError{400, "Transfer-Encoding without a coding"};
        framing.chunked = true;
    }
    if (!expect.empty()) {
        if (!equals_ignoring_case(expect, "100-continue"))
            return HttpParseError{417, "only Expect: 100-continue is supported"};
        // RFC 9110 10.1.1: an HTTP/1.0 client's expectation is ignored.
        framing.expect_continue = framing.minor_version == 1;
    }
    return std::nullopt;
}

// RFC 9112 7.1: chunk-size [ chunk-ext ]; the extensions are ignored.
std::optional<uint64_t> parse_chunk_size(std::string_view line) {
    size_t digits = 0;
    uint64_t size = 0;
    while (digits < line.size() && hex_value(line[digits]) >= 0) {
        if (digits == 15)
            return std::nullopt;  // beyond any body we would take
        size = size * 16 + uint64_t(hex_value(line[digits]));
        ++digits;
    }
    const std::string_view extensions = trim_whitespace(line.substr(digits));
    if (digits == 0 || (!extensions.empty() && extensions.front() != ';') ||
        !is_field_value(extensions))
        return std::nullopt;
    return size;
}

std::string body_too_large(size_t max_body_bytes) {
    return "the request body is larger than " + std::to_string(max_body_bytes) + " bytes";
}

const char *reason_phrase(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

std::string json_escape(std::string_view text) {
    std::string escaped;
    for (const char c : text) {
        if (c == '"' || c == '\\') {
            escaped += '\\';
            escaped += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char code[8];
            std::snprintf(code, sizeof code, "\\u%04x", unsigned(c));
            escaped += code;
        } else {
            escaped += c;
        }
    }
    return escaped;
}

} // namespace

bool percent_decode(std::string_view text, std::string &decoded) {
    decoded.clear();
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            decoded += text[i];
            continue;
        }
        if (i + 2 >= text.size())
            return false;
        const int high = hex_value(text[i + 1]), low = hex_value(text[i + 2]);
        // A decoded NUL would cut the path short wherever it meets C strings.
        if (high < 0 || low < 0 || (high == 0 && low == 0))
            return false;
        decoded += char(high * 16 + low);
        i += 2;
    }
    return true;
}

const std::string *HttpRequest::header(std::string_view name) const {
    for (const auto &[key, value] : headers)
        if (equals_ignoring_case(key, name))
            return &value;
    return nullptr;
}

HttpParseStep HttpRequestParser::parse(std::string_view input) {
    if (stage_ == Stage::done)
        reset();
    if (stage_ == Stage::failed)
        return {HttpParseEvent::error, 0};
    if (stage_ == Stage::head)
        return parse_head(input);
    return parse_body(input);
}

bool HttpRequestParser::receiving() const {
    switch (stage_) {
    case Stage::head:
        return head_scanned_ > 0;
    case Stage::done:
    case Stage::failed:
        return false;
    default:
        return true;
    }
}

void HttpRequestParser::reset() {
    stage_ = Stage::head;
    head_scanned_ = body_left_ = trailer_bytes_ = 0;
    request_ = HttpRequest{};
    framing_ = HttpFraming{};
    error_ = HttpParseError{};
}

HttpParseStep HttpRequestParser::fail(int status, std::string message, size_t consumed) {
    stage_ = Stage::failed;
    error_ = HttpParseError{status, std::move(message)};
    return {HttpParseEvent::error, consumed};
}

HttpParseStep HttpRequestParser::parse_head(std::string_view input) {
    size_t consumed = 0;
    // RFC 9112 2.2: blank lines before a request line are ignored.
    while (head_scanned_ == 0 && input.substr(0, 2) == "\r\n") {
        input.remove_prefix(2);
        consumed += 2;
    }
    if (input.empty() || input == "\r")
        return {HttpParseEvent::need_more, consumed};
    const size_t from = head_scanned_ >= 3 ? head_scanned_ - 3 : 0;
    const size_t end = input.find("\r\n\r\n", from);
    // Past the limit, whether the head is whole or not. Which status depends
    // on where the first line ends, never on how much has arrived, so the
    // answer is the same however the bytes were split.
    if ((end == std::string_view::npos ? input.size() : end + 4) > limits_.max_header_bytes) {
        const size_t line_end = input.find("\r\n");
        if (line_end == std::string_view::npos || line_end + 2 > limits_.max_header_bytes)
            return fail(414, "the request line is too long", consumed);
        return fail(431, "the request header section is too large", consumed);
    }
    if (end == std::string_view::npos) {
        head_scanned_ = input.size();
        return {HttpParseEvent::need_more, consumed};
    }
    const size_t head_size = end + 4;

    const std::string_view head = input.substr(0, head_size);
    const size_t line_end = head.find("\r\n");
    std::optional<HttpParseError> error = parse_request_line(head.substr(0, line_end), request_, framing_);
    if (!error)
        error = parse_headers(head.substr(line_end + 2), request_, framing_);
    if (error)
        return fail(error->status, std::move(error->message), consumed);
    if (!framing_.chunked && framing_.content_length > limits_.max_body_bytes)
        return fail(413, body_too_large(limits_.max_body_bytes), consumed);
    head_scanned_ = 0;
    stage_ = framing_.chunked ? Stage::chunk_size : Stage::sized_body;
    body_left_ = framing_.content_length;
    return {HttpParseEvent::head, consumed + head_size};
}

HttpParseStep HttpRequestParser::parse_body(std::string_view input) {
    std::string &body = request_.body;
    size_t consumed = 0;
    while (true) {
        const std::string_view pending = input.substr(consumed);
        switch (stage_) {
        case Stage::sized_body:
        case Stage::chunk_data: {
            const size_t taken = std::min(pending.size(), body_left_);
            body.append(pending.data(), taken);
            consumed += taken;
            body_left_ -= taken;
            if (body_left_ > 0)
                return {HttpParseEvent::need_more, consumed};
            if (stage_ == Stage::sized_body) {
                stage_ = Stage::done;
                return {HttpParseEvent::request, consumed};
            }
            stage_ = Stage::chunk_end;
            break;
        }
        case Stage::chunk_end:
            if (pending.size() < 2)
                return {HttpParseEvent::need_more, consumed};
            if (pending.substr(0, 2) != "\r\n")
                return fail(400, "a chunk is not followed by CRLF", consumed);
            consumed += 2;
            stage_ = Stage::chunk_size;
            break;
        case Stage::chunk_size: {
            const size_t end = pending.find("\r\n");
            // Refused on its length alone, however much of it has arrived.
            if (end == std::string_view::npos ? pending.size() > kMaxChunkSizeLine
                                              : end >= kMaxChunkSizeLine)
                return fail(400, "malformed chunk size", consumed);
            if (end == std::string_view::npos)
                return {HttpParseEvent::need_more, consumed};
            const std::optional<uint64_t> size = parse_chunk_size(pending.substr(0, end));
            if (!size)
                return fail(400, "malformed chunk size", consumed);
            if (*size > limits_.max_body_bytes - std::min(body.size(), limits_.max_body_bytes))
                return fail(413, body_too_large(limits_.max_body_bytes), consumed);
            consumed += end + 2;
            body_left_ = size_t(*size);
            stage_ = *size ? Stage::chunk_data : Stage::trailers;
            trailer_bytes_ = 0;
            break;
        }
        case Stage::trailers: {
            // RFC 9112 7.1.2: trailer fields are read and dropped.
            const size_t end = pending.find("\r\n");
            const size_t line_bytes = end == std::string_view::npos ? pending.size() : end + 2;
            if (trailer_bytes_ + line_bytes > limits_.max_header_bytes)
                return fail(431, "the request trailer section is too large", consumed);
            if (end == std::string_view::npos)
                return {HttpParseEvent::need_more, consumed};
            const std::string_view line = pending.substr(0, end);
            consumed += line_bytes;
            if (line.empty()) {
                stage_ = Stage::done;
                return {HttpParseEvent::request, consumed};
            }
            trailer_bytes_ += line_bytes;
            const size_t colon = line.find(':');
            if (colon == std::string_view::npos || !is_token(line.substr(0, colon)) ||
                !is_field_value(line.substr(colon + 1)))
                return fail(400, "malformed trailer line", consumed);
            break;
        }
        case Stage::head:
        case Stage::done:
        case Stage::failed:
            return {HttpParseEvent::need_more, consumed};  // parse() never sends these here
        }
    }
}

HttpResponse http_error_response(int status, std::string_view message) {
    HttpResponse response;
    response.status = status;
    response.body = "{\"error\": \"" + json_escape(message) + "\", \"field\": null}";
    return response;
}

// By hand, because strftime's names follow the locale.
std::string http_date(std::time_t when) {
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    tm utc{};
    gmtime_r(&when, &utc);
    char text[40];
    std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[utc.tm_wday],
                  utc.tm_mday, months[utc.tm_mon], utc.tm_year + 1900, utc.tm_hour, utc.tm_min,
                  utc.tm_sec);
    return text;
}

void append_http_response(std::string &out, const HttpResponse &response,
                          const HttpAnswerFraming &framing, std::string_view date) {
    const auto bad_text = [](const std::string &text) {
        return text.find_first_of("\r\n") != std::string::npos || text.find('\0') != std::string::npos;
    };
    bool valid = response.status >= 200 && response.status <= 599 && !bad_text(response.content_type);
    for (const auto &[name, value] : response.headers)
        valid = valid && is_token(name) && !bad_text(value);
    if (!valid) {
        append_http_response(out, http_error_response(500, "the handler returned an invalid response"),
                             framing, date);
        return;
    }
    // RFC 9110 6.4.1 and 8.6: 204 and 304 carry no content, 204 no length.
    const bool no_content = response.status == 204 || response.status == 304;
    out += "HTTP/1.1 " + std::to_string(response.status) + " " + reason_phrase(response.status) +
           "\r\nDate: ";
    out += date;
    out += "\r\n";
    if (!response.content_type.empty() && !no_content)
        out += "Content-Type: " + response.content_type + "\r\n";
    if (response.status != 204)
        out += "Content-Length: " + std::to_string(no_content ? 0 : response.body.size()) + "\r\n";
    for (const auto &[name, value] : response.headers)
        if (!equals_ignoring_case(name, "content-length") &&
            !equals_ignoring_case(name, "connection") &&
            !equals_ignoring_case(name, "transfer-encoding"))
            out += name + ": " + value + "\r\n";
    if (!framing.keep_alive)
        out += "Connection: close\r\n";
    else if (framing.minor_version == 0)
        out += "Connection: keep-alive\r\n";
    out += "\r\n";
    if (!framing.head_only && !no_content)
        out += response.body;
}

} // namespace sluice::ctrl
