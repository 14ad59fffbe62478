// The management API's HTTP server, over real loopback sockets: requests
// reach the handler whole and in order, keep-alive and pipelining hold, every
// malformed or oversized request gets its error and a close, slow, vanishing
// and numerous clients never stall the others, TLS and mutual TLS work with
// OpenSSL clients and with curl, and start() names what it could not use.
// The server runs single-threaded on its own thread, polled the way sluiced's
// control loop polls it.
#include "ctrl/http_server.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sluice::ctrl {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
namespace fs = std::filesystem;

// "GET /a b x=1\n" then the request's details, then the body.
HttpResponse echo(const HttpRequest &request) {
    if (request.path == "/throw")
        throw std::runtime_error("handler failure");
    HttpResponse response;
    response.content_type = "text/plain";
    if (request.path == "/big") {
        // "/big?N": N bytes of a pattern the client can check.
        const size_t size = std::stoul(request.query);
        response.body.resize(size);
        for (size_t i = 0; i < size; ++i)
            response.body[i] = char('a' + i % 26);
        return response;
    }
    const std::string *expect = request.header("Expect");
    response.headers.emplace_back("X-Peer", request.peer);
    response.body = request.method + " " + request.path + " " + request.query + "\n" +
                    "subject=" + request.client_subject + "\n" +
                    "expect=" + (expect ? *expect : "") + "\n" + "body=" + request.body;
    return response;
}

HttpServerSettings loopback() {
    HttpServerSettings settings;
    settings.listen = "127.0.0.1:0";
    return settings;
}

// A server polled on its own thread, as sluiced's control loop will poll it.
class RunningServer {
public:
    explicit RunningServer(const HttpServerSettings &settings, HttpHandler handler = echo) {
        started_ = server_.start(settings, std::move(handler), error_);
        if (started_)
            thread_ = std::thread([this] { run(); });
    }
    ~RunningServer() {
        stopping_ = true;
        if (thread_.joinable())
            thread_.join();
        server_.stop();
    }
    bool started() const { return started_; }
    const std::string &error() const { return error_; }
    uint16_t port() const { return server_.port(); }

private:
    void run() {
        // The clients block SIGPIPE on the test's thread; the server's thread
        // must not, so that a server write raising it fails the test.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_UNBLOCK, &pipe, nullptr);
        while (!stopping_) {
            pollfd ready{server_.fd(), POLLIN, 0};
            const int timeout = server_.timeout_ms();
            // Bounded, so that the destructor's stop is seen promptly.
            ::poll(&ready, 1, timeout < 0 || timeout > 10 ? 10 : timeout);
            server_.service();
        }
    }

    HttpServer server_;
    bool started_ = false;
    std::string error_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;

    std::string header(const std::string &name) const {
        const auto found = headers.find(name);
        return found == headers.end() ? "<none>" : found->second;
    }
};

struct TlsFiles {
    std::string ca;           // trusted by the client, and the CA of client certificates
    std::string certificate;  // a client certificate, with key, when any
    std::string key;
};

// A blocking client socket (plain or TLS) with timeouts, so a server that
// never answers fails the test instead of hanging it.
class Client {
public:
    explicit Client(uint16_t port, const char *address = "127.0.0.1",
                    const std::optional<TlsFiles> &tls = std::nullopt) {
        // OpenSSL's client writes can raise SIGPIPE when the server has
        // refused us; that is the test's business, not a crash.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        const bool v6 = std::string(address).find(':') != std::string::npos;
        fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        timeval timeout{3, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        const int on = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        sockaddr_storage server{};
        socklen_t length;
        if (v6) {
            auto &a = reinterpret_cast<sockaddr_in6 &>(server);
            a.sin6_family = AF_INET6;
            a.sin6_port = htons(port);
            inet_pton(AF_INET6, address, &a.sin6_addr);
            length = sizeof a;
        } else {
            auto &a = reinterpret_cast<sockaddr_in &>(server);
            a.sin_family = AF_INET;
            a.sin_port = htons(port);
            inet_pton(AF_INET, address, &a.sin_addr);
            length = sizeof a;
        }
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr *>(&server), length) == 0;
        if (connected_ && tls)
            connected_ = handshake(*tls);
    }
    ~Client() {
        if (tls_)
            SSL_free(tls_);
        if (context_)
            SSL_CTX_free(context_);
        if (fd_ >= 0)
            ::close(fd_);
    }
    bool connected() const { return connected_; }

