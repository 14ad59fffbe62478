// The snapshot workers read, behind one atomic pointer, and the RCU
// (rte_rcu_qsbr) that tells the control plane when the one it replaced is no
// longer read by anyone. Workers never lock: they load the pointer once per
// poll and report a quiescent state after each poll.
#pragma once

#include <atomic>
#include <memory>

#include "lb/snapshot.h"

struct rte_rcu_qsbr;

namespace sluice::dataplane {

class PublishedSnapshot {
public:
    explicit PublishedSnapshot(unsigned workers);
    ~PublishedSnapshot();
    PublishedSnapshot(const PublishedSnapshot &) = delete;
    PublishedSnapshot &operator=(const PublishedSnapshot &) = delete;

    // Control plane: makes `next` current, waits until no worker can still
    // hold the previous one (a grace period), then frees it.
    void publish(std::unique_ptr<const lb::Snapshot> next);
    const lb::Snapshot *current() const { return current_.load(std::memory_order_acquire); }

    // Workers, by worker id.
    void online(unsigned worker);
    void quiescent(unsigned worker);
    void offline(unsigned worker);

private:
    std::atomic<const lb::Snapshot *> current_{nullptr};
    rte_rcu_qsbr *qsbr_ = nullptr;
};

} // namespace sluice::dataplane
