// libFuzzer target for the management API's request parser
// (ctrl/http_message.h). The input is a byte stream from one client. It is
// parsed whole, byte by byte, and in pieces of sizes drawn from the input's
// hash, each time the way the server does it: the bytes not yet consumed are
// kept and passed again with the next piece, from a buffer exactly as long as
// them, so ASan catches a read past what has arrived. Each run must give the
// same requests and the same refusal, and every request must agree with the
// bytes it was parsed from: a sized body is the Content-Length bytes after
// the head; a chunked one is what an independent reading of its chunks gives.
#include "ctrl/http_message.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace sluice::ctrl;

// Small, so that every limit is within reach of short inputs.
constexpr HttpLimits kLimits{512, 1024};

[[noreturn]] void broken() { __builtin_trap(); }

void check(bool promise) {
    if (!promise)
        broken();
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

// RFC 9112 7.1 read plainly: the decoded body when `raw` is exactly a chunked
// body with its trailer section, else nothing. Lenient about what the parser
// checks further (extension syntax, trailer fields).
std::optional<std::string> dechunk(std::string_view raw) {
    std::string body;
    while (true) {
        const size_t line_end = raw.find("\r\n");
        if (line_end == std::string_view::npos)
            return std::nullopt;
        const std::string_view line = raw.substr(0, line_end);
        raw.remove_prefix(line_end + 2);
        size_t digits = 0;
        uint64_t size = 0;
        while (digits < line.size() && hex_digit(line[digits]) >= 0 && digits < 16)
            size = size * 16 + uint64_t(hex_digit(line[digits++]));
        if (digits == 0)
            return std::nullopt;
        if (size == 0)
            break;
        if (raw.size() < size + 2 || raw.substr(size, 2) != "\r\n")
            return std::nullopt;
        body.append(raw.data(), size_t(size));
        raw.remove_prefix(size_t(size) + 2);
    }
    while (true) {  // trailer lines, then an empty one that ends the message
        const size_t line_end = raw.find("\r\n");
        if (line_end == std::string_view::npos)
            return std::nullopt;
        raw.remove_prefix(line_end + 2);
        if (line_end == 0)
            return raw.empty() ? std::optional<std::string>(body) : std::nullopt;
    }
}

bool is_token(std::string_view text) {
    if (text.empty())
        return false;
    for (const char c : text)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c))))
            return false;
    return true;
}

// What the parser promises about a request it hands over; `message` is the
// bytes it was parsed from, after any blank lines, and `head_size` the head's.
void check_request(const HttpRequestParser &parser, std::string_view message, size_t head_size) {
    const HttpRequest &request = parser.request();
    const HttpFraming &framing = parser.framing();
    check(is_token(request.method));
    check(!request.target.empty() && !request.path.empty());
    check(request.path == "*" || request.path.front() == '/');
    check(request.path.find('\0') == std::string::npos);
    check(framing.minor_version == 0 || framing.minor_version == 1);
    check(!framing.expect_continue || framing.minor_version == 1);
    for (const auto &[name, value] : request.headers) {
        check(is_token(name));
        for (const char c : name)
            check(!(c >= 'A' && c <= 'Z'));
        check(value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
    }
    check(request.body.size() <= kLimits.max_body_bytes);
    check(head_size <= kLimits.max_header_bytes && head_size <= message.size());
    check(message.substr(head_size - 4, 4) == "\r\n\r\n");
    const std::string_view body_bytes = message.substr(head_size);
    if (framing.chunked) {
        check(framing.content_length == 0);
        const std::optional<std::string> body = dechunk(body_bytes);
        check(body && *body == request.body);
    } else {
        check(request.body.size() == framing.content_length);
        check(body_bytes == request.body);
    }
}

// Everything one run produced, to compare runs.
struct Outcome {
    std::vector<std::string> requests;  // method, target, headers, body
    int error_status = 0;
    std::string error_message;
    size_t unconsumed = 0;
    bool receiving = false;

    bool operator==(const Outcome &) const = default;
};

std::string summary(const HttpRequestParser &parser) {
    const HttpRequest &request = parser.request();
    const HttpFraming &framing = parser.framing();
    std::string text = request.method + ' ' + request.target + ' ' + request.path + '?' +
                       request.query + ' ' + char('0' + framing.minor_version) +
                       (framing.keep_alive ? 'k' : 'c') + (framing.chunked ? 'c' : 's') +
                       std::to_string(framing.content_length) + '\n';
    for (const auto &[name, value] : request.headers)
        text.append(name).append(": ").append(value).append("\n");
    text.append(request.body);
    return text;
}

// Feeds `stream` in pieces whose sizes `next_piece` gives (0 = the rest).
template <typename NextPiece>
Outcome run(std::string_view stream, NextPiece next_piece) {
    HttpRequestParser parser(kLimits);
    Outcome outcome;
    size_t consumed = 0, arrived = 0;
    size_t message_start = 0, head_size = 0;  // of the request being parsed
    do {
        const size_t piece = next_piece();
        arrived = piece == 0 || piece > stream.size() - arrived ? stream.size() : arrived + piece;
        while (true) {
            // Exactly the bytes not yet consumed, in a buffer of their size.
            const size_t held = arrived - consumed;
            const std::unique_ptr<char[]> copy(new char[held]);
            std::memcpy(copy.get(), stream.data() + consumed, held);
            const std::string_view input(copy.get(), held);
            const HttpParseStep step = parser.parse(input);
            check(step.consumed <= input.size());
            if (step.event == HttpParseEvent::error) {
                const HttpParseError &error = parser.error();
                check(error.status == 400 || error.status == 413 || error.status == 414 ||
                      error.status == 417 || error.status == 431 || error.status == 501 ||
                      error.status == 505);
                check(!error.message.empty());
                const HttpParseStep again = parser.parse(input);
                check(again.event == HttpParseEvent::error && again.consumed == 0);
                outcome.error_status = error.status;
                outcome.error_message = error.message;
                return outcome;
            }
            if (step.event == HttpParseEvent::head) {
                // Blank lines before the request line are consumed with the head.
                size_t blank = 0;
                while (stream.substr(consumed + blank, 2) == "\r\n")
                    blank += 2;
                check(blank < step.consumed);
                message_start = consumed + blank;
                head_size = step.consumed - blank;
                check(parser.receiving());
            }
            consumed += step.consumed;
            if (step.event == HttpParseEvent::need_more)
                break;
            if (step.event == HttpParseEvent::request) {
                check_request(parser, stream.substr(message_start, consumed - message_start), head_size);
                outcome.requests.push_back(summary(parser));
            }
        }
    } while (arrived < stream.size());
    // What waits is a head, a chunk-size line (at most 1 KiB), a chunk's
    // CRLF or a trailer line; body bytes are consumed as they come.
    outcome.unconsumed = stream.size() - consumed;
    check(outcome.unconsumed <= std::max<size_t>(kLimits.max_header_bytes, 1024));
    outcome.receiving = parser.receiving();
    return outcome;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view stream(reinterpret_cast<const char *>(data), size);
    const Outcome whole = run(stream, [] { return size_t(0); });
    const Outcome byte_by_byte = run(stream, [] { return size_t(1); });
    if (!(byte_by_byte == whole))
        broken();
    // Pieces of 1 to 64 bytes, from a generator seeded with the input's hash.
    uint64_t state = 0xcbf29ce484222325;  // FNV-1a
    for (const char c : stream)
        state = (state ^ uint8_t(c)) * 0x100000001b3;
    const Outcome pieces = run(stream, [&state] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return size_t(state % 64 + 1);
    });
    if (!(pieces == whole))
        broken();
    return 0;
}