    bool send(std::string_view data) {
        while (!data.empty()) {
            const ssize_t sent = tls_ ? SSL_write(tls_, data.data(), int(data.size()))
                                      : ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (sent <= 0)
                return false;
            data.remove_prefix(size_t(sent));
        }
        return true;
    }

    // The next response, or nullopt when the connection ended first. A HEAD
    // response's length describes a body that is not sent.
    std::optional<Response> response(bool head = false) {
        size_t head_end;
        while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos)
            if (!read_more())
                return std::nullopt;
        Response response;
        std::string_view lines(buffer_.data(), head_end + 2);
        const size_t line_end = lines.find("\r\n");
        const std::string_view status_line = lines.substr(0, line_end);
        if (status_line.substr(0, 9) != "HTTP/1.1 ")
            return std::nullopt;
        response.status = std::stoi(std::string(status_line.substr(9, 3)));
        lines.remove_prefix(line_end + 2);
        while (!lines.empty()) {
            const size_t end = lines.find("\r\n");
            const std::string_view line = lines.substr(0, end);
            const size_t colon = line.find(':');
            std::string name(line.substr(0, colon));
            for (char &c : name)
                c = char(std::tolower(static_cast<unsigned char>(c)));
            response.headers[name] = std::string(line.substr(colon + 2));
            lines.remove_prefix(end + 2);
        }
        buffer_.erase(0, head_end + 4);
        const auto length = response.headers.find("content-length");
        const size_t body_size =
            head || length == response.headers.end() ? 0 : std::stoul(length->second);
        while (buffer_.size() < body_size)
            if (!read_more())
                return std::nullopt;
        response.body = buffer_.substr(0, body_size);
        buffer_.erase(0, body_size);
        return response;
    }

    std::optional<Response> request(const std::string &raw, bool head = false) {
        if (!send(raw))
            return std::nullopt;
        return response(head);
    }

    // True when the server ends the connection (FIN or reset) with nothing
    // more to read, within the read timeout.
    bool closed_by_server() {
        return buffer_.empty() && !read_more() && buffer_.empty();
    }

    // Leaves without reading or closing politely: a reset, not a FIN.
    void reset() {
        const linger abortive{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
        ::close(fd_);
        fd_ = -1;
    }

    void set_read_timeout(std::chrono::milliseconds ms) {
        timeval timeout{long(ms.count() / 1000), long(ms.count() % 1000) * 1000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    }

private:
    bool handshake(const TlsFiles &files) {
        context_ = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(context_, SSL_VERIFY_PEER, nullptr);
        if (SSL_CTX_load_verify_locations(context_, files.ca.c_str(), nullptr) != 1)
            return false;
        if (!files.certificate.empty() &&
            (SSL_CTX_use_certificate_file(context_, files.certificate.c_str(), SSL_FILETYPE_PEM) != 1 ||
             SSL_CTX_use_PrivateKey_file(context_, files.key.c_str(), SSL_FILETYPE_PEM) != 1))
            return false;
        tls_ = SSL_new(context_);
        SSL_set_fd(tls_, fd_);
        SSL_set1_host(tls_, "127.0.0.1");
        return SSL_connect(tls_) == 1;
    }

    bool read_more() {
        char chunk[65536];
        const ssize_t received = tls_ ? SSL_read(tls_, chunk, sizeof chunk)
                                      : ::recv(fd_, chunk, sizeof chunk, 0);
        if (received <= 0)
            return false;
        buffer_.append(chunk, size_t(received));
        return true;
    }

    int fd_ = -1;
    bool connected_ = false;
    SSL_CTX *context_ = nullptr;
    SSL *tls_ = nullptr;
    std::string buffer_;
};

std::string get(const std::string &target, const std::string &extra = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: sluice\r\n" + extra + "\r\n";
}

std::string post(const std::string &target, const std::string &body, const std::string &extra = "") {
    return "POST " + target + " HTTP/1.1\r\nHost: sluice\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

// The body's first line: "METHOD PATH QUERY".
std::string first_line(const Response &response) {
    return response.body.substr(0, response.body.find('\n'));
}

std::string body_of_echo(const Response &response) {
    const size_t at = response.body.find("body=");
    return at == std::string::npos ? "<none>" : response.body.substr(at + 5);
}

// Every error answer: JSON naming no field, and a close.
void expect_error(const std::optional<Response> &response, int status) {
    ASSERT_TRUE(response) << "no response, expected " << status;
    EXPECT_EQ(response->status, status) << response->body;
    EXPECT_EQ(response->header("content-type"), "application/json");
    EXPECT_EQ(response->header("connection"), "close");
    EXPECT_EQ(response->body.rfind("{\"error\": \"", 0), 0u) << response->body;
    EXPECT_NE(response->body.find("\", \"field\": null}"), std::string::npos) << response->body;
}

TEST(HttpServer, GetAndPostReachTheHandlerWhole) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port());
    ASSERT_TRUE(client.connected());

    auto response = client.request(get("/api/v1/a%20b?x=1&y=%20"));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(first_line(*response), "GET /api/v1/a b x=1&y=%20");
    EXPECT_EQ(response->header("content-type"), "text/plain");
    EXPECT_EQ(response->header("content-length"), std::to_string(response->body.size()));
    EXPECT_EQ(response->header("connection"), "<none>");
    EXPECT_EQ(response->header("x-peer").rfind("127.0.0.1:", 0), 0u);
    EXPECT_NE(response->header("date"), "<none>");

    const std::string body = "{\"weight\": 3}\r\n\r\nGET / HTTP/1.1\r\n";
    response = client.request(post("/api/v1/services", body));
    ASSERT_TRUE(response);
    EXPECT_EQ(first_line(*response), "POST /api/v1/services ");
    EXPECT_EQ(body_of_echo(*response), body);

    // RFC 9112 3.2.2: the absolute form names the same resource.
    response = client.request(get("http://sluice:8480/metrics?z"));
    ASSERT_TRUE(response);
    EXPECT_EQ(first_line(*response), "GET /metrics z");
}

