#include "ctrl/etcd_client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>

#include "ctrl/tls.h"

namespace sluice::ctrl {

namespace {

constexpr char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

// A key file is read once, at start: a passphrase prompt would block on the
// terminal, so an encrypted key is refused instead.
int no_password(char *, int, int, void *) { return 0; }

SSL_CTX *tls_context(const EtcdSettings &settings) {
    ERR_clear_error();
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (!context)
        throw std::runtime_error("cannot make a TLS context: " + openssl_errors());
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_default_passwd_cb(context, no_password);
    std::string error;
    if (!settings.tls_ca.empty()) {
        if (SSL_CTX_load_verify_locations(context, settings.tls_ca.c_str(), nullptr) != 1)
            error = "cannot load tls_ca " + settings.tls_ca + ": " + openssl_errors();
    } else if (SSL_CTX_set_default_verify_paths(context) != 1) {
        error = "cannot load the system's CAs: " + openssl_errors();
    }
    if (error.empty() && !settings.tls_cert.empty()) {
        if (SSL_CTX_use_certificate_chain_file(context, settings.tls_cert.c_str()) != 1)
            error = "cannot load tls_cert " + settings.tls_cert + ": " + openssl_errors();
        else if (SSL_CTX_use_PrivateKey_file(context, settings.tls_key.c_str(),
                                             SSL_FILETYPE_PEM) != 1 ||
                 SSL_CTX_check_private_key(context) != 1)
            error = "cannot load tls_key " + settings.tls_key + ": " + openssl_errors();
    }
    if (!error.empty()) {
        SSL_CTX_free(context);
        throw std::runtime_error(error);
    }
    return context;
}

bool any_tls(const std::vector<EtcdEndpoint> &endpoints) {
    return std::any_of(endpoints.begin(), endpoints.end(),
                       [](const EtcdEndpoint &endpoint) { return endpoint.tls; });
}

std::vector<EtcdEndpoint> parse_endpoints(const EtcdSettings &settings) {
    if (const std::string error = validate(settings); !error.empty())
        throw std::invalid_argument("etcd settings: " + error);
    std::vector<EtcdEndpoint> endpoints;
    for (const std::string &text : settings.endpoints)
        endpoints.push_back(*parse_etcd_endpoint(text));
    return endpoints;
}

} // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const uint32_t group = uint32_t(uint8_t(bytes[i])) << 16 |
                               uint32_t(uint8_t(bytes[i + 1])) << 8 | uint8_t(bytes[i + 2]);
        for (int shift = 18; shift >= 0; shift -= 6)
            out += base64_alphabet[(group >> shift) & 63];
    }
    if (i < bytes.size()) {
        uint32_t group = uint32_t(uint8_t(bytes[i])) << 16;
        if (i + 1 < bytes.size())
            group |= uint32_t(uint8_t(bytes[i + 1])) << 8;
        out += base64_alphabet[(group >> 18) & 63];
        out += base64_alphabet[(group >> 12) & 63];
        out += i + 1 < bytes.size() ? base64_alphabet[(group >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0)
        return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        const int padding = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
        if (padding == 1 && text[i + 2] == '=')  // "x=y=" is not padding
            return std::nullopt;
        uint32_t group = 0;
        for (int j = 0; j < 4; ++j) {
            const int value = j >= 4 - padding ? 0 : base64_value(text[i + size_t(j)]);
            if (value < 0)
                return std::nullopt;
            group = group << 6 | uint32_t(value);
        }
        // Bits past the data must be zero (RFC 4648 3.5), as Go's decoder checks.
        if ((padding == 2 && (group & 0xffff)) || (padding == 1 && (group & 0xff)))
            return std::nullopt;
        out += char(group >> 16);
        if (padding < 2)
            out += char(group >> 8);
        if (padding < 1)
            out += char(group);
    }
    return out;
}

