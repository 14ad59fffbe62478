#include "ctrl/etcd_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ctrl/tls.h"

namespace sluice::ctrl {

namespace {

// "connection refused", from strerror's "Connection refused".
std::string describe_error(int error) {
    std::string text = std::strerror(error);
    if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z')
        text[0] = char(text[0] - 'A' + 'a');
    return text;
}

// A watch lives for hours on one connection: keepalive probes find a peer
// that vanished without a FIN (a dead host, a partition) within about 20 s,
// where the kernel's default would take two hours.
void keep_alive(int socket) {
    const int on = 1, idle_s = 10, interval_s = 3, probes = 3;
    ::setsockopt(socket, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    ::setsockopt(socket, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
    ::setsockopt(socket, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof interval_s);
    ::setsockopt(socket, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
    // Requests are written whole; waiting to coalesce them only adds latency.
    ::setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

constexpr size_t read_chunk = 65536;

} // namespace

EtcdMillis etcd_now() {
    timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return EtcdMillis(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
}

EtcdConnection::EtcdConnection(int epoll, uint64_t tag_base, SSL_CTX *tls,
                               const HttpClientLimits &limits, std::string tls_server_name,
                               uint32_t connect_timeout_ms)
    : epoll_(epoll), tag_base_(tag_base), tag_(tag_base), tls_context_(tls), limits_(limits),
      tls_server_name_(std::move(tls_server_name)), connect_timeout_ms_(connect_timeout_ms),
      reader_(limits) {}

EtcdConnection::~EtcdConnection() { close(); }

void EtcdConnection::close() {
    if (tls_) {
        SSL_free(tls_);  // no close_notify: the socket may be dead, and it would block nothing
        tls_ = nullptr;
    }
    if (socket_ >= 0) {
        ::close(socket_);  // also leaves the epoll set: it is never dup()ed
        socket_ = -1;
    }
    phase_ = Phase::closed;
    out_.clear();
    sent_ = 0;
    reader_ = HttpResponseReader(limits_);
    got_line_ = false;
    tls_wants_write_ = false;
}

void EtcdConnection::fail(std::string why) {
    close();
    replies_.push_back({EtcdReply::Kind::failure, 0, std::move(why)});
}

bool EtcdConnection::next_reply(EtcdReply &reply) {
    if (replies_.empty())
        return false;
    reply = std::move(replies_.front());
    replies_.pop_front();
    return true;
}

void EtcdConnection::post(const EtcdEndpoint &endpoint, EtcdRequest request, EtcdMillis now) {
    const bool same_endpoint = has_endpoint_ && endpoint.host == endpoint_.host &&
                               endpoint.tls == endpoint_.tls;
    if (busy() || !same_endpoint)
        close();
    endpoint_ = endpoint;
    has_endpoint_ = true;
    request_ = std::move(request);
    out_.clear();
    sent_ = 0;
    append_http_post(out_, endpoint_.host, request_.path, request_.headers, request_.body);
    got_line_ = false;
    if (phase_ == Phase::idle) {
        phase_ = Phase::sending;
        deadline_ = now + request_.timeout_ms;
        pump(now);
        return;
    }
    open(endpoint, now);
}

void EtcdConnection::open(const EtcdEndpoint &endpoint, EtcdMillis now) {
    const std::string cannot = "cannot connect to " + endpoint.host + ": ";
    sockaddr_storage peer{};
    socklen_t peer_length;
    if (endpoint.address.is_v4()) {
        auto &v4 = reinterpret_cast<sockaddr_in &>(peer);
        v4.sin_family = AF_INET;
        v4.sin_port = htons(endpoint.port);
        std::memcpy(&v4.sin_addr, endpoint.address.bytes.data(), 4);
        peer_length = sizeof v4;
    } else {
        auto &v6 = reinterpret_cast<sockaddr_in6 &>(peer);
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(endpoint.port);
        std::memcpy(&v6.sin6_addr, endpoint.address.bytes.data(), 16);
        peer_length = sizeof v6;
    }
    socket_ = ::socket(peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (socket_ < 0)
        return fail(cannot + "cannot open a socket: " + describe_error(errno));
    ++opened_;
    keep_alive(socket_);
    // A new tag per socket: an event still queued for a closed socket whose
    // number was reused cannot reach the new one.
    tag_ = ++tag_base_;
    if (::connect(socket_, reinterpret_cast<sockaddr *>(&peer), peer_length) < 0 &&
        errno != EINPROGRESS)
        return fail(cannot + describe_error(errno));
    epoll_event interest{};
    interest.events = EPOLLOUT;
    interest.data.u64 = tag_;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, socket_, &interest) < 0)
        return fail(cannot + "cannot watch a socket: " + describe_error(errno));
    watching_writable_ = true;
    phase_ = Phase::connecting;
    deadline_ = now + connect_timeout_ms_;
}

void EtcdConnection::watch_for(bool writable) {
    if (socket_ < 0 || writable == watching_writable_)
        return;
    epoll_event interest{};
    interest.events = EPOLLIN | (writable ? EPOLLOUT : 0u);
    interest.data.u64 = tag_;
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, socket_, &interest);
    watching_writable_ = writable;
}

std::string EtcdConnection::tls_error_text() {
    std::string text;
    if (tls_) {
        const long verified = SSL_get_verify_result(tls_);
        if (verified != X509_V_OK)
            text = X509_verify_cert_error_string(verified);
    }
    while (const unsigned long code = ERR_get_error()) {
        if (!text.empty())
            text += ": ";
        const char *reason = ERR_reason_error_string(code);
        text += reason ? reason : "error " + std::to_string(code);
    }
    return text.empty() ? "connection closed" : text;
}

void EtcdConnection::start_handshake(EtcdMillis now) {
    const std::string failed = "TLS handshake with " + endpoint_.host + " failed: ";
    BIO *bio = BIO_new(socket_without_sigpipe());
    tls_ = SSL_new(tls_context_);
    if (!bio || !tls_) {
        BIO_free(bio);
        return fail(failed + "out of memory");
    }
    BIO_set_fd(bio, socket_, BIO_NOCLOSE);
    SSL_set_bio(tls_, bio, bio);
    // The certificate must name what we asked for: the configured name
    // (also sent as SNI), else the endpoint's IP address (RFC 6125 IP SAN).
    bool named;
    if (!tls_server_name_.empty())
        named = SSL_set_tlsext_host_name(tls_, tls_server_name_.c_str()) == 1 &&
                SSL_set1_host(tls_, tls_server_name_.c_str()) == 1;
    else
        named = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls_),
                                              endpoint_.address.to_string().c_str()) == 1;
    if (!named)
        return fail(failed + "cannot set the name to verify");
    SSL_set_connect_state(tls_);
    phase_ = Phase::handshaking;
    pump(now);
}

void EtcdConnection::handle(uint32_t events, EtcdMillis now) {
    if (phase_ == Phase::connecting) {
        int error = 0;
        socklen_t length = sizeof error;
        if (::getsockopt(socket_, SOL_SOCKET, SO_ERROR, &error, &length) < 0)
            error = errno;
        if (error == 0 && !(events & EPOLLOUT))
            error = ECONNRESET;  // a hang-up without an error: treat it as one
        if (error != 0)
            return fail("cannot connect to " + endpoint_.host + ": " + describe_error(error));
        deadline_ = now + request_.timeout_ms;
        if (tls_context_ && endpoint_.tls)
            return start_handshake(now);
        phase_ = Phase::sending;
    }
    pump(now);
}

void EtcdConnection::check_deadline(EtcdMillis now) {
    if (!busy() || now < deadline_)
        return;
    switch (phase_) {
    case Phase::connecting:
        return fail("cannot connect to " + endpoint_.host + ": no answer within " +
                    std::to_string(connect_timeout_ms_) + " ms");
    case Phase::handshaking:
        return fail("TLS handshake with " + endpoint_.host + " failed: no answer within " +
                    std::to_string(request_.timeout_ms) + " ms");
    default:
        if (got_line_)
            return fail(endpoint_.host + " sent nothing for " + std::to_string(request_.idle_ms) +
                        " ms");
        return fail(endpoint_.host + " did not answer " + request_.path + " within " +
                    std::to_string(request_.timeout_ms) + " ms");
    }
}

void EtcdConnection::pump(EtcdMillis now) {
    if (phase_ == Phase::handshaking) {
        ERR_clear_error();
        const int result = SSL_connect(tls_);
        if (result != 1) {
            const int reason = SSL_get_error(tls_, result);
            if (reason != SSL_ERROR_WANT_READ && reason != SSL_ERROR_WANT_WRITE)
                return fail("TLS handshake with " + endpoint_.host + " failed: " +
                            tls_error_text());
            watch_for(reason == SSL_ERROR_WANT_WRITE);
            return;
        }
        phase_ = Phase::sending;
    }
    if (phase_ == Phase::sending) {
        if (!write_out())
            return;
        if (sent_ == out_.size()) {
            phase_ = Phase::receiving;
            out_.clear();
            sent_ = 0;
        }
    }
    if (phase_ == Phase::sending || phase_ == Phase::receiving || phase_ == Phase::idle)
        read_in(now);
    if (socket_ >= 0)
        watch_for(phase_ == Phase::sending || tls_wants_write_);
}

// False when the connection failed.
bool EtcdConnection::write_out() {
    tls_wants_write_ = false;
    while (sent_ < out_.size()) {
        const size_t length = out_.size() - sent_;
        if (tls_) {
            ERR_clear_error();
            const int written = SSL_write(tls_, out_.data() + sent_, int(length));
            if (written <= 0) {
                const int reason = SSL_get_error(tls_, written);
                if (reason == SSL_ERROR_WANT_WRITE || reason == SSL_ERROR_WANT_READ)
                    return true;
                fail("lost " + endpoint_.host + ": " + tls_error_text());
                return false;
            }
            sent_ += size_t(written);
            continue;
        }
        const ssize_t written = ::send(socket_, out_.data() + sent_, length, MSG_NOSIGNAL);
        if (written > 0) {
            sent_ += size_t(written);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return true;
        } else if (errno != EINTR) {
            fail("lost " + endpoint_.host + ": " + describe_error(errno));
            return false;
        }
    }
    return true;
}

// Reads all there is (a TLS record's rest included: epoll cannot see it).
// False when the connection failed or closed.
bool EtcdConnection::read_in(EtcdMillis now) {
    char buffer[read_chunk];
    for (;;) {
        ssize_t received;
        if (tls_) {
            ERR_clear_error();
            const int result = SSL_read(tls_, buffer, int(sizeof buffer));
            if (result > 0) {
                received = result;
            } else {
                const int reason = SSL_get_error(tls_, result);
                if (reason == SSL_ERROR_WANT_READ)
                    return true;
                if (reason == SSL_ERROR_WANT_WRITE) {
                    tls_wants_write_ = true;
                    return true;
                }
                if (reason == SSL_ERROR_ZERO_RETURN ||
                    (reason == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
                    received = 0;  // close_notify, or a close without one
                } else {
                    fail("lost " + endpoint_.host + ": " + tls_error_text());
                    return false;
                }
            }
        } else {
            received = ::recv(socket_, buffer, sizeof buffer, 0);
            if (received < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return true;
                fail("lost " + endpoint_.host + ": " + describe_error(errno));
                return false;
            }
        }
        if (phase_ == Phase::idle) {
            // Nothing is asked: a close (Go's idle timeout) or stray bytes.
            close();
            return false;
        }
        if (received == 0) {
            reader_.take_end_of_input();
            deliver(now);
            if (phase_ == Phase::receiving || phase_ == Phase::sending)
                fail(endpoint_.host + " closed the connection" +
                     (reader_.failed() ? ": " + reader_.error() : ""));
            else if (phase_ != Phase::closed)
                close();
            return false;
        }
        if (got_line_ && request_.idle_ms > 0)
            deadline_ = now + request_.idle_ms;
        if (!reader_.take(std::string_view(buffer, size_t(received)))) {
            fail("bad HTTP from " + endpoint_.host + ": " + reader_.error());
            return false;
        }
        deliver(now);
        if (phase_ == Phase::closed)
            return false;
    }
}

void EtcdConnection::deliver(EtcdMillis now) {
    if (!reader_.head_done() || reader_.failed())
        return;
    if (request_.stream && reader_.status() == 200) {
        std::string &body = reader_.body();
        size_t start = 0;
        for (size_t end; (end = body.find('\n', start)) != std::string::npos; start = end + 1) {
            if (end > start)
                replies_.push_back(
                    {EtcdReply::Kind::message, 200, body.substr(start, end - start)});
            if (!got_line_) {
                got_line_ = true;
                deadline_ = request_.idle_ms > 0 ? now + request_.idle_ms
                                                 : now + (int64_t(1) << 40);  // never, in effect
            }
        }
        body.erase(0, start);
        if (reader_.complete())
            fail(endpoint_.host + " ended the stream of " + request_.path);
        return;
    }
    if (!reader_.complete())
        return;
    replies_.push_back({EtcdReply::Kind::response, reader_.status(), std::move(reader_.body())});
    if (!reader_.keep_alive()) {
        close();
        return;
    }
    phase_ = Phase::idle;
    reader_.next();
}

} // namespace sluice::ctrl