TEST(HttpServer, KeepAliveServesManyRequestsThenHonoursClose) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port());
    for (int i = 0; i < 5; ++i) {
        const auto response = client.request(post("/n", std::to_string(i)));
        ASSERT_TRUE(response) << i;
        EXPECT_EQ(body_of_echo(*response), std::to_string(i));
    }
    const auto last = client.request(get("/last", "Connection: close\r\n"));
    ASSERT_TRUE(last);
    EXPECT_EQ(last->status, 200);
    EXPECT_EQ(last->header("connection"), "close");
    EXPECT_TRUE(client.closed_by_server());
}

TEST(HttpServer, Http10ClosesUnlessAskedToKeepAlive) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    {
        Client client(server.port());
        const auto response = client.request("GET /old HTTP/1.0\r\n\r\n");
        ASSERT_TRUE(response);
        EXPECT_EQ(response->status, 200);
        EXPECT_EQ(response->header("connection"), "close");
        EXPECT_TRUE(client.closed_by_server());
    }
    Client client(server.port());
    for (int i = 0; i < 2; ++i) {
        const auto response = client.request("GET /old HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        ASSERT_TRUE(response);
        EXPECT_EQ(response->header("connection"), "keep-alive");
    }
}

TEST(HttpServer, HeadGetsTheLengthWithoutTheBody) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port());
    const auto head = client.request("HEAD /big?1000 HTTP/1.1\r\nHost: x\r\n\r\n", true);
    ASSERT_TRUE(head);
    EXPECT_EQ(head->header("content-length"), "1000");
    // Had a body followed, this would read it as the next response.
    const auto next = client.request(get("/after"));
    ASSERT_TRUE(next);
    EXPECT_EQ(first_line(*next), "GET /after ");
}

TEST(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port());
    std::string burst = "\r\n";  // RFC 9112 2.2: a stray blank line is ignored
    for (int i = 0; i < 20; ++i)
        burst += i % 2 ? post("/p", "body " + std::to_string(i)) : get("/g?" + std::to_string(i));
    ASSERT_TRUE(client.send(burst));
    for (int i = 0; i < 20; ++i) {
        const auto response = client.response();
        ASSERT_TRUE(response) << i;
        if (i % 2)
            EXPECT_EQ(body_of_echo(*response), "body " + std::to_string(i));
        else
            EXPECT_EQ(first_line(*response), "GET /g " + std::to_string(i));
    }
}

TEST(HttpServer, PipelinedAnswersLargerThanTheSocketAreAllDelivered) {
    // Far more output than the socket buffers hold: the server must stop
    // reading while it waits for the client, then resume.
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port());
    std::string burst;
    for (int i = 0; i < 100; ++i)
        burst += get("/big?" + std::to_string(60000 + i));
    ASSERT_TRUE(client.send(burst));
    std::this_thread::sleep_for(50ms);
    for (int i = 0; i < 100; ++i) {
        const auto response = client.response();
        ASSERT_TRUE(response) << i;
        ASSERT_EQ(response->body.size(), size_t(60000 + i));
        EXPECT_EQ(response->body.back(), char('a' + (60000 + i - 1) % 26));
    }
}