std::string prefix_range_end(std::string_view prefix) {
    std::string end(prefix);
    while (!end.empty()) {
        if (static_cast<unsigned char>(end.back()) < 0xff) {
            end.back() = char(static_cast<unsigned char>(end.back()) + 1);
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0');
}

std::optional<int64_t> etcd_int(const EtcdJson &object, const char *key) {
    if (!object.is_object())
        return std::nullopt;
    const auto field = object.find(key);
    if (field == object.end())
        return 0;
    if (field->is_number_integer())
        return field->get<int64_t>();
    if (!field->is_string())
        return std::nullopt;
    const std::string &text = field->get_ref<const std::string &>();
    if (text.empty() || text.size() > 19)
        return std::nullopt;
    int64_t value = 0;
    for (size_t i = text[0] == '-' ? 1 : 0; i < text.size(); ++i) {
        if (text[i] < '0' || text[i] > '9' || value > (INT64_MAX - 9) / 10)
            return std::nullopt;
        value = value * 10 + (text[i] - '0');
    }
    if (text == "-")
        return std::nullopt;
    return text[0] == '-' ? -value : value;
}

std::string etcd_error_text(int status, const std::string &body) {
    const EtcdJson parsed = EtcdJson::parse(body, nullptr, false);
    if (parsed.is_object()) {
        const EtcdJson *holder = &parsed;
        if (const auto inner = parsed.find("error"); inner != parsed.end() && inner->is_object())
            holder = &*inner;  // a streaming call's error: {"error": {"message": ...}}
        for (const char *key : {"message", "error"})
            if (const auto text = holder->find(key); text != holder->end() && text->is_string() &&
                                                     !text->get_ref<const std::string &>().empty())
                return text->get<std::string>();
    }
    return "HTTP " + std::to_string(status);
}

EtcdSession::EtcdSession(EtcdSettings settings, uint64_t seed)
    : settings_(std::move(settings)), endpoints_(parse_endpoints(settings_)),
      tls_(any_tls(endpoints_) ? tls_context(settings_) : nullptr,
           [](SSL_CTX *context) { SSL_CTX_free(context); }),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      connection_(epoll_, 0, tls_.get(), {16384, settings_.max_response_bytes},
                  settings_.tls_server_name, settings_.connect_timeout_ms),
      jitter_(seed) {
    if (epoll_ < 0)
        throw std::runtime_error(std::string("cannot create the etcd client's epoll: ") +
                                 std::strerror(errno));
}

EtcdSession::~EtcdSession() {
    connection_.close();
    if (epoll_ >= 0)
        ::close(epoll_);
}

int EtcdSession::timeout_ms() const {
    if (!replies_.empty() || connection_.has_replies())
        return 0;
    const EtcdMillis now = etcd_now();
    EtcdMillis due = -1;
    if (pending_ && !authenticating_ && !connection_.busy())
        due = std::max<EtcdMillis>(retry_at_ - now, 0);
    if (const EtcdMillis deadline = connection_.deadline(); deadline != 0) {
        const EtcdMillis left = std::max<EtcdMillis>(deadline - now, 0);
        due = due < 0 ? left : std::min(due, left);
    }
    return due < 0 ? -1 : int(std::min<EtcdMillis>(due, INT_MAX));
}

void EtcdSession::service() noexcept {
    try {
        epoll_event events[8];
        const int ready = ::epoll_wait(epoll_, events, 8, 0);
        const EtcdMillis now = etcd_now();
        for (int i = 0; i < ready; ++i) {
            // Copied first: epoll_event is packed on x86-64.
            const uint64_t tag = events[i].data.u64;
            const uint32_t what = events[i].events;
            if (connection_.owns(tag))
                connection_.handle(what, now);
        }
        connection_.check_deadline(etcd_now());
        drain(etcd_now());
    } catch (const std::exception &error) {
        // Nothing here throws but allocation; give up on this call rather
        // than on the control plane.
        connection_.close();
        failed(std::string("internal error: ") + error.what(), etcd_now());
    }
}

void EtcdSession::drain(EtcdMillis now) {
    // Bounded, though each start either sends or sets a backoff: a bug here
    // must not hang the control plane's loop.
    for (int round = 0; round < 100'000; ++round) {
        if (pending_ && !authenticating_ && !connection_.busy() && now >= retry_at_)
            start(now);
        EtcdReply reply;
        if (!connection_.next_reply(reply))
            return;
        on_reply(reply, now);
    }
}

void EtcdSession::call(EtcdRequest request) {
    connection_.close_if_busy();
    connection_.drop_replies();
    replies_.clear();  // what is left belongs to the call this one replaces
    authenticating_ = false;
    retried_for_token_ = false;
    pending_ = std::move(request);
    drain(etcd_now());
}

void EtcdSession::cancel() {
    pending_.reset();
    authenticating_ = false;
    connection_.close();
    replies_.clear();
}

bool EtcdSession::next_reply(EtcdReply &reply) {
    if (replies_.empty())
        return false;
    reply = std::move(replies_.front());
    replies_.pop_front();
    return true;
}

void EtcdSession::start(EtcdMillis now) {
    if (!settings_.username.empty() && !has_token_)
        authenticate(now);
    else
        send(now);
}

void EtcdSession::authenticate(EtcdMillis now) {
    authenticating_ = true;
    EtcdRequest request;
    request.path = "/v3/auth/authenticate";
    request.body = EtcdJson{{"name", settings_.username}, {"password", settings_.password}}.dump();
    request.timeout_ms = settings_.request_timeout_ms;
    connection_.post(endpoints_[current_], std::move(request), now);
}

void EtcdSession::send(EtcdMillis now) {
    in_flight_ = std::move(*pending_);
    pending_.reset();
    EtcdRequest request = in_flight_;
    if (!token_.empty())
        request.headers.emplace_back("Authorization", token_);
    connection_.post(endpoints_[current_], std::move(request), now);
}

void EtcdSession::on_reply(EtcdReply &reply, EtcdMillis now) {
    if (reply.kind == EtcdReply::Kind::failure)
        return failed(std::move(reply.body), now);
    if (authenticating_) {
        authenticating_ = false;
        const std::string said = etcd_error_text(reply.status, reply.body);
        if (reply.status == 200) {
            const EtcdJson answer = EtcdJson::parse(reply.body, nullptr, false);
            const auto token = answer.is_object() ? answer.find("token") : answer.end();
            if (token == answer.end() || !token->is_string())
                return failed("etcd at " + endpoint() + " answered authenticate without a token",
                              now);
            token_ = token->get<std::string>();
        } else if (said.find("authentication is not enabled") != std::string::npos) {
            token_.clear();  // as etcd's client does: go on without a token
        } else {
            return failed("etcd at " + endpoint() + " refused user \"" + settings_.username +
                              "\": " + said,
                          now);
        }
        has_token_ = true;
        if (!pending_)  // canceled meanwhile
            return;
        return send(now);
    }
    if (reply.kind == EtcdReply::Kind::response && reply.status == 401 &&
        !settings_.username.empty() && !retried_for_token_) {
        // The token expired (simple tokens live 5 minutes unused) or the
        // member restarted: authenticate again, send once more.
        retried_for_token_ = true;
        forget_token();
        pending_ = in_flight_;
        return authenticate(now);
    }
    if (reply.kind == EtcdReply::Kind::message ||
        (reply.status >= 200 && reply.status < 300)) {
        backoff_ms_ = 0;
        retried_for_token_ = false;
    }
    replies_.push_back(std::move(reply));
}

void EtcdSession::failed(std::string why, EtcdMillis now) {
    authenticating_ = false;
    pending_.reset();
    back_off(now);
    replies_.push_back({EtcdReply::Kind::failure, 0, std::move(why)});
}

void EtcdSession::back_off() { back_off(etcd_now()); }

void EtcdSession::back_off(EtcdMillis now) {
    connection_.close();
    backoff_ms_ = backoff_ms_ == 0
                      ? settings_.backoff_initial_ms
                      : std::min<EtcdMillis>(backoff_ms_ * 2, settings_.backoff_max_ms);
    // Half the step, plus up to half at random: instances that lost etcd
    // together do not come back together.
    const EtcdMillis half = backoff_ms_ / 2;
    retry_at_ = now + half + EtcdMillis(jitter_() % uint64_t(backoff_ms_ - half + 1));
    current_ = (current_ + 1) % endpoints_.size();
}

} // namespace sluice::ctrl
