#include "dataplane/port.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

namespace sluice::dataplane {

namespace {

constexpr unsigned mempool_cache_size = 256;
constexpr unsigned frame_overhead = RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN + 2 * 4;

std::string describe(int ret) { return rte_strerror(ret < 0 ? -ret : ret); }

} // namespace

uint16_t mbuf_data_room(unsigned mtu) {
    return uint16_t(std::max<unsigned>(RTE_MBUF_DEFAULT_BUF_SIZE,
                                       RTE_PKTMBUF_HEADROOM + mtu + frame_overhead));
}

rte_mempool *create_mempool(int socket, unsigned mbufs, uint16_t data_room, std::string &error) {
    const std::string name = "mbufs_socket" + std::to_string(socket);
    rte_mempool *pool =
        rte_pktmbuf_pool_create(name.c_str(), mbufs, mempool_cache_size, 0, data_room, socket);
    if (!pool)
        error = "cannot create mempool " + name + " of " + std::to_string(mbufs) +
                " mbufs: " + rte_strerror(rte_errno);
    return pool;
}

bool find_port(const std::string &device_name, uint16_t &port_id, std::string &error) {
    if (rte_eth_dev_get_port_by_name(device_name.c_str(), &port_id) != 0) {
        error = "device " + device_name + " was not probed (check the device string and that "
                "the interface or PCI device exists)";
        return false;
    }
    return true;
}

int port_socket(uint16_t port_id) {
    const int socket = rte_eth_dev_socket_id(port_id);
    return socket < 0 ? 0 : socket;  // vdevs have no socket of their own
}

MacAddress port_mac(uint16_t port_id) {
    rte_ether_addr address;
    MacAddress mac;
    if (rte_eth_macaddr_get(port_id, &address) == 0)
        std::memcpy(mac.bytes.data(), address.addr_bytes, 6);
    return mac;
}

bool start_port(uint16_t port_id, const QueueSetup &setup, rte_mempool *pool,
                std::string &error) {
    rte_eth_dev_info info;
    int ret = rte_eth_dev_info_get(port_id, &info);
    if (ret != 0) {
        error = "cannot read device info: " + describe(ret);
        return false;
    }
    if (setup.queues > info.max_rx_queues || setup.queues > info.max_tx_queues) {
        error = "the device has " + std::to_string(std::min(info.max_rx_queues,
                                                            info.max_tx_queues)) +
                " queue pairs, " + std::to_string(setup.queues) +
                " workers need one each";
        return false;
    }
    if (setup.mtu > info.max_mtu || setup.mtu < info.min_mtu) {
        error = "MTU " + std::to_string(setup.mtu) + " is outside the device's range " +
                std::to_string(info.min_mtu) + ".." + std::to_string(info.max_mtu);
        return false;
    }

    rte_eth_conf conf{};
    conf.rxmode.mtu = setup.mtu;
    // Let the NIC verify IPv4 header checksums where it can; the parser
    // trusts RTE_MBUF_F_RX_IP_CKSUM_GOOD and checks the rest itself.
    conf.rxmode.offloads = info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
    const uint64_t rss_types =
        info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    if (setup.rss && setup.queues > 1 && rss_types) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = rss_types;
    }
    ret = rte_eth_dev_configure(port_id, setup.queues, setup.queues, &conf);
    if (ret != 0) {
        error = "cannot configure " + std::to_string(setup.queues) + " queues: " + describe(ret);
        return false;
    }

    uint16_t rx_descriptors = uint16_t(setup.rx_descriptors);
    uint16_t tx_descriptors = uint16_t(setup.tx_descriptors);
    rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rx_descriptors, &tx_descriptors);
    const int socket = port_socket(port_id);
    for (uint16_t queue = 0; queue < setup.queues; ++queue) {
        rte_eth_rxconf rxconf = info.default_rxconf;
        rxconf.offloads = conf.rxmode.offloads;
        ret = rte_eth_rx_queue_setup(port_id, queue, rx_descriptors, socket, &rxconf, pool);
        if (ret != 0) {
            error = "cannot set up RX queue " + std::to_string(queue) + ": " + describe(ret);
            return false;
        }
        ret = rte_eth_tx_queue_setup(port_id, queue, tx_descriptors, socket,
                                     &info.default_txconf);
        if (ret != 0) {
            error = "cannot set up TX queue " + std::to_string(queue) + ": " + describe(ret);
            return false;
        }
    }
    ret = rte_eth_dev_start(port_id);
    if (ret != 0) {
        error = "cannot start: " + describe(ret);
        return false;
    }
    // Needed for IPv6 multicast (neighbor solicitations) on most devices; a
    // device that refuses still works for unicast.
    rte_eth_promiscuous_enable(port_id);
    return true;
}

void close_port(Port &port) {
    if (port.has_exception_path) {
        rte_eth_dev_stop(port.exception_port_id);
        rte_eth_dev_close(port.exception_port_id);
        port.has_exception_path = false;
    }
    rte_eth_dev_stop(port.port_id);
    rte_eth_dev_close(port.port_id);
}

} // namespace sluice::dataplane
