#include "ctrl/http_server.h"

#include "ctrl/tls.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>

namespace sluice::ctrl {

namespace {

constexpr uint64_t kListenerId = 0;     // epoll data of the listening socket
constexpr int kEventsPerWait = 64;
constexpr int kAcceptsPerWake = 64;
constexpr int64_t kAcceptPauseMs = 100;  // after EMFILE, before accepting again
constexpr size_t kReadChunk = 16384;
// Reads per wake-up and connection: one fast client cannot hold the loop
// while others wait.
constexpr int kReadsPerWake = 4;
// A client that pipelines requests without reading the answers stops being
// read once this much output waits for it.
constexpr size_t kOutputHighWater = 256 * 1024;
constexpr size_t kTlsRecordPayload = 16384;
// After an answer that closes, the rest of what the client sent is read and
// dropped this long (at most): closing with unread data would reset the
// connection, and the reset can destroy the answer before the client reads it.
constexpr int64_t kLingerMs = 2000;
// Connections over max_clients being told 503; beyond this they are closed
// without an answer, so a flood cannot grow the table.
constexpr unsigned kMaxRejecting = 16;

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::string peer_text(const sockaddr_storage &address) {
    char host[INET6_ADDRSTRLEN] = "?";
    if (address.ss_family == AF_INET) {
        const auto &v4 = reinterpret_cast<const sockaddr_in &>(address);
        inet_ntop(AF_INET, &v4.sin_addr, host, sizeof host);
        return std::string(host) + ":" + std::to_string(ntohs(v4.sin_port));
    }
    const auto &v6 = reinterpret_cast<const sockaddr_in6 &>(address);
    inet_ntop(AF_INET6, &v6.sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(v6.sin6_port));
}

// ADDRESS:PORT or [V6]:PORT, numeric only: a management address that
// depended on name resolution at start-up would be one more way to fail.
bool parse_listen_address(const std::string &text, sockaddr_storage &address,
                          socklen_t &length, std::string &error) {
    error = "invalid listen address '" + text + "': expected ADDRESS:PORT or [V6]:PORT";
    std::string host, port;
    const bool bracketed = !text.empty() && text.front() == '[';
    if (bracketed) {
        const size_t close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return false;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const size_t colon = text.rfind(':');
        if (colon == std::string::npos)
            return false;
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string::npos)
            return false;
    }
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoul(port) > 65535)
        return false;
    addrinfo hints{};
    hints.ai_family = bracketed ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    addrinfo *found = nullptr;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || !found)
        return false;
    std::memcpy(&address, found->ai_addr, found->ai_addrlen);
    length = found->ai_addrlen;
    freeaddrinfo(found);
    error.clear();
    return true;
}

} // namespace

struct HttpServer::Connection {
    uint64_t id = 0;
    int fd = -1;
    SSL *tls = nullptr;
    std::string peer, client_subject;
    uint32_t events = 0;  // what epoll watches for

    bool over_capacity = false;  // only told 503
    bool handshaking = false;
    bool handshake_wants_write = false, read_wants_write = false, write_wants_read = false;
    size_t tls_write_retry = 0;  // SSL_write must be repeated with this length
    bool tls_buffered = false;   // decrypted input waits in OpenSSL: no epoll event will come
    bool waiting_for_output_room = false;  // complete requests may wait in the input
    bool close_after_write = false;
    bool peer_closed = false;
    bool lingering = false;

    int64_t last_activity = 0;
    int64_t request_started = 0;  // first byte of the request being received; 0 = none
    int64_t linger_until = 0;

    std::string in, out;
    size_t in_pos = 0, out_pos = 0;  // consumed from in, written from out

    HttpRequestParser parser;  // of the request being received, from input()

    ~Connection() {
        if (tls)
            SSL_free(tls);
        if (fd >= 0)
            ::close(fd);
    }
    size_t output_waiting() const { return out.size() - out_pos; }
    std::string_view input() const { return std::string_view(in).substr(in_pos); }
    bool can_read() const {
        return !close_after_write && !peer_closed && !lingering && output_waiting() < kOutputHighWater;
    }
};

HttpServer::HttpServer() = default;

HttpServer::~HttpServer() { stop(); }