TEST(HttpServer, ExpectContinueGetsA100ThenTheAnswer) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port());
    const std::string body(2000, 'x');
    ASSERT_TRUE(client.send("PUT /s HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2000\r\n\r\n"));
    const auto interim = client.response();
    ASSERT_TRUE(interim);
    EXPECT_EQ(interim->status, 100);
    ASSERT_TRUE(client.send(body));
    const auto final_response = client.response();
    ASSERT_TRUE(final_response);
    EXPECT_EQ(final_response->status, 200);
    EXPECT_EQ(body_of_echo(*final_response), body);
}

TEST(HttpServer, ExpectContinueWithATooLargeBodyGets413AtOnce) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port());
    expect_error(client.request("POST /s HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                "Content-Length: 1000000\r\n\r\n"),
                 413);
    EXPECT_TRUE(client.closed_by_server());
}

TEST(HttpServer, ChunkedBodiesAreDecoded) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port());
    const auto response = client.request(
        "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6;name=value\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(body_of_echo(*response), "hello world");
    // The connection is still in step.
    const auto next = client.request(get("/next"));
    ASSERT_TRUE(next);
    EXPECT_EQ(first_line(*next), "GET /next ");
}

TEST(HttpServer, TooLargeBodiesGet413EvenWhenAlreadySent) {
    HttpServerSettings settings = loopback();
    settings.max_body_bytes = 1000;
    RunningServer server(settings);
    ASSERT_TRUE(server.started()) << server.error();
    {
        Client client(server.port());
        // The whole body is sent: the answer must survive the unread bytes.
        expect_error(client.request(post("/s", std::string(300000, 'x'))), 413);
        EXPECT_TRUE(client.closed_by_server());
    }
    {
        Client client(server.port());
        const std::string chunk = "258\r\n" + std::string(600, 'y') + "\r\n";
        expect_error(client.request("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                                    chunk + chunk),
                     413);
    }
    Client client(server.port());
    const auto response = client.request(post("/s", std::string(1000, 'z')));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
}

TEST(HttpServer, WhatFollowsAnAnswerThatClosesIsReadAndDropped) {
    // Closing a socket with unread input resets the connection, and over a
    // real network the reset can overtake the answer: the server reads and
    // drops what the client still sends for a while, then closes.
    HttpServerSettings settings = loopback();
    settings.max_body_bytes = 1000;
    RunningServer server(settings);
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port());
    expect_error(client.request("POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n"), 413);
    EXPECT_TRUE(client.send(std::string(300000, 'x')));
    std::this_thread::sleep_for(50ms);
    // Had the server closed at once, its reset would have arrived by now.
    EXPECT_TRUE(client.send("more"));
    EXPECT_TRUE(client.closed_by_server());
}

struct BadRequest {
    const char *description;
    std::string raw;
    int status;
};

