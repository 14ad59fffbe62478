// What the etcd feed and the etcd registration share: their settings, and
// EtcdSession, a client of etcd's v3 JSON gateway (HTTP/1.1 + JSON, keys and
// values in base64) that makes one call at a time over one connection, never
// blocking: fd() is an epoll fd, timeout_ms() its next timer, service() does
// what is due. The session
//   - tries the endpoints in turn, moving to the next on any failure, after a
//     backoff of 100 ms doubling to 5 s, with jitter (half the step, drawn at
//     random), reset by the first good answer;
//   - with a username, authenticates first (POST /v3/auth/authenticate) and
//     sends the token in the Authorization header; a call refused for its
//     token (401, "invalid auth token") is authenticated again and sent once
//     more. A cluster without auth enabled is used without a token, as
//     etcd's own client does;
//   - speaks TLS to https:// endpoints, verifying etcd's certificate against
//     tls_ca (or the system's CAs) and its IP address or tls_server_name,
//     with an optional client certificate.
// etcd's gateway writes int64 fields as JSON strings ("revision": "42") and
// leaves out fields at their zero value ("type" of a PUT, "count": 0).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctrl/discovery_settings.h"
#include "ctrl/etcd_connection.h"

namespace sluice::ctrl {

std::string base64_encode(std::string_view bytes);
// Strict RFC 4648 with padding, as Go's encoding/json writes []byte.
std::optional<std::string> base64_decode(std::string_view text);
// The smallest key after every key that starts with `prefix` (etcd's
// GetPrefixRangeEnd); "\0" when there is none (every key from prefix on).
std::string prefix_range_end(std::string_view prefix);

using EtcdJson = nlohmann::json;
// An int64 field as the gateway writes it ("42", or 42); 0 when absent.
std::optional<int64_t> etcd_int(const EtcdJson &object, const char *key);
// What an error answer says: its "message" or "error", else "HTTP <status>".
std::string etcd_error_text(int status, const std::string &body);

class EtcdSession {
public:
    // Throws std::invalid_argument for settings that validate()
    // refuses, std::runtime_error when the TLS files cannot be loaded or no
    // epoll fd can be made. `seed` draws the backoff's jitter.
    EtcdSession(EtcdSettings settings, uint64_t seed);
    ~EtcdSession();
    EtcdSession(const EtcdSession &) = delete;
    EtcdSession &operator=(const EtcdSession &) = delete;

    const EtcdSettings &settings() const { return settings_; }
    int fd() const { return epoll_; }
    int timeout_ms() const;  // -1: nothing pending
    // Moves the connection and the timers on; never throws.
    void service() noexcept;

    // Starts a call: authenticates first when needed, waits out a backoff
    // first when the last call failed. One call at a time: calling again
    // drops the one in flight without a reply.
    void call(EtcdRequest request);
    bool busy() const { return pending_ || connection_.busy() || authenticating_; }
    // Drops the call in flight (and the connection): no reply comes.
    void cancel();
    // The next reply of the call: a response (its status and body: errors
    // with status 401 for the token were already retried), a streaming
    // call's messages, or a failure after which the session backs off.
    bool next_reply(EtcdReply &reply);
    // A watch canceled for its token: the next call authenticates again.
    void forget_token() { token_.clear(); has_token_ = false; }
    // The endpoint the connection uses, or will use next: "127.0.0.1:2379".
    const std::string &endpoint() const { return endpoints_[current_].host; }
    uint64_t connections() const { return connection_.opened(); }  // attempts, for metrics
    // The answer just taken was a failure of its own (an error status, a
    // canceled watch): back off and move to the next endpoint, as after a
    // lost connection.
    void back_off();
    // The next call goes out at once (a revoke when stopping).
    void skip_backoff() { retry_at_ = 0; }

private:
    void start(EtcdMillis now);
    void send(EtcdMillis now);
    void authenticate(EtcdMillis now);
    void drain(EtcdMillis now);
    void on_reply(EtcdReply &reply, EtcdMillis now);
    void failed(std::string why, EtcdMillis now);
    void back_off(EtcdMillis now);

    EtcdSettings settings_;
    std::vector<EtcdEndpoint> endpoints_;
    size_t current_ = 0;
    std::unique_ptr<SSL_CTX, void (*)(SSL_CTX *)> tls_;
    int epoll_ = -1;
    EtcdConnection connection_;
    std::mt19937_64 jitter_;

    std::optional<EtcdRequest> pending_;  // waiting for the backoff or the token
    EtcdRequest in_flight_;
    bool authenticating_ = false;
    bool retried_for_token_ = false;
    bool has_token_ = false;
    std::string token_;
    EtcdMillis backoff_ms_ = 0;       // the last step; 0 after a good answer
    EtcdMillis retry_at_ = 0;         // no connection before then
    std::deque<EtcdReply> replies_;   // for the caller, in order
};

} // namespace sluice::ctrl