bool HttpServer::start(const HttpServerSettings &settings, HttpHandler handler, std::string &error) {
    stop();
    settings_ = settings;
    handler_ = std::move(handler);
    const bool tls = !settings.tls_certificate.empty() || !settings.tls_private_key.empty() ||
                     !settings.tls_client_ca.empty();
    if (tls && !(tls_ = tls_server_context(settings.tls_certificate, settings.tls_private_key,
                              settings.tls_client_ca, error)))
        return false;

    sockaddr_storage address{};
    socklen_t length = 0;
    if (!parse_listen_address(settings.listen, address, length, error)) {
        stop();
        return false;
    }
    const auto cannot = [&] {
        error = "cannot listen on " + settings.listen + ": " + std::strerror(errno);
        stop();
        return false;
    };
    listener_ = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener_ < 0)
        return cannot();
    const int on = 1;
    // A restarted sluiced must not wait out the old connections' TIME_WAIT.
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (address.ss_family == AF_INET6)
        ::setsockopt(listener_, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (::bind(listener_, reinterpret_cast<const sockaddr *>(&address), length) < 0)
        return cannot();
    if (::listen(listener_, SOMAXCONN) < 0)
        return cannot();
    sockaddr_storage bound{};
    socklen_t bound_length = sizeof bound;
    ::getsockname(listener_, reinterpret_cast<sockaddr *>(&bound), &bound_length);
    port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in &>(bound).sin_port
                                             : reinterpret_cast<sockaddr_in6 &>(bound).sin6_port);

    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0)
        return cannot();
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kListenerId;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, listener_, &event) < 0)
        return cannot();
    return true;
}

void HttpServer::stop() {
    connections_.clear();
    clients_ = rejecting_ = 0;
    if (listener_ >= 0)
        ::close(listener_);
    if (epoll_ >= 0)
        ::close(epoll_);
    listener_ = epoll_ = -1;
    port_ = 0;
    accept_paused_until_ = 0;
    if (tls_)
        SSL_CTX_free(tls_);
    tls_ = nullptr;
}

int HttpServer::timeout_ms() const {
    if (epoll_ < 0)
        return -1;
    int64_t nearest = accept_paused_until_ ? accept_paused_until_ : INT64_MAX;
    for (const auto &[id, connection] : connections_) {
        if (connection->tls_buffered)
            return 0;
        nearest = std::min(nearest, deadline(*connection));
    }
    if (nearest == INT64_MAX)
        return -1;
    return int(std::clamp<int64_t>(nearest - now_ms(), 0, INT_MAX));
}

int64_t HttpServer::deadline(const Connection &connection) const {
    if (connection.lingering)
        return connection.linger_until;
    int64_t at = connection.last_activity + settings_.idle_timeout_ms;
    if (connection.request_started)
        at = std::min(at, connection.request_started + int64_t(settings_.idle_timeout_ms));
    return at;
}

void HttpServer::service() noexcept {
    try {
        service_ready(now_ms());
    } catch (...) {
        // Out of memory outside a connection's work: what is left stays
        // ready, and the next call takes it up.
    }
}

void HttpServer::service_ready(int64_t now) {
    if (epoll_ < 0)
        return;
    if (accept_paused_until_ && now >= accept_paused_until_) {
        accept_paused_until_ = 0;
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.u64 = kListenerId;
        ::epoll_ctl(epoll_, EPOLL_CTL_MOD, listener_, &event);
    }
    epoll_event events[kEventsPerWait];
    const int ready = ::epoll_wait(epoll_, events, kEventsPerWait, 0);
    for (int i = 0; i < ready; ++i) {
        const uint64_t id = events[i].data.u64;
        if (id == kListenerId) {
            accept_clients(now);
            continue;
        }
        const auto found = connections_.find(id);
        if (found == connections_.end())
            continue;  // closed earlier in this batch
        // HUP: both directions are shut, nobody is left to answer.
        if (events[i].events & (EPOLLERR | EPOLLHUP))
            close_connection(id);
        else
            drive_safely(*found->second, now);
    }
    std::vector<uint64_t> buffered;
    for (const auto &[id, connection] : connections_)
        if (connection->tls_buffered)
            buffered.push_back(id);
    for (const uint64_t id : buffered)
        if (const auto found = connections_.find(id); found != connections_.end())
            drive_safely(*found->second, now);
    expire(now);
}

