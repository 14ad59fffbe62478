// The client side of HTTP/1.1 (RFC 9112) that the etcd feed and registration
// need to talk to etcd's JSON gateway, over bytes alone: no sockets, no TLS,
// no clock. append_http_post() writes a request; HttpResponseReader reads
// the answer in whatever pieces it arrives, including a streaming body that
// never ends (a watch), whose bytes the caller drains as they come.
//
// Reading is strict and bounded: CRLF line ends only, no obs-fold, no
// whitespace before a header's colon, never both Content-Length and
// Transfer-Encoding, no transfer coding but chunked, an HTTP/1.x status
// line. Interim 1xx responses
// are skipped (RFC 9110 section 15.2). The head and each chunk-size or
// trailer line must end within their limits, and the undrained body may not
// outgrow max_body_bytes, so what the reader holds stays bounded.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::ctrl {

struct HttpClientLimits {
    size_t max_header_bytes = 16384;   // status line, headers and the empty line
    size_t max_body_bytes = 64 << 20;  // decoded body not yet drained by the caller
};

// "POST <path> HTTP/1.1" with Host, Content-Type: application/json,
// Content-Length and `headers`, then `body`. The caller passes only values
// without CR or LF (the etcd client builds them all itself).
void append_http_post(std::string &out, std::string_view host, std::string_view path,
                      const std::vector<std::pair<std::string, std::string>> &headers,
                      std::string_view body);

class HttpResponseReader {
public:
    explicit HttpResponseReader(const HttpClientLimits &limits = {}) : limits_(limits) {}

    // Takes bytes as they arrive. Decoded body bytes are appended to body().
    // Returns false once the response is refused (error() says why); bytes
    // after a complete response are kept for the next one (see next()).
    bool take(std::string_view bytes);
    // The peer closed the connection: completes a body delimited by the
    // close (RFC 9112 section 6.3, rule 8), anything else unfinished is an
    // error.
    void take_end_of_input();

    bool head_done() const { return stage_ > Stage::head; }
    int status() const { return status_; }
    // The first header called `name` (lower case), or nullptr.
    const std::string *header(std::string_view name) const;
    bool complete() const { return stage_ == Stage::done; }
    bool failed() const { return stage_ == Stage::failed; }
    const std::string &error() const { return error_; }
    // The connection may carry another request once this response is complete.
    bool keep_alive() const { return keep_alive_; }
    // Decoded body bytes not yet drained. The caller may erase a prefix of
    // them (a streaming body) or read them whole when complete().
    std::string &body() { return body_; }

    // Ready for the next response on the same connection, with any bytes
    // that came after the last one.
    void next();

private:
    enum class Stage { head, sized_body, close_body, chunk_size, chunk_data, chunk_end, trailers,
                       done, failed };

    bool parse();
    bool parse_head();
    bool fail(std::string message);
    bool append_body(std::string_view bytes);

    HttpClientLimits limits_;
    Stage stage_ = Stage::head;
    std::string input_;       // received and not yet consumed
    size_t scanned_ = 0;      // of input_, already searched for the head's end
    int status_ = 0;
    std::vector<std::pair<std::string, std::string>> headers_;
    bool keep_alive_ = true;
    size_t body_left_ = 0;    // of a sized body, or of the current chunk
    size_t trailer_bytes_ = 0;
    std::string body_;
    std::string error_;
};

} // namespace sluice::ctrl
