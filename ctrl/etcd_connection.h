// One HTTP/1.1 connection to one etcd endpoint, plain TCP or TLS, carrying
// one request at a time: a unary call, whose whole body comes back as one
// reply, or a streaming call (a watch), whose body comes back one JSON text
// per line as etcd's gateway writes them. Non-blocking: the owner's epoll
// says when the socket is ready, and the owner calls handle() and
// check_deadline(); replies queue until taken. A kept-alive connection
// carries the next request; a closed one is reopened by the next post().
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "ctrl/discovery_settings.h"
#include "ctrl/etcd_http.h"
#include "dataplane/net_addr.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace sluice::ctrl {

using EtcdMillis = int64_t;  // CLOCK_MONOTONIC, milliseconds
EtcdMillis etcd_now();

struct EtcdReply {
    enum class Kind {
        response,  // a unary call's answer, or a streaming call's non-200 answer
        message,   // one JSON text of a streaming call's 200 body
        failure,   // the connection failed and is closed; `body` says why
    };
    Kind kind = Kind::response;
    int status = 0;
    std::string body;
};

struct EtcdRequest {
    std::string path;  // "/v3/kv/range"
    std::string body;  // JSON
    std::vector<std::pair<std::string, std::string>> headers;
    bool stream = false;
    uint32_t timeout_ms = 5000;  // for the answer (a stream's first line), connecting excluded
    uint32_t idle_ms = 0;        // a stream after its first line: longest silence, 0 = none
};

class EtcdConnection {
public:
    // Registers its sockets with `epoll` under data.u64 values of its own,
    // from `tag_base` up (see owns()). `tls` may be null (plain only); it
    // must outlive the connection.
    EtcdConnection(int epoll, uint64_t tag_base, SSL_CTX *tls, const HttpClientLimits &limits,
                   std::string tls_server_name, uint32_t connect_timeout_ms);
    ~EtcdConnection();
    EtcdConnection(const EtcdConnection &) = delete;
    EtcdConnection &operator=(const EtcdConnection &) = delete;

    // Sends `request` to `endpoint`, first opening the connection when it is
    // closed or open to another endpoint. One request at a time: posting
    // while busy() drops the request in flight, as close() does.
    void post(const EtcdEndpoint &endpoint, EtcdRequest request, EtcdMillis now);
    bool busy() const { return phase_ != Phase::closed && phase_ != Phase::idle; }
    // Drops the connection and anything in flight, without a reply.
    void close();
    void close_if_busy() {
        if (busy())
            close();
    }

    // True when an epoll event's data.u64 is this connection's current socket.
    bool owns(uint64_t tag) const { return tag == tag_ && socket_ >= 0; }
    void handle(uint32_t events, EtcdMillis now);
    void check_deadline(EtcdMillis now);
    EtcdMillis deadline() const { return busy() ? deadline_ : 0; }  // 0: none

    bool next_reply(EtcdReply &reply);
    bool has_replies() const { return !replies_.empty(); }
    void drop_replies() { replies_.clear(); }
    uint64_t opened() const { return opened_; }  // sockets opened so far

private:
    enum class Phase { closed, connecting, handshaking, sending, receiving, idle };

    void open(const EtcdEndpoint &endpoint, EtcdMillis now);
    void start_handshake(EtcdMillis now);
    void pump(EtcdMillis now);
    bool write_out();
    bool read_in(EtcdMillis now);
    void deliver(EtcdMillis now);
    void fail(std::string why);
    void watch_for(bool writable);
    std::string tls_error_text();

    int epoll_;
    uint64_t tag_base_;
    uint64_t tag_ = 0;
    SSL_CTX *tls_context_;
    HttpClientLimits limits_;
    std::string tls_server_name_;
    uint32_t connect_timeout_ms_;

    Phase phase_ = Phase::closed;
    int socket_ = -1;
    SSL *tls_ = nullptr;
    bool tls_wants_write_ = false;
    bool watching_writable_ = false;
    EtcdEndpoint endpoint_;
    bool has_endpoint_ = false;
    EtcdRequest request_;
    std::string out_;
    size_t sent_ = 0;
    HttpResponseReader reader_;
    bool got_line_ = false;  // a stream's first line arrived: idle_ms applies
    EtcdMillis deadline_ = 0;
    std::deque<EtcdReply> replies_;
    uint64_t opened_ = 0;
};

} // namespace sluice::ctrl