TEST(HttpServer, MalformedRequestsGetTheirErrorAndAClose) {
    HttpServerSettings settings = loopback();
    settings.max_header_bytes = 2048;
    RunningServer server(settings);
    ASSERT_TRUE(server.started()) << server.error();
    const std::vector<BadRequest> cases = {
        {"not HTTP", "HELLO\r\n\r\n", 400},
        {"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400},
        {"target not a path", "GET api HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"bad percent-encoding", "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"encoded NUL", "GET /a%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"header without colon", "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400},
        {"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
        {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", 400},
        {"bare LF", "GET / HTTP/1.1\nHost: x\r\n\r\n", 400},
        {"control character", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"s, 400},
        {"no Host on 1.1", "GET / HTTP/1.1\r\n\r\n", 400},
        {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"bad Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12a\r\n\r\n", 400},
        {"negative Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
        {"conflicting lengths",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
        {"length and chunked",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"chunk without CRLF",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400},
        {"unknown coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
        {"chunked not last",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501},
        {"unknown expectation", "POST / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", 417},
        {"HTTP/2", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
        {"HTTP/0.9 spelled out", "GET / HTTP/0.9\r\n\r\n", 505},
        {"body too large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n", 413},
        {"headers too large", get("/", "X-Big: " + std::string(3000, 'h') + "\r\n"), 431},
        {"header section never ends", "GET / HTTP/1.1\r\nX-Big: " + std::string(3000, 'h'), 431},
        {"request line too long", "GET /" + std::string(3000, 'u'), 414},
    };
    for (const BadRequest &bad : cases) {
        SCOPED_TRACE(bad.description);
        Client client(server.port());
        ASSERT_TRUE(client.connected());
        expect_error(client.request(bad.raw), bad.status);
        EXPECT_TRUE(client.closed_by_server());
    }
}

TEST(HttpServer, AThrowingHandlerGets500AndTheConnectionGoesOn) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port());
    const auto failed = client.request(get("/throw"));
    ASSERT_TRUE(failed);
    EXPECT_EQ(failed->status, 500);
    EXPECT_EQ(failed->body, "{\"error\": \"internal error while handling the request\", \"field\": null}");
    const auto next = client.request(get("/fine"));
    ASSERT_TRUE(next);
    EXPECT_EQ(next->status, 200);
}

TEST(HttpServer, HandlerResponsesAreCheckedAndFramedByTheServer) {
    RunningServer server(loopback(), [](const HttpRequest &request) -> HttpResponse {
        if (request.path == "/204")
            return {204, "application/json", "ignored", {{"Content-Length", "99"}}};
        if (request.path == "/405")
            return {405, "", "no", {{"Allow", "GET, PUT"}, {"Connection", "close"}}};
        return {200, "text/plain", "x", {{"X-A", "1\r\nSet-Cookie: evil"}}};
    });
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port());

    auto response = client.request(get("/204"));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 204);
    EXPECT_EQ(response->header("content-length"), "<none>");
    EXPECT_EQ(response->body, "");

    // The handler's Connection header is dropped: the server decides.
    response = client.request(get("/405"));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 405);
    EXPECT_EQ(response->header("allow"), "GET, PUT");
    EXPECT_EQ(response->header("content-type"), "<none>");
    EXPECT_EQ(response->header("connection"), "<none>");
    EXPECT_EQ(response->body, "no");

    // Header injection from a handler never reaches the wire.
    response = client.request(get("/inject"));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 500);
    EXPECT_EQ(response->header("set-cookie"), "<none>");
}

TEST(HttpServer, TooManyClientsGet503AndTheSlotComesBack) {
    HttpServerSettings settings = loopback();
    settings.max_clients = 2;
    RunningServer server(settings);
    ASSERT_TRUE(server.started()) << server.error();
    auto first = std::make_unique<Client>(server.port());
    Client second(server.port());
    ASSERT_TRUE(first->request(get("/1")));
    ASSERT_TRUE(second.request(get("/2")));

    Client third(server.port());
    expect_error(third.request(get("/3")), 503);
    EXPECT_TRUE(third.closed_by_server());

    first.reset();
    // The server sees the close asynchronously: retry briefly.
    std::optional<Response> later;
    for (int attempt = 0; attempt < 50; ++attempt) {
        Client fourth(server.port());
        later = fourth.request(get("/4"));
        if (later && later->status == 200)
            break;
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(later);
    EXPECT_EQ(later->status, 200);
}

TEST(HttpServer, AByteByByteClientDoesNotStallOthers) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    Client slow(server.port()), quick(server.port());
    const std::string request = post("/slow", "one byte at a time");
    for (size_t i = 0; i < request.size(); ++i) {
        ASSERT_TRUE(slow.send(request.substr(i, 1)));
        if (i % 16 == 0) {
            const auto start = std::chrono::steady_clock::now();
            const auto response = quick.request(get("/quick"));
            ASSERT_TRUE(response) << "quick client not served while the slow one was at byte " << i;
            EXPECT_EQ(response->status, 200);
            EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
        }
    }
    const auto response = slow.response();
    ASSERT_TRUE(response);
    EXPECT_EQ(body_of_echo(*response), "one byte at a time");
}

TEST(HttpServer, FiftyClientsAtOnce) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 50; ++i) {
        clients.push_back(std::make_unique<Client>(server.port()));
        ASSERT_TRUE(clients.back()->connected()) << i;
    }
    // Every request is in before any answer is read.
    for (int i = 0; i < 50; ++i)
        ASSERT_TRUE(clients[size_t(i)]->send(post("/c", std::to_string(i))));
    for (int i = 49; i >= 0; --i) {
        const auto response = clients[size_t(i)]->response();
        ASSERT_TRUE(response) << i;
        EXPECT_EQ(body_of_echo(*response), std::to_string(i));
    }
}

