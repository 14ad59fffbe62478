#include "dataplane/published_snapshot.h"

#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <stdexcept>

namespace sluice::dataplane {

PublishedSnapshot::PublishedSnapshot(unsigned workers) {
    const size_t size = rte_rcu_qsbr_get_memsize(workers);
    qsbr_ = static_cast<rte_rcu_qsbr *>(rte_zmalloc("snapshot_rcu", size, RTE_CACHE_LINE_SIZE));
    if (!qsbr_ || rte_rcu_qsbr_init(qsbr_, workers) != 0)
        throw std::runtime_error("cannot set up the snapshot's RCU");
    for (unsigned worker = 0; worker < workers; ++worker)
        rte_rcu_qsbr_thread_register(qsbr_, worker);
}

PublishedSnapshot::~PublishedSnapshot() {
    delete current_.exchange(nullptr);
    rte_free(qsbr_);
}

void PublishedSnapshot::publish(std::unique_ptr<const lb::Snapshot> next) {
    const lb::Snapshot *previous = current_.exchange(next.release(), std::memory_order_acq_rel);
    if (!previous)
        return;
    // Every worker online has passed a quiescent state since the exchange:
    // none of them still reads `previous`. Offline (sleeping) workers hold
    // no snapshot at all.
    rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
    delete previous;
}

void PublishedSnapshot::online(unsigned worker) { rte_rcu_qsbr_thread_online(qsbr_, worker); }

void PublishedSnapshot::quiescent(unsigned worker) { rte_rcu_qsbr_quiescent(qsbr_, worker); }

void PublishedSnapshot::offline(unsigned worker) { rte_rcu_qsbr_thread_offline(qsbr_, worker); }

} // namespace sluice::dataplane