void HttpServer::accept_clients(int64_t now) {
    for (int accepted = 0; accepted < kAcceptsPerWake; ++accepted) {
        sockaddr_storage address{};
        socklen_t length = sizeof address;
        const int fd = ::accept4(listener_, reinterpret_cast<sockaddr *>(&address), &length,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // The listener stays readable while the backlog waits: stop
                // watching it for a while instead of spinning on it.
                epoll_event event{};
                event.data.u64 = kListenerId;
                ::epoll_ctl(epoll_, EPOLL_CTL_MOD, listener_, &event);
                accept_paused_until_ = now + kAcceptPauseMs;
            }
            return;
        }
        const bool over_capacity = clients_ >= settings_.max_clients;
        if (over_capacity && rejecting_ >= kMaxRejecting) {
            ::close(fd);
            continue;
        }
        std::unique_ptr<Connection> connection;
        try {
            connection = std::make_unique<Connection>();
        } catch (...) {
            ::close(fd);
            throw;
        }
        connection->id = next_id_++;
        connection->fd = fd;
        connection->peer = peer_text(address);
        connection->over_capacity = over_capacity;
        connection->last_activity = now;
        connection->parser = HttpRequestParser({settings_.max_header_bytes, settings_.max_body_bytes});
        const int on = 1;
        // Answers are written whole; waiting to coalesce them only adds latency.
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        if (tls_) {
            BIO *bio = BIO_new(socket_without_sigpipe());
            connection->tls = SSL_new(tls_);
            if (!bio || !connection->tls) {
                BIO_free(bio);
                continue;  // the connection's destructor closes fd
            }
            BIO_set_fd(bio, fd, BIO_NOCLOSE);
            SSL_set_bio(connection->tls, bio, bio);
            SSL_set_accept_state(connection->tls);
            connection->handshaking = true;
        }
        epoll_event event{};
        event.events = connection->events = EPOLLIN;
        event.data.u64 = connection->id;
        if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) < 0)
            continue;
        Connection &added = *connections_.emplace(connection->id, std::move(connection)).first->second;
        ++(over_capacity ? rejecting_ : clients_);
        drive_safely(added, now);
    }
}

void HttpServer::close_connection(uint64_t id) {
    const auto found = connections_.find(id);
    if (found == connections_.end())
        return;
    --(found->second->over_capacity ? rejecting_ : clients_);
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, found->second->fd, nullptr);
    connections_.erase(found);
}

void HttpServer::drive_safely(Connection &connection, int64_t now) {
    bool keep = false;
    try {
        keep = drive(connection, now);
    } catch (...) {
        // Out of memory, most likely: this connection goes, the others stay.
    }
    if (!keep)
        close_connection(connection.id);
}

// Does everything the connection is ready for; false when it should close.
bool HttpServer::drive(Connection &connection, int64_t now) {
    if (connection.lingering)
        return discard_input(connection);
    if (connection.handshaking) {
        ERR_clear_error();
        const int result = SSL_accept(connection.tls);
        if (result != 1) {
            const int reason = SSL_get_error(connection.tls, result);
            if (reason != SSL_ERROR_WANT_READ && reason != SSL_ERROR_WANT_WRITE)
                return false;  // not TLS, or a certificate refused: nothing to answer with
            connection.handshake_wants_write = reason == SSL_ERROR_WANT_WRITE;
            update_interest(connection);
            return true;
        }
        connection.handshaking = false;
        connection.last_activity = now;
        X509 *certificate = SSL_get0_peer_certificate(connection.tls);
        if (certificate && SSL_get_verify_result(connection.tls) == X509_V_OK)
            connection.client_subject = certificate_subject(certificate);
    }
    if (connection.over_capacity && !connection.close_after_write)
        fail(connection, 503, "too many clients");

    bool read_budget_spent = false;
    for (int reads = 0;;) {
        process_input(connection, now);
        if (!flush(connection, now))
            return false;
        // The flush made room: answer the requests already read before reading more.
        if (connection.waiting_for_output_room && connection.output_waiting() < kOutputHighWater)
            continue;
        if (!connection.can_read())
            break;
        if (reads++ == kReadsPerWake) {
            read_budget_spent = true;
            break;
        }
        const ReadResult result = read_some(connection);
        if (result == ReadResult::failed)
            return false;
        if (result == ReadResult::blocked)
            break;
        connection.last_activity = now;
        if (result == ReadResult::end)
            connection.peer_closed = true;
    }
    // A request cut short by the client's end is dropped with the connection.
    if (connection.peer_closed)
        connection.close_after_write = true;
    if (connection.close_after_write && connection.output_waiting() == 0) {
        if (connection.peer_closed)
            return false;
        begin_linger(connection, now);
    }
    // Only when reading stopped early: after a WANT_READ, what OpenSSL holds
    // is part of a record, and the rest will wake epoll.
    connection.tls_buffered = read_budget_spent && connection.tls && connection.can_read() &&
                              SSL_has_pending(connection.tls);
    update_interest(connection);
    return true;
}