TEST(HttpServer, ClientsVanishingMidRequestOrMidAnswerHarmNobody) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    {
        Client client(server.port());
        ASSERT_TRUE(client.send("POST /half HTTP/1.1\r\nHost: x\r\nContent-Len"));
    }
    {
        Client client(server.port());
        ASSERT_TRUE(client.send("POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"));
        client.reset();
    }
    {
        // A large answer being written when the client resets.
        Client client(server.port());
        ASSERT_TRUE(client.send(get("/big?8000000")));
        std::this_thread::sleep_for(20ms);
        client.reset();
    }
    std::this_thread::sleep_for(50ms);
    Client client(server.port());
    const auto response = client.request(get("/still-here"));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
}

TEST(HttpServer, ALargeAnswerToASlowReaderArrivesWhole) {
    RunningServer server(loopback());
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port());
    ASSERT_TRUE(client.send(get("/big?6000000")));
    std::this_thread::sleep_for(100ms);  // the socket fills; the rest waits in the server
    const auto response = client.response();
    ASSERT_TRUE(response);
    ASSERT_EQ(response->body.size(), 6000000u);
    bool intact = true;
    for (size_t i = 0; i < response->body.size(); i += 4099)
        intact = intact && response->body[i] == char('a' + i % 26);
    EXPECT_TRUE(intact);
    EXPECT_TRUE(client.request(get("/after")));
}

TEST(HttpServer, IdleConnectionsCloseAndUnfinishedRequestsGet408) {
    HttpServerSettings settings = loopback();
    settings.idle_timeout_ms = 200;
    RunningServer server(settings);
    ASSERT_TRUE(server.started()) << server.error();
    Client idle(server.port()), unfinished(server.port());
    ASSERT_TRUE(idle.request(get("/once")));
    ASSERT_TRUE(unfinished.send("GET /never-finished HTTP/1.1\r\nHo"));
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(idle.closed_by_server());
    expect_error(unfinished.response(), 408);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);

    // A client trickling bytes cannot hold its connection past the timeout.
    Client trickle(server.port());
    trickle.set_read_timeout(10ms);
    const std::string request = get("/trickle", "X-Long: " + std::string(200, 't') + "\r\n");
    std::optional<Response> answer;
    for (size_t i = 0; i < request.size() && !answer; ++i) {
        if (!trickle.send(request.substr(i, 1)))
            break;
        answer = trickle.response();
    }
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 408);
}

TEST(HttpServer, ListensOnIpv6) {
    HttpServerSettings settings;
    settings.listen = "[::1]:0";
    RunningServer server(settings);
    if (!server.started() && (server.error().find("Cannot assign") != std::string::npos ||
                              server.error().find("not supported") != std::string::npos))
        GTEST_SKIP() << "no IPv6 loopback here: " << server.error();
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port(), "::1");
    const auto response = client.request(get("/v6"));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->header("x-peer").rfind("[::1]:", 0), 0u);
}

TEST(HttpServer, StartNamesWhatItCannotUse) {
    HttpServer server;
    std::string error;
    for (const char *listen : {"127.0.0.1", "127.0.0.1:99999", "localhost:8480", "::1:8480",
                               "[::1:8480", "[127.0.0.1]:80", "127.0.0.1:80x", ":8480"}) {
        HttpServerSettings settings;
        settings.listen = listen;
        EXPECT_FALSE(server.start(settings, echo, error)) << listen;
        EXPECT_EQ(error, std::string("invalid listen address '") + listen +
                             "': expected ADDRESS:PORT or [V6]:PORT");
        EXPECT_EQ(server.fd(), -1);
    }

    RunningServer taken(loopback());
    ASSERT_TRUE(taken.started());
    HttpServerSettings settings;
    settings.listen = "127.0.0.1:" + std::to_string(taken.port());
    EXPECT_FALSE(server.start(settings, echo, error));
    EXPECT_EQ(error, "cannot listen on " + settings.listen + ": Address already in use");

    settings.listen = "203.0.113.1:0";  // TEST-NET-3: never local
    EXPECT_FALSE(server.start(settings, echo, error));
    EXPECT_EQ(error, "cannot listen on 203.0.113.1:0: Cannot assign requested address");
}

