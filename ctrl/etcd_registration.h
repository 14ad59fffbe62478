// The gateway registers itself in etcd (issue 5, item 5): under a lease, it
// puts <prefix>/<instance> with a JSON value of the caller's (its instance,
// VIPs and health), keeps the lease alive, and revokes it on stop(), which
// deletes the key. When the process dies, or loses etcd for longer than the
// lease's TTL, the lease expires and etcd deletes the key itself.
//
// Same driving as the feeds: fd(), timeout_ms(), service(), never blocking.
//   - grant a lease of ttl_s seconds (POST /v3/lease/grant), put the key
//     under it (POST /v3/kv/put), then keep the lease alive every ttl_s / 3
//     (POST /v3/lease/keepalive, one request per renewal);
//   - after a lost connection: keep the same lease alive if etcd still has
//     it and put the value again (it may have changed meanwhile), or grant
//     a new one when it expired; retries back off as EtcdSession's do;
//   - set_value() puts a new value under the same lease;
//   - stop() revokes the lease (POST /v3/lease/revoke), one attempt within
//     request_timeout_ms; stopped() then says it is over. Destroying a
//     registration without stop() leaves the key to the lease's expiry, as
//     a crash would.
// Give it a prefix of its own ("/sluice/gateways"): under an etcd feed's
// prefix its key would be one that does not fit <prefix>/<service>/<id>.
#pragma once

#include <cstdint>
#include <string>

#include "ctrl/etcd_client.h"

namespace sluice::ctrl {

class EtcdRegistration {
public:
    // The key is settings.prefix + "/" + instance. Throws std::invalid_argument
    // for an empty instance, one with '/', a TTL under 3 s, or settings that
    // validate() refuses.
    EtcdRegistration(EtcdSettings settings, std::string instance, std::string value,
                     uint32_t ttl_s = 10);
    EtcdRegistration(EtcdSettings settings, std::string instance, std::string value,
                     uint32_t ttl_s, uint64_t seed);

    int fd() const { return session_.fd(); }
    int timeout_ms() const;
    void service() noexcept;

    void set_value(std::string value);
    void stop();
    bool stopped() const { return phase_ == Phase::stopped; }

    struct Status {
        std::string key;
        bool registered = false;  // the current value is in etcd under a live lease
        int64_t lease = 0;        // 0: none yet
        std::string detail;       // why not registered, "" when it is
        uint64_t grants = 0;      // leases granted: 1 unless one was lost
        uint64_t keepalives = 0;  // renewals acknowledged
    };
    Status status() const;

private:
    enum class Phase { granting, putting, renewing, registered, revoking, stopped };

    void begin();  // after start and after a failure: keep the lease or grant one
    void grant();
    void put();
    void renew();
    void on_reply(const EtcdReply &reply);
    void on_failure(const std::string &why);
    void lease_lost();

    EtcdSession session_;
    std::string key_;
    std::string value_;
    uint32_t ttl_s_;
    Phase phase_ = Phase::granting;
    int64_t lease_ = 0;
    bool value_stored_ = false;  // etcd holds value_ under lease_
    std::string put_value_;      // the value of the put in flight
    EtcdMillis renew_at_ = 0;    // the next keepalive, while registered
    std::string detail_ = "registering";
    uint64_t grants_ = 0;
    uint64_t keepalives_ = 0;
};

} // namespace sluice::ctrl
