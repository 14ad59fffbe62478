#include "ctrl/etcd_registration.h"

#include <algorithm>
#include <climits>
#include <random>
#include <stdexcept>

namespace sluice::ctrl {

namespace {

EtcdSettings checked(EtcdSettings settings, const std::string &instance, uint32_t ttl_s) {
    if (instance.empty() || instance.find('/') != std::string::npos)
        throw std::invalid_argument("etcd registration: the instance name must be non-empty, "
                                    "without '/', got \"" + instance + "\"");
    if (ttl_s < 3)
        throw std::invalid_argument("etcd registration: a lease TTL of at least 3 s is needed "
                                    "(it is renewed every TTL / 3)");
    return settings;
}

} // namespace

EtcdRegistration::EtcdRegistration(EtcdSettings settings, std::string instance, std::string value,
                                   uint32_t ttl_s)
    : EtcdRegistration(std::move(settings), std::move(instance), std::move(value), ttl_s,
                       std::random_device{}()) {}

EtcdRegistration::EtcdRegistration(EtcdSettings settings, std::string instance, std::string value,
                                   uint32_t ttl_s, uint64_t seed)
    : session_(checked(std::move(settings), instance, ttl_s), seed),
      key_(session_.settings().prefix + "/" + instance), value_(std::move(value)), ttl_s_(ttl_s) {
    begin();
}

int EtcdRegistration::timeout_ms() const {
    int timeout = session_.timeout_ms();
    if (phase_ == Phase::registered) {
        const EtcdMillis left = std::max<EtcdMillis>(renew_at_ - etcd_now(), 0);
        const int renew = int(std::min<EtcdMillis>(left, INT_MAX));
        timeout = timeout < 0 ? renew : std::min(timeout, renew);
    }
    return timeout;
}

void EtcdRegistration::service() noexcept {
    try {
        session_.service();
        EtcdReply reply;
        while (session_.next_reply(reply))
            on_reply(reply);
        if (phase_ == Phase::registered && etcd_now() >= renew_at_)
            renew();
    } catch (const std::exception &error) {
        session_.cancel();
        session_.back_off();
        on_failure(std::string("internal error: ") + error.what());
    }
}

void EtcdRegistration::begin() {
    if (lease_ != 0)
        renew();  // the lease may have outlived the outage
    else
        grant();
}

void EtcdRegistration::grant() {
    EtcdRequest request;
    request.path = "/v3/lease/grant";
    request.body = EtcdJson{{"TTL", ttl_s_}}.dump();
    request.timeout_ms = session_.settings().request_timeout_ms;
    phase_ = Phase::granting;
    session_.call(std::move(request));
}

void EtcdRegistration::put() {
    EtcdRequest request;
    request.path = "/v3/kv/put";
    request.body = EtcdJson{{"key", base64_encode(key_)},
                        {"value", base64_encode(value_)},
                        {"lease", std::to_string(lease_)}}
                       .dump();
    request.timeout_ms = session_.settings().request_timeout_ms;
    put_value_ = value_;
    phase_ = Phase::putting;
    session_.call(std::move(request));
}

void EtcdRegistration::renew() {
    // The gateway's keepalive is a stream of one answer per request: a
    // request body with one request gets one answer, then the stream ends.
    EtcdRequest request;
    request.path = "/v3/lease/keepalive";
    request.body = EtcdJson{{"ID", std::to_string(lease_)}}.dump();
    request.timeout_ms = session_.settings().request_timeout_ms;
    phase_ = Phase::renewing;
    session_.call(std::move(request));
}

void EtcdRegistration::set_value(std::string value) {
    if (value == value_ || phase_ == Phase::revoking || phase_ == Phase::stopped)
        return;
    value_ = std::move(value);
    value_stored_ = false;
    if (phase_ == Phase::registered)
        put();
    // Otherwise the put that follows the grant or renewal in flight takes it.
}

void EtcdRegistration::stop() {
    if (phase_ == Phase::revoking || phase_ == Phase::stopped)
        return;
    session_.cancel();
    if (lease_ == 0) {
        phase_ = Phase::stopped;
        detail_ = "stopped";
        return;
    }
    EtcdRequest request;
    request.path = "/v3/lease/revoke";
    request.body = EtcdJson{{"ID", std::to_string(lease_)}}.dump();
    request.timeout_ms = session_.settings().request_timeout_ms;
    phase_ = Phase::revoking;
    session_.skip_backoff();  // one attempt, now
    session_.call(std::move(request));
}

void EtcdRegistration::lease_lost() {
    lease_ = 0;
    value_stored_ = false;
    detail_ = "the lease expired: registering again";
    grant();
}

void EtcdRegistration::on_failure(const std::string &why) {
    value_stored_ = false;  // a put in flight may or may not have landed
    detail_ = why;
    begin();  // the session waits out its backoff first
}

void EtcdRegistration::on_reply(const EtcdReply &reply) {
    if (phase_ == Phase::stopped)
        return;
    if (phase_ == Phase::revoking) {
        phase_ = Phase::stopped;
        detail_ = reply.kind == EtcdReply::Kind::response && reply.status == 200
                      ? "stopped"
                      : "stopped; the lease was not revoked (" +
                            (reply.kind == EtcdReply::Kind::failure
                                 ? reply.body
                                 : etcd_error_text(reply.status, reply.body)) +
                            "): the key goes when it expires";
        session_.cancel();
        return;
    }
    if (reply.kind == EtcdReply::Kind::failure)
        return on_failure(reply.body);
    const std::string said = etcd_error_text(reply.status, reply.body);
    if (reply.status != 200 || reply.kind != EtcdReply::Kind::response) {
        if (said.find("lease not found") != std::string::npos)
            return lease_lost();
        session_.back_off();
        return on_failure("etcd at " + session_.endpoint() + " refused " +
                          (phase_ == Phase::granting ? "the lease grant"
                           : phase_ == Phase::putting ? "the put"
                                                      : "the keepalive") +
                          ": " + said);
    }
    // The keepalive's one answer comes as {"result": {...}} and a newline.
    const EtcdJson answer = EtcdJson::parse(reply.body, nullptr, false);
    const EtcdJson *result = &answer;
    if (answer.is_object() && answer.contains("result"))
        result = &answer["result"];
    const EtcdMillis now = etcd_now();
    switch (phase_) {
    case Phase::granting: {
        const int64_t lease = etcd_int(*result, "ID").value_or(0);
        if (lease == 0 || etcd_int(*result, "TTL").value_or(0) <= 0) {
            session_.back_off();
            return on_failure("etcd at " + session_.endpoint() + " granted no lease: " + said);
        }
        lease_ = lease;
        ++grants_;
        renew_at_ = now + EtcdMillis(ttl_s_) * 1000 / 3;
        return put();
    }
    case Phase::putting:
        value_stored_ = put_value_ == value_;
        if (!value_stored_)
            return put();  // set_value() came while this one was on its way
        phase_ = Phase::registered;
        detail_.clear();
        return;
    case Phase::renewing:
        // An expired lease answers with no TTL (zero is left out).
        if (etcd_int(*result, "TTL").value_or(0) <= 0)
            return lease_lost();
        ++keepalives_;
        renew_at_ = now + EtcdMillis(ttl_s_) * 1000 / 3;
        if (!value_stored_)
            return put();
        phase_ = Phase::registered;
        detail_.clear();
        return;
    case Phase::registered:
    case Phase::revoking:
    case Phase::stopped:
        return;
    }
}

EtcdRegistration::Status EtcdRegistration::status() const {
    Status status;
    status.key = key_;
    status.lease = lease_;
    status.registered = value_stored_ && lease_ != 0 && phase_ != Phase::revoking &&
                        phase_ != Phase::stopped;
    status.detail = status.registered ? "" : detail_;
    status.grants = grants_;
    status.keepalives = keepalives_;
    return status;
}

} // namespace sluice::ctrl