// A CA, a server certificate for 127.0.0.1 and client certificates, made by
// the openssl command once for the TLS tests.
class HttpServerTls : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        char pattern[] = "/tmp/sluice-http-tls-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir_ = pattern;
        std::ofstream(dir_ + "/san.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
        const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        const std::vector<std::string> commands = {
            "openssl req -x509" + key + " -keyout ca.key -out ca.pem -subj /CN=sluice-test-ca -days 2",
            "openssl req -x509" + key + " -keyout other-ca.key -out other-ca.pem -subj /CN=other-ca -days 2",
            "openssl req" + key + " -keyout server.key -out server.csr -subj /CN=localhost",
            "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
            " -extfile san.ext -out server.pem",
            "openssl req" + key + " -keyout client.key -out client.csr -subj /O=sluice/CN=sluicectl",
            "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out client.pem",
            "openssl req" + key + " -keyout stranger.key -out stranger.csr -subj /CN=stranger",
            "openssl x509 -req -in stranger.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial"
            " -days 2 -out stranger.pem",
        };
        for (const std::string &command : commands)
            ASSERT_EQ(std::system(("cd " + dir_ + " && " + command + " >/dev/null 2>&1").c_str()), 0)
                << command;
    }
    static void TearDownTestSuite() { fs::remove_all(dir_); }

    static std::string file(const char *name) { return dir_ + "/" + name; }
    static HttpServerSettings tls(bool mutual) {
        HttpServerSettings settings = loopback();
        settings.tls_certificate = file("server.pem");
        settings.tls_private_key = file("server.key");
        if (mutual)
            settings.tls_client_ca = file("ca.pem");
        return settings;
    }
    static TlsFiles anonymous() { return {file("ca.pem"), "", ""}; }
    static TlsFiles as(const char *name) {
        return {file("ca.pem"), file((std::string(name) + ".pem").c_str()),
                file((std::string(name) + ".key").c_str())};
    }

    static std::string dir_;
};

std::string HttpServerTls::dir_;

// curl's output and the HTTP status it saw, last line.
std::string run(const std::string &command) {
    std::string output;
    FILE *pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (!pipe)
        return "popen failed";
    char chunk[4096];
    while (const size_t read = std::fread(chunk, 1, sizeof chunk, pipe))
        output.append(chunk, read);
    ::pclose(pipe);
    return output;
}

TEST_F(HttpServerTls, ServesHttpsKeepAliveAndPipelining) {
    RunningServer server(tls(false));
    ASSERT_TRUE(server.started()) << server.error();
    Client client(server.port(), "127.0.0.1", anonymous());
    ASSERT_TRUE(client.connected());
    const auto response = client.request(post("/secure", "over TLS"));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(body_of_echo(*response), "over TLS");
    EXPECT_NE(response->body.find("subject=\n"), std::string::npos);

    std::string burst;
    for (int i = 0; i < 10; ++i)
        burst += get("/big?" + std::to_string(100000 + i));
    ASSERT_TRUE(client.send(burst));
    for (int i = 0; i < 10; ++i) {
        const auto big = client.response();
        ASSERT_TRUE(big) << i;
        EXPECT_EQ(big->body.size(), size_t(100000 + i));
    }
}

TEST_F(HttpServerTls, ManyTlsClientsAndOnesThatVanishOrSpeakPlainHttp) {
    RunningServer server(tls(false));
    ASSERT_TRUE(server.started()) << server.error();
    {
        Client plain(server.port());
        plain.send(get("/not-tls"));
        EXPECT_TRUE(plain.closed_by_server());
    }
    {
        Client vanishing(server.port(), "127.0.0.1", anonymous());
        ASSERT_TRUE(vanishing.send(get("/big?8000000")));
        std::this_thread::sleep_for(20ms);
        vanishing.reset();
    }
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 20; ++i) {
        clients.push_back(std::make_unique<Client>(server.port(), "127.0.0.1", anonymous()));
        ASSERT_TRUE(clients.back()->connected()) << i;
        ASSERT_TRUE(clients.back()->send(post("/c", std::to_string(i))));
    }
    for (int i = 0; i < 20; ++i) {
        const auto response = clients[size_t(i)]->response();
        ASSERT_TRUE(response) << i;
        EXPECT_EQ(body_of_echo(*response), std::to_string(i));
    }
}