HttpServer::ReadResult HttpServer::read_some(Connection &connection) {
    char buffer[kReadChunk];
    if (connection.tls) {
        ERR_clear_error();
        const int result = SSL_read(connection.tls, buffer, sizeof buffer);
        connection.read_wants_write = false;
        if (result > 0) {
            connection.in.append(buffer, size_t(result));
            return ReadResult::data;
        }
        switch (SSL_get_error(connection.tls, result)) {
        case SSL_ERROR_WANT_READ:
            return ReadResult::blocked;
        case SSL_ERROR_WANT_WRITE:
            connection.read_wants_write = true;
            return ReadResult::blocked;
        case SSL_ERROR_ZERO_RETURN:
            return ReadResult::end;  // close_notify: the client sends nothing more
        default:
            return ReadResult::failed;  // a broken record or a TCP end without close_notify
        }
    }
    const ssize_t received = ::recv(connection.fd, buffer, sizeof buffer, 0);
    if (received > 0) {
        connection.in.append(buffer, size_t(received));
        return ReadResult::data;
    }
    if (received == 0)
        return ReadResult::end;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? ReadResult::blocked
                                                                      : ReadResult::failed;
}

// Writes what it can of the output; false when the connection is broken.
bool HttpServer::flush(Connection &connection, int64_t now) {
    while (connection.output_waiting() > 0) {
        const char *data = connection.out.data() + connection.out_pos;
        if (connection.tls) {
            // OpenSSL wants a write that could not finish repeated with the same length.
            const int length = int(connection.tls_write_retry
                                       ? connection.tls_write_retry
                                       : std::min(connection.output_waiting(), kTlsRecordPayload));
            ERR_clear_error();
            const int written = SSL_write(connection.tls, data, length);
            if (written <= 0) {
                const int reason = SSL_get_error(connection.tls, written);
                if (reason != SSL_ERROR_WANT_WRITE && reason != SSL_ERROR_WANT_READ)
                    return false;
                connection.tls_write_retry = size_t(length);
                connection.write_wants_read = reason == SSL_ERROR_WANT_READ;
                break;
            }
            connection.tls_write_retry = 0;
            connection.write_wants_read = false;
            connection.out_pos += size_t(written);
        } else {
            const ssize_t sent = ::send(connection.fd, data, connection.output_waiting(), MSG_NOSIGNAL);
            if (sent < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                return false;
            }
            connection.out_pos += size_t(sent);
        }
        connection.last_activity = now;
    }
    if (connection.out_pos == connection.out.size()) {
        connection.out.clear();
        connection.out_pos = 0;
    } else if (connection.out_pos > kOutputHighWater) {
        connection.out.erase(0, connection.out_pos);
        connection.out_pos = 0;
    }
    return true;
}

// Shuts the sending side and reads until the client closes (or kLingerMs).
void HttpServer::begin_linger(Connection &connection, int64_t now) {
    if (connection.tls) {
        ERR_clear_error();
        SSL_shutdown(connection.tls);  // close_notify, best effort
    }
    ::shutdown(connection.fd, SHUT_WR);
    connection.lingering = true;
    connection.linger_until = now + std::min<int64_t>(kLingerMs, settings_.idle_timeout_ms);
    connection.in.clear();
    connection.in_pos = 0;
}

