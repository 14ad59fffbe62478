// The management API's HTTP/1.1 server: plain or TLS (optionally mutual),
// keep-alive and pipelining, one handler for every request. It is driven by
// the control plane's poll loop and never blocks: fd() is an epoll fd that
// becomes readable when a socket has work, service() does that work, and
// timeout_ms() says when the next idle connection must be closed.
//
// Parsing is strict (RFC 9112): CRLF line ends only, no obs-fold, no
// whitespace before a header's colon, a Host header on HTTP/1.1, never both
// Content-Length and Transfer-Encoding. Request bodies may be sent with
// Content-Length or `Transfer-Encoding: chunked` (decoded here; trailers are
// read and dropped). Every error answer is JSON {"error": "...", "field": null}
// and closes the connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

using SSL_CTX = struct ssl_ctx_st;

namespace sluice::ctrl {

struct HttpRequest {
    std::string method, target, path, query;  // path is percent-decoded; query raw
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::string body;    // de-chunked when it came chunked
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

// Called from service(), one request at a time, in the order they arrive on
// each connection. An exception it throws becomes a 500; it must not stop()
// the server that called it.
using HttpHandler = std::function<HttpResponse(const HttpRequest &)>;

struct HttpServerSettings {
    // ADDRESS:PORT or [V6]:PORT, numeric; port 0 = any (tests). An IPv6
    // address listens for IPv6 only.
    std::string listen = "127.0.0.1:8480";
    size_t max_body_bytes = 65536;    // bigger bodies get 413
    size_t max_header_bytes = 16384;  // request line and headers; bigger get 431
    unsigned max_clients = 64;        // more connections get 503 and are closed
    // A keep-alive connection idle this long is closed, and a request must
    // arrive whole within this long of its first byte (else 408).
    unsigned idle_timeout_ms = 30000;
    std::string tls_certificate, tls_private_key;  // PEM; both empty = plain HTTP
    std::string tls_client_ca;  // PEM; set = client certificates required and verified
};

class HttpServer {
public:
    HttpServer();
    ~HttpServer();
    HttpServer(const HttpServer &) = delete;
    HttpServer &operator=(const HttpServer &) = delete;

    // Loads the TLS files, binds and listens. False with `error` set (naming
    // the address or the file) when it cannot; a running server is stopped first.
    bool start(const HttpServerSettings &settings, HttpHandler handler, std::string &error);
    uint16_t port() const { return port_; }  // the bound port
    int fd() const { return epoll_; }        // -1 when not started
    // Milliseconds until service() must run even if fd() stays quiet: an idle
    // connection to close, or TLS data already decrypted. -1 = none.
    int timeout_ms() const;
    // Accepts, reads, answers and writes whatever is ready, closes what has
    // timed out; never blocks, never throws.
    void service() noexcept;
    void stop();  // closes every connection and the listening socket

private:
    struct Connection;
    enum class ReadResult { data, blocked, end, failed };

    void service_ready(int64_t now);
    void accept_clients(int64_t now);
    void close_connection(uint64_t id);
    void drive_safely(Connection &connection, int64_t now);
    bool drive(Connection &connection, int64_t now);
    ReadResult read_some(Connection &connection);
    bool flush(Connection &connection, int64_t now);
    void begin_linger(Connection &connection, int64_t now);
    bool discard_input(Connection &connection);
    void update_interest(Connection &connection);
    int64_t deadline(const Connection &connection) const;
    void expire(int64_t now);

    void process_input(Connection &connection, int64_t now);
    bool begin_request(Connection &connection, std::string_view head);
    bool receive_body(Connection &connection);
    void dispatch(Connection &connection);
    void fail(Connection &connection, int status, std::string_view message);
    void queue_response(Connection &connection, const HttpResponse &response, bool keep_alive,
                        bool head_only);

    HttpServerSettings settings_;
    HttpHandler handler_;
    int epoll_ = -1;
    int listener_ = -1;
    uint16_t port_ = 0;
    SSL_CTX *tls_ = nullptr;
    int64_t accept_paused_until_ = 0;  // out of file descriptors: retry then
    uint64_t next_id_ = 1;             // epoll carries ids, so a reused fd is never confused
    std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
    unsigned clients_ = 0;    // connections being served, at most max_clients
    unsigned rejecting_ = 0;  // connections over the limit, being told 503
};

} // namespace sluice::ctrl