TEST_F(HttpServerTls, MutualTlsExposesTheSubjectAndRefusesOthers) {
    RunningServer server(tls(true));
    ASSERT_TRUE(server.started()) << server.error();
    {
        Client client(server.port(), "127.0.0.1", as("client"));
        ASSERT_TRUE(client.connected());
        const auto response = client.request(get("/who"));
        ASSERT_TRUE(response);
        EXPECT_NE(response->body.find("subject=CN=sluicectl,O=sluice\n"), std::string::npos)
            << response->body;
    }
    // TLS 1.3 clients finish their handshake before the server has judged
    // their certificate: the refusal shows as no answer.
    for (const bool stranger : {false, true}) {
        SCOPED_TRACE(stranger ? "certificate from another CA" : "no certificate");
        Client client(server.port(), "127.0.0.1", stranger ? as("stranger") : anonymous());
        EXPECT_FALSE(client.connected() && client.request(get("/who")));
    }
    ERR_clear_error();
}

TEST_F(HttpServerTls, CurlSpeaksToThePlainAndTheTlsServer) {
    RunningServer plain(loopback());
    ASSERT_TRUE(plain.started()) << plain.error();
    const std::string body_file = file("body.json");
    std::ofstream(body_file) << std::string(5000, 'b');
    const std::string curl = "curl -sS --noproxy '*' --max-time 5 -w '\\n%{http_code}' ";
    // curl waits for a 100 Continue before sending the body (curl 7.88 asks
    // for one by itself only for bodies over 1 MiB, more than the server takes).
    std::string output = run(curl + "-H 'Expect: 100-continue' --data-binary @" + body_file +
                             " http://127.0.0.1:" +
                             std::to_string(plain.port()) + "/api/v1/reload");
    EXPECT_EQ(output.substr(0, output.find('\n')), "POST /api/v1/reload ") << output;
    EXPECT_NE(output.find("expect=100-continue\nbody=" + std::string(5000, 'b') + "\n200"),
              std::string::npos)
        << output;
    output = run(curl + "-H 'Transfer-Encoding: chunked' --data-binary @" + body_file +
                 " http://127.0.0.1:" + std::to_string(plain.port()) + "/chunked");
    EXPECT_NE(output.find("body=" + std::string(5000, 'b') + "\n200"), std::string::npos) << output;

    RunningServer secure(tls(true));
    ASSERT_TRUE(secure.started()) << secure.error();
    const std::string url = "https://127.0.0.1:" + std::to_string(secure.port()) + "/api/v1/services";
    output = run(curl + "--cacert " + file("ca.pem") + " --cert " + file("client.pem") + " --key " +
                 file("client.key") + " " + url);
    EXPECT_EQ(output.substr(0, output.find('\n')), "GET /api/v1/services ") << output;
    EXPECT_NE(output.find("subject=CN=sluicectl,O=sluice\n"), std::string::npos) << output;
    EXPECT_EQ(output.substr(output.rfind('\n') + 1), "200") << output;
    output = run(curl + "--cacert " + file("ca.pem") + " " + url);
    EXPECT_EQ(output.find("GET /api/v1/services"), std::string::npos) << output;
    EXPECT_NE(output.find("000"), std::string::npos) << output;
}

TEST_F(HttpServerTls, StartNamesTheFileItCannotLoad) {
    HttpServer server;
    std::string error;
    HttpServerSettings settings = tls(true);
    settings.tls_certificate = file("missing.pem");
    EXPECT_FALSE(server.start(settings, echo, error));
    EXPECT_EQ(error.rfind("cannot load TLS certificate " + file("missing.pem") + ": ", 0), 0u) << error;

    settings = tls(true);
    settings.tls_private_key = file("missing.key");
    EXPECT_FALSE(server.start(settings, echo, error));
    EXPECT_EQ(error.rfind("cannot load TLS private key " + file("missing.key") + ": ", 0), 0u) << error;

    settings = tls(true);
    settings.tls_private_key = file("client.key");
    EXPECT_FALSE(server.start(settings, echo, error));
    EXPECT_EQ(error.rfind("TLS private key " + file("client.key") + " does not match certificate " +
                              file("server.pem"),
                          0),
              0u)
        << error;

    settings = tls(true);
    settings.tls_client_ca = file("missing-ca.pem");
    EXPECT_FALSE(server.start(settings, echo, error));
    EXPECT_EQ(error.rfind("cannot load TLS client CA " + file("missing-ca.pem") + ": ", 0), 0u) << error;

    settings = tls(false);
    settings.tls_private_key.clear();
    EXPECT_FALSE(server.start(settings, echo, error));
    EXPECT_EQ(error, "TLS needs both a certificate and a private key");
    EXPECT_EQ(server.fd(), -1);
}

} // namespace
} // namespace sluice::ctrl