bool HttpServer::discard_input(Connection &connection) {
    char buffer[kReadChunk];
    for (int reads = 0; reads < kReadsPerWake; ++reads) {
        const ssize_t received = ::recv(connection.fd, buffer, sizeof buffer, 0);
        if (received == 0)
            return false;
        if (received < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }
    return true;
}

void HttpServer::update_interest(Connection &connection) {
    uint32_t wanted = 0;
    if (connection.lingering)
        wanted = EPOLLIN;
    else if (connection.handshaking)
        wanted = connection.handshake_wants_write ? EPOLLOUT : EPOLLIN;
    else {
        if (connection.can_read() || connection.write_wants_read)
            wanted |= EPOLLIN;
        if ((connection.output_waiting() > 0 && !connection.write_wants_read) ||
            connection.read_wants_write)
            wanted |= EPOLLOUT;
    }
    if (wanted == connection.events)
        return;
    epoll_event event{};
    event.events = wanted;
    event.data.u64 = connection.id;
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, connection.fd, &event);
    connection.events = wanted;
}

void HttpServer::expire(int64_t now) {
    std::vector<uint64_t> expired;
    for (const auto &[id, connection] : connections_)
        if (now >= deadline(*connection))
            expired.push_back(id);
    for (const uint64_t id : expired) {
        Connection &connection = *connections_.at(id);
        // RFC 9110 15.5.9: tell a client whose request never finished; an
        // idle keep-alive connection is closed without a word.
        const bool answer = !connection.lingering && !connection.handshaking &&
                            !connection.close_after_write && connection.parser.receiving();
        if (!answer) {
            close_connection(id);
            continue;
        }
        fail(connection, 408, "the request did not arrive in time");
        connection.request_started = 0;
        connection.last_activity = now;
        drive_safely(connection, now);
    }
}

// Takes every complete request from the input, in order, and answers it.
void HttpServer::process_input(Connection &connection, int64_t now) {
    connection.waiting_for_output_room = false;
    while (!connection.close_after_write) {
        if (connection.output_waiting() >= kOutputHighWater) {
            connection.waiting_for_output_room = true;
            break;
        }
        const std::string_view pending = connection.input();
        if (!pending.empty() && !connection.request_started)
            connection.request_started = now;
        const HttpParseStep step = connection.parser.parse(pending);
        connection.in_pos += step.consumed;
        if (step.event == HttpParseEvent::need_more)
            break;
        if (step.event == HttpParseEvent::error) {
            const HttpParseError &error = connection.parser.error();
            fail(connection, error.status, error.message);
            break;
        }
        if (step.event == HttpParseEvent::head) {
            // RFC 9110 10.1.1: a client that already sends the body needs no 100.
            if (connection.parser.continue_expected() && connection.input().empty())
                connection.out += kHttpContinue;
            continue;
        }
        dispatch(connection);
        connection.request_started = 0;
    }
    if (connection.in_pos == connection.in.size()) {
        connection.in.clear();
        connection.in_pos = 0;
    } else if (connection.in_pos >= kReadChunk) {
        connection.in.erase(0, connection.in_pos);
        connection.in_pos = 0;
    }
}

void HttpServer::dispatch(Connection &connection) {
    HttpRequest &request = connection.parser.request();
    request.peer = connection.peer;
    request.client_subject = connection.client_subject;
    HttpResponse response;
    try {
        response = handler_(request);
    } catch (...) {
        response = http_error_response(500, "internal error while handling the request");
    }
    const HttpFraming &framing = connection.parser.framing();
    queue_response(connection, response,
                   {framing.keep_alive, framing.minor_version, request.method == "HEAD"});
    if (!framing.keep_alive)
        connection.close_after_write = true;
    connection.parser.reset();  // the request and its body are not kept while idle
}

// Refuses the request being received: an error answer, then close.
void HttpServer::fail(Connection &connection, int status, std::string_view message) {
    queue_response(connection, http_error_response(status, message), {});
    connection.close_after_write = true;
    connection.in.clear();
    connection.in_pos = 0;
}

void HttpServer::queue_response(Connection &connection, const HttpResponse &response,
                                const HttpAnswerFraming &framing) {
    append_http_response(connection.out, response, framing, http_date(std::time(nullptr)));
}

} // namespace sluice::ctrl
