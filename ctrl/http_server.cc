#include "ctrl/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>

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
constexpr size_t kMaxChunkSizeLine = 1024;

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

bool equals_ignoring_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

// RFC 9110 5.6.2: the characters of a token (methods, header names).
bool is_token_char(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool is_token(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), is_token_char);
}

// RFC 9110 5.5: field values are visible characters, obs-text, SP and HTAB.
bool is_field_value(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte == '\t' || (byte >= 0x20 && byte != 0x7f);
    });
}

std::string_view trim_whitespace(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
        text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
        text.remove_suffix(1);
    return text;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

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

HttpResponse error_response(int status, std::string_view message) {
    HttpResponse response;
    response.status = status;
    response.body = "{\"error\": \"" + json_escape(message) + "\", \"field\": null}";
    return response;
}

// RFC 9110 6.6.1, IMF-fixdate; by hand, because strftime's names follow the locale.
std::string http_date() {
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const time_t now = std::time(nullptr);
    tm utc{};
    gmtime_r(&now, &utc);
    char text[40];
    std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[utc.tm_wday],
                  utc.tm_mday, months[utc.tm_mon], utc.tm_year + 1900, utc.tm_hour, utc.tm_min,
                  utc.tm_sec);
    return text;
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

// Everything OpenSSL queued about the last failure, oldest first.
std::string openssl_errors() {
    std::string text;
    while (const unsigned long code = ERR_get_error()) {
        const char *reason = ERR_reason_error_string(code);
        if (!text.empty())
            text += ": ";
        text += reason ? reason : "error " + std::to_string(code);
    }
    return text.empty() ? "unknown error" : text;
}

// OpenSSL's socket BIO writes with write(2), which raises SIGPIPE when the
// peer has gone, and sluiced does not ignore SIGPIPE. This BIO is the socket
// BIO with its writes made by send(MSG_NOSIGNAL).
int send_without_sigpipe(BIO *bio, const char *data, int length) {
    BIO_clear_retry_flags(bio);
    int fd = -1;
    BIO_get_fd(bio, &fd);
    const ssize_t sent = ::send(fd, data, size_t(length), MSG_NOSIGNAL);
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(bio);
    return int(sent);
}

const BIO_METHOD *socket_without_sigpipe() {
    static BIO_METHOD *const method = [] {
        const BIO_METHOD *socket = BIO_s_socket();
        BIO_METHOD *own = BIO_meth_new(BIO_TYPE_SOCKET, "socket without SIGPIPE");
        BIO_meth_set_write(own, send_without_sigpipe);
        BIO_meth_set_read(own, BIO_meth_get_read(socket));
        BIO_meth_set_puts(own, BIO_meth_get_puts(socket));
        BIO_meth_set_ctrl(own, BIO_meth_get_ctrl(socket));
        BIO_meth_set_create(own, BIO_meth_get_create(socket));
        BIO_meth_set_destroy(own, BIO_meth_get_destroy(socket));
        return own;
    }();
    return method;
}

int no_password(char *, int, int, void *) { return 0; }

SSL_CTX *tls_context(const HttpServerSettings &settings, std::string &error) {
    if (settings.tls_certificate.empty() || settings.tls_private_key.empty()) {
        error = "TLS needs both a certificate and a private key";
        return nullptr;
    }
    ERR_clear_error();
    SSL_CTX *context = SSL_CTX_new(TLS_server_method());
    if (!context) {
        error = "cannot create a TLS context: " + openssl_errors();
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    // Client-initiated renegotiation costs the server a handshake per request.
    SSL_CTX_set_options(context, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Output is written from a buffer that grows and is compacted between retries.
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    const auto failed = [&](std::string what) {
        error = std::move(what) + ": " + openssl_errors();
        SSL_CTX_free(context);
        return nullptr;
    };
    const char *certificate = settings.tls_certificate.c_str();
    if (SSL_CTX_use_certificate_chain_file(context, certificate) != 1)
        return failed("cannot load TLS certificate " + settings.tls_certificate);
    // Read apart from its use, so that "cannot read" and "does not match"
    // are told apart. An encrypted key fails here: no one is at a terminal.
    BIO *key_file = BIO_new_file(settings.tls_private_key.c_str(), "r");
    EVP_PKEY *key = key_file ? PEM_read_bio_PrivateKey(key_file, nullptr, no_password, nullptr)
                             : nullptr;
    BIO_free(key_file);
    if (!key)
        return failed("cannot load TLS private key " + settings.tls_private_key);
    const bool key_taken = SSL_CTX_use_PrivateKey(context, key) == 1;
    EVP_PKEY_free(key);
    if (!key_taken || SSL_CTX_check_private_key(context) != 1)
        return failed("TLS private key " + settings.tls_private_key +
                      " does not match certificate " + settings.tls_certificate);
    if (!settings.tls_client_ca.empty()) {
        const char *ca = settings.tls_client_ca.c_str();
        if (SSL_CTX_load_verify_locations(context, ca, nullptr) != 1)
            return failed("cannot load TLS client CA " + settings.tls_client_ca);
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
        if (!names)
            return failed("cannot load TLS client CA " + settings.tls_client_ca);
        SSL_CTX_set_client_CA_list(context, names);
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        // Session resumption with client verification needs a context id.
        static const unsigned char session_context[] = "sluice-api";
        SSL_CTX_set_session_id_context(context, session_context, sizeof session_context - 1);
    }
    return context;
}

std::string certificate_subject(X509 *certificate) {
    BIO *text = BIO_new(BIO_s_mem());
    if (!text)
        return {};
    X509_NAME_print_ex(text, X509_get_subject_name(certificate), 0, XN_FLAG_RFC2253);
    char *data = nullptr;
    const long length = BIO_get_mem_data(text, &data);
    std::string subject(data, size_t(std::max(length, 0L)));
    BIO_free(text);
    return subject;
}

// What a request head says about the message and the connection.
struct Framing {
    int minor_version = 1;
    bool chunked = false;
    size_t content_length = 0;
    bool keep_alive = true;
    bool expect_continue = false;
};

struct ParseError {
    int status;
    std::string message;
};

// RFC 9112 3: method SP request-target SP HTTP-version.
std::optional<ParseError> parse_request_line(std::string_view line, HttpRequest &request,
                                             Framing &framing) {
    const size_t first_space = line.find(' ');
    const size_t second_space = first_space == std::string_view::npos
                                    ? std::string_view::npos
                                    : line.find(' ', first_space + 1);
    if (second_space == std::string_view::npos)
        return ParseError{400, "malformed request line"};
    const std::string_view method = line.substr(0, first_space);
    const std::string_view target = line.substr(first_space + 1, second_space - first_space - 1);
    const std::string_view version = line.substr(second_space + 1);
    const bool target_ok = !target.empty() && std::all_of(target.begin(), target.end(), [](char c) {
        return c > 0x20 && c < 0x7f;
    });
    if (!is_token(method) || !target_ok)
        return ParseError{400, "malformed request line"};
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
        hex_value(version[5]) < 0 || hex_value(version[5]) > 9 || hex_value(version[7]) < 0 ||
        hex_value(version[7]) > 9)
        return ParseError{400, "malformed HTTP version"};
    if (version[5] != '1')
        return ParseError{505, "only HTTP/1.0 and HTTP/1.1 are supported"};
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
        return ParseError{400, "invalid request target"};
    const size_t question = path_and_query.find('?');
    const std::string_view raw_path = path_and_query.substr(0, question);
    if (question != std::string_view::npos)
        request.query = std::string(path_and_query.substr(question + 1));
    if (!percent_decode(raw_path.empty() ? "/" : raw_path, request.path))
        return ParseError{400, "invalid percent-encoding in the request path"};
    return std::nullopt;
}

// The header lines after the request line, and the framing they imply
// (RFC 9112 6 and 9.3; RFC 9110 7.2 and 10.1.1).
std::optional<ParseError> parse_headers(std::string_view lines, HttpRequest &request,
                                        Framing &framing) {
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
            return ParseError{400, "obsolete header line folding"};
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos || !is_token(line.substr(0, colon)))
            return ParseError{400, "malformed header line"};
        const std::string_view value = trim_whitespace(line.substr(colon + 1));
        if (!is_field_value(value))
            return ParseError{400, "invalid character in a header value"};
        std::string name(line.substr(0, colon));
        std::transform(name.begin(), name.end(), name.begin(), lower);

        if (name == "host") {
            ++hosts;
        } else if (name == "content-length") {
            // Repeated identical values are one value (RFC 9110 8.6); anything
            // else could frame the body two ways.
            size_t length = 0;
            if (value.empty() || value.size() > 18 ||
                !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
                return ParseError{400, "invalid Content-Length"};
            for (const char digit : value)
                length = length * 10 + size_t(digit - '0');
            if (has_content_length && length != framing.content_length)
                return ParseError{400, "conflicting Content-Length headers"};
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
                return ParseError{501, "only the chunked transfer coding is supported"};
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
        return ParseError{400, "an HTTP/1.1 request needs exactly one Host header"};
    if (has_transfer_encoding) {
        if (has_content_length)
            return ParseError{400, "both Content-Length and Transfer-Encoding"};
        if (framing.minor_version == 0)
            return ParseError{400, "Transfer-Encoding in an HTTP/1.0 request"};
        if (!chunked_last)
            return ParseError{400, "Transfer-Encoding without a coding"};
        framing.chunked = true;
    }
    if (!expect.empty()) {
        if (!equals_ignoring_case(expect, "100-continue"))
            return ParseError{417, "only Expect: 100-continue is supported"};
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

} // namespace

const std::string *HttpRequest::header(std::string_view name) const {
    for (const auto &[key, value] : headers)
        if (equals_ignoring_case(key, name))
            return &value;
    return nullptr;
}

struct HttpServer::Connection {
    enum class Stage { head, sized_body, chunk_size, chunk_data, chunk_end, trailers };

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

    // The request being received.
    Stage stage = Stage::head;
    size_t head_scanned = 0;  // bytes after in_pos already searched for the head's end
    size_t body_left = 0;     // of the sized body, or of the current chunk
    size_t trailer_bytes = 0;
    HttpRequest request;
    Framing framing;

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
    // A request has begun to arrive (not only blank lines between requests).
    bool receiving_request() const { return stage != Stage::head || head_scanned > 0; }
};

HttpServer::HttpServer() = default;

HttpServer::~HttpServer() { stop(); }

bool HttpServer::start(const HttpServerSettings &settings, HttpHandler handler, std::string &error) {
    stop();
    settings_ = settings;
    handler_ = std::move(handler);
    const bool tls = !settings.tls_certificate.empty() || !settings.tls_private_key.empty() ||
                     !settings.tls_client_ca.empty();
    if (tls && !(tls_ = tls_context(settings, error)))
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
                            !connection.close_after_write && connection.receiving_request();
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
        if (connection.stage == Connection::Stage::head) {
            std::string_view pending = connection.input();
            if (!pending.empty() && !connection.request_started)
                connection.request_started = now;
            // RFC 9112 2.2: blank lines before a request line are ignored.
            while (connection.head_scanned == 0 && pending.substr(0, 2) == "\r\n") {
                connection.in_pos += 2;
                pending.remove_prefix(2);
            }
            if (pending.empty() || pending == "\r")
                break;
            const size_t from = connection.head_scanned >= 3 ? connection.head_scanned - 3 : 0;
            const size_t end = pending.find("\r\n\r\n", from);
            if (end == std::string_view::npos) {
                connection.head_scanned = pending.size();
                if (pending.size() > settings_.max_header_bytes) {
                    if (pending.find("\r\n") == std::string_view::npos)
                        fail(connection, 414, "the request line is too long");
                    else
                        fail(connection, 431, "the request header section is too large");
                }
                break;
            }
            const size_t head_size = end + 4;
            if (head_size > settings_.max_header_bytes) {
                fail(connection, 431, "the request header section is too large");
                break;
            }
            if (!begin_request(connection, pending.substr(0, head_size)))
                break;
            continue;
        }
        if (!receive_body(connection))
            break;
        dispatch(connection);
        connection.stage = Connection::Stage::head;
        connection.head_scanned = 0;
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

// Parses the head of the next request; false (with an answer queued) when it
// is refused.
bool HttpServer::begin_request(Connection &connection, std::string_view head) {
    connection.request = HttpRequest{};
    connection.framing = Framing{};
    const size_t line_end = head.find("\r\n");
    std::optional<ParseError> error =
        parse_request_line(head.substr(0, line_end), connection.request, connection.framing);
    if (!error)
        error = parse_headers(head.substr(line_end + 2), connection.request, connection.framing);
    if (error) {
        fail(connection, error->status, error->message);
        return false;
    }
    const Framing &framing = connection.framing;
    if (!framing.chunked && framing.content_length > settings_.max_body_bytes) {
        fail(connection, 413,
             "the request body is larger than " + std::to_string(settings_.max_body_bytes) + " bytes");
        return false;
    }
    connection.in_pos += head.size();
    connection.head_scanned = 0;
    connection.stage = framing.chunked ? Connection::Stage::chunk_size : Connection::Stage::sized_body;
    connection.body_left = framing.content_length;
    // RFC 9110 10.1.1: a client that already sends the body needs no 100.
    const bool body_expected = framing.chunked || framing.content_length > 0;
    if (framing.expect_continue && body_expected && connection.input().empty())
        connection.out += "HTTP/1.1 100 Continue\r\n\r\n";
    return true;
}

// Takes body bytes from the input; true once the body is whole. False when
// more input is needed or the body was refused (with an answer queued).
bool HttpServer::receive_body(Connection &connection) {
    using Stage = Connection::Stage;
    std::string &body = connection.request.body;
    while (true) {
        const std::string_view pending = connection.input();
        switch (connection.stage) {
        case Stage::head:
            return false;
        case Stage::sized_body:
        case Stage::chunk_data: {
            const size_t taken = std::min(pending.size(), connection.body_left);
            body.append(pending.data(), taken);
            connection.in_pos += taken;
            connection.body_left -= taken;
            if (connection.body_left > 0)
                return false;
            if (connection.stage == Stage::sized_body)
                return true;
            connection.stage = Stage::chunk_end;
            break;
        }
        case Stage::chunk_end:
            if (pending.size() < 2)
                return false;
            if (pending.substr(0, 2) != "\r\n") {
                fail(connection, 400, "a chunk is not followed by CRLF");
                return false;
            }
            connection.in_pos += 2;
            connection.stage = Stage::chunk_size;
            break;
        case Stage::chunk_size: {
            const size_t end = pending.find("\r\n");
            if (end == std::string_view::npos) {
                if (pending.size() > kMaxChunkSizeLine)
                    fail(connection, 400, "malformed chunk size");
                return false;
            }
            const std::optional<uint64_t> size = parse_chunk_size(pending.substr(0, end));
            if (!size) {
                fail(connection, 400, "malformed chunk size");
                return false;
            }
            if (*size > settings_.max_body_bytes - std::min(body.size(), settings_.max_body_bytes)) {
                fail(connection, 413,
                     "the request body is larger than " + std::to_string(settings_.max_body_bytes) +
                         " bytes");
                return false;
            }
            connection.in_pos += end + 2;
            connection.body_left = size_t(*size);
            connection.stage = *size ? Stage::chunk_data : Stage::trailers;
            connection.trailer_bytes = 0;
            break;
        }
        case Stage::trailers: {
            // RFC 9112 7.1.2: trailer fields are read and dropped.
            const size_t end = pending.find("\r\n");
            const size_t line_bytes = end == std::string_view::npos ? pending.size() : end + 2;
            if (connection.trailer_bytes + line_bytes > settings_.max_header_bytes) {
                fail(connection, 431, "the request trailer section is too large");
                return false;
            }
            if (end == std::string_view::npos)
                return false;
            const std::string_view line = pending.substr(0, end);
            connection.in_pos += line_bytes;
            if (line.empty())
                return true;
            connection.trailer_bytes += line_bytes;
            const size_t colon = line.find(':');
            if (colon == std::string_view::npos || !is_token(line.substr(0, colon)) ||
                !is_field_value(line.substr(colon + 1))) {
                fail(connection, 400, "malformed trailer line");
                return false;
            }
            break;
        }
        }
    }
}

void HttpServer::dispatch(Connection &connection) {
    connection.request.peer = connection.peer;
    connection.request.client_subject = connection.client_subject;
    HttpResponse response;
    try {
        response = handler_(connection.request);
    } catch (...) {
        response = error_response(500, "internal error while handling the request");
    }
    const bool keep_alive = connection.framing.keep_alive;
    queue_response(connection, response, keep_alive, connection.request.method == "HEAD");
    if (!keep_alive)
        connection.close_after_write = true;
    connection.request = HttpRequest{};
}

// Refuses the request being received: an error answer, then close.
void HttpServer::fail(Connection &connection, int status, std::string_view message) {
    queue_response(connection, error_response(status, message), false, false);
    connection.close_after_write = true;
    connection.in.clear();
    connection.in_pos = 0;
}

void HttpServer::queue_response(Connection &connection, const HttpResponse &response,
                                bool keep_alive, bool head_only) {
    const auto bad_text = [](const std::string &text) {
        return text.find_first_of("\r\n") != std::string::npos || text.find('\0') != std::string::npos;
    };
    bool valid = response.status >= 200 && response.status <= 599 && !bad_text(response.content_type);
    for (const auto &[name, value] : response.headers)
        valid = valid && is_token(name) && !bad_text(value);
    if (!valid) {
        queue_response(connection, error_response(500, "the handler returned an invalid response"),
                       keep_alive, head_only);
        return;
    }
    // RFC 9110 6.4.1 and 8.6: 204 and 304 carry no content, 204 no length.
    const bool no_content = response.status == 204 || response.status == 304;
    std::string &out = connection.out;
    out += "HTTP/1.1 " + std::to_string(response.status) + " " + reason_phrase(response.status) +
           "\r\nDate: " + http_date() + "\r\n";
    if (!response.content_type.empty() && !no_content)
        out += "Content-Type: " + response.content_type + "\r\n";
    if (response.status != 204)
        out += "Content-Length: " + std::to_string(no_content ? 0 : response.body.size()) + "\r\n";
    for (const auto &[name, value] : response.headers)
        if (!equals_ignoring_case(name, "content-length") &&
            !equals_ignoring_case(name, "connection") &&
            !equals_ignoring_case(name, "transfer-encoding"))
            out += name + ": " + value + "\r\n";
    if (!keep_alive)
        out += "Connection: close\r\n";
    else if (connection.framing.minor_version == 0)
        out += "Connection: keep-alive\r\n";
    out += "\r\n";
    if (!head_only && !no_content)
        out += response.body;
}

} // namespace sluice::ctrl
