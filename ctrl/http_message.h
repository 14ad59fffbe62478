// HTTP/1.1 messages as the management API reads and writes them, over bytes
// alone: no sockets, no TLS, no clock. HttpRequestParser takes a request in
// whatever pieces it arrives in; append_http_response() writes an answer.
// ctrl/http_server drives both over its connections.
//
// Parsing is strict (RFC 9112): CRLF line ends only, no obs-fold, no
// whitespace before a header's colon, a Host header on HTTP/1.1, never both
// Content-Length and Transfer-Encoding. Bodies come with Content-Length or
// `Transfer-Encoding: chunked` (decoded here; trailers are read and dropped).
// Every refusal carries the status that answers it: 400 malformed, 413 body
// too large, 414 request line too long, 417 unknown expectation, 431 header or
// trailer section too large, 501 unknown transfer coding, 505 not HTTP/1.x;
// the same refusal however the bytes were split.
#pragma once

#include <cstddef>
#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::ctrl {

struct HttpRequest {
    std::string method, target, path, query;  // path is percent-decoded; query raw
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::string body;    // de-chunked when it came chunked
    // Set by the server, not the parser:
    std::string peer;    // "198.18.0.1:40000" or "[2001:db8::1]:40000"
    std::string client_subject;  // verified TLS client certificate's subject (RFC 2253), else empty

    // The first header called `name` (any case), or nullptr.
    const std::string *header(std::string_view name) const;
};

// A status outside 200..599, a header name that is not a token, or CR, LF or
// NUL in a value turns the response into a 500: nothing a handler returns can
// split the stream. 204 and 304 are sent without a body.
struct HttpResponse {
    int status = 200;
    std::string content_type = "application/json";  // empty = no Content-Type
    std::string body;
    // Extra headers. Content-Length, Connection and Transfer-Encoding are the
    // server's own and are dropped here.
    std::vector<std::pair<std::string, std::string>> headers;
};

// What a request head says about the message and the connection.
struct HttpFraming {
    int minor_version = 1;  // 0 or 1; a later HTTP/1.x is answered as 1.1 (RFC 9110 6.2)
    bool chunked = false;
    size_t content_length = 0;  // when not chunked
    bool keep_alive = true;     // the connection may carry another request
    bool expect_continue = false;  // Expect: 100-continue from an HTTP/1.1 client
};

struct HttpLimits {
    // Request line and headers: 431, or 414 when the request line with its
    // CRLF alone is longer. The trailer section: 431.
    size_t max_header_bytes = 16384;
    size_t max_body_bytes = 65536;    // decoded body (413)
};

struct HttpParseError {
    int status = 0;  // the answer: 400, 413, 414, 417, 431, 501 or 505
    std::string message;
};

enum class HttpParseEvent {
    need_more,  // all that can be taken was taken; the rest waits for more bytes
    head,       // request line and headers read: framing() is known, the body follows
    request,    // the request is whole: request() and framing() until the next parse()
    error,      // refused: error() says how to answer; nothing more is parsed
};

struct HttpParseStep {
    HttpParseEvent event = HttpParseEvent::need_more;
    size_t consumed = 0;  // bytes of the input that are done with
};

// One connection's requests, one after the other. The caller keeps the bytes
// received and not yet consumed, and passes them all to each parse(): those
// of the last call first, anything new after them. An incomplete head,
// chunk-size line, chunk CRLF or trailer line stays unconsumed until it is
// whole, and is refused once it outgrows its limit (max_header_bytes, or
// 1 KiB for a chunk-size line), so what the caller holds stays bounded.
class HttpRequestParser {
public:
    explicit HttpRequestParser(const HttpLimits &limits = {}) : limits_(limits) {}

    // Parses up to the next event. After `request`, the next call begins the
    // next request (pipelining); after `error`, every call returns `error`.
    HttpParseStep parse(std::string_view input);

    // A request has begun to arrive: more than blank lines between requests.
    bool receiving() const;
    // After `head`: the client waits for 100 (Continue) before its body
    // (RFC 9110 10.1.1). Whether it already sent some is the caller's to see.
    bool continue_expected() const {
        return framing_.expect_continue && (framing_.chunked || framing_.content_length > 0);
    }
    HttpRequest &request() { return request_; }
    const HttpRequest &request() const { return request_; }
    const HttpFraming &framing() const { return framing_; }
    const HttpParseError &error() const { return error_; }

    // Ready for a new request: forgets the one received, and any error.
    void reset();

private:
    enum class Stage { head, sized_body, chunk_size, chunk_data, chunk_end, trailers, done, failed };

    HttpParseStep parse_head(std::string_view input);
    HttpParseStep parse_body(std::string_view input);
    HttpParseStep fail(int status, std::string message, size_t consumed);

    HttpLimits limits_;
    Stage stage_ = Stage::head;
    size_t head_scanned_ = 0;   // bytes of input already searched for the head's end
    size_t body_left_ = 0;      // of the sized body, or of the current chunk
    size_t trailer_bytes_ = 0;  // of the trailer lines read so far
    HttpRequest request_;
    HttpFraming framing_;
    HttpParseError error_;
};

// How an answer is framed for the request it answers.
struct HttpAnswerFraming {
    bool keep_alive = false;  // else "Connection: close"
    int minor_version = 1;    // an HTTP/1.0 client kept alive is told so
    bool head_only = false;   // the answer to HEAD: the body's length, not the body
};

// Appends the status line, headers and body to `out`; `date` is the Date
// header's value (http_date). A response that breaks HttpResponse's rules is
// replaced by a 500.
void append_http_response(std::string &out, const HttpResponse &response,
                          const HttpAnswerFraming &framing, std::string_view date);

// What the client of an Expect: 100-continue request is sent first.
inline constexpr std::string_view kHttpContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// Every error answer: {"error": "<message>", "field": null}.
HttpResponse http_error_response(int status, std::string_view message);

// RFC 9110 5.6.7, IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string http_date(std::time_t when);

// RFC 3986 2.1 percent-decoding. False for a bad escape or an encoded NUL,
// which would cut a path short wherever it meets C strings.
bool percent_decode(std::string_view text, std::string &decoded);

} // namespace sluice::ctrl
