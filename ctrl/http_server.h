// The management API's HTTP/1.1 server: plain or TLS (optionally mutual),
// keep-alive and pipelining, one handler for every request. It is driven by
// the control plane's poll loop and never blocks: fd() is an epoll fd that
// becomes readable when a socket has work, service() does that work, and
// timeout_ms() says when the next idle connection must be closed.
//
// Requests are parsed and answers written by ctrl/http_message (strict RFC
// 9112; chunked bodies decoded). Every error answer is JSON
// {"error": "...", "field": null} and closes the connection.
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

#include "ctrl/http_message.h"

using SSL_CTX = struct ssl_ctx_st;

namespace sluice::ctrl {

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
    void dispatch(Connection &connection);
    void fail(Connection &connection, int status, std::string_view message);
    void queue_response(Connection &connection, const HttpResponse &response,
                        const HttpAnswerFraming &framing);

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
