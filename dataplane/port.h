// Ports: DPDK ethdevs opened from their device strings, one RX and one TX
// queue per worker, and the mempools that feed them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/local_reply.h"
#include "dataplane/net_addr.h"

struct rte_mempool;

namespace sluice::dataplane {

struct QueueSetup {
    uint16_t queues = 1;           // RX and TX queues: one per worker
    unsigned rx_descriptors = 1024;
    unsigned tx_descriptors = 1024;
    unsigned mtu = 1500;
    bool rss = true;               // spread RX over the queues when the device can
};

struct Port {
    std::string name;
    uint16_t port_id = 0;
    int socket = 0;
    MacAddress mac;
    LocalAddresses local;

    bool has_exception_path = false;
    uint16_t exception_port_id = 0;
    std::string exception_tap;
};

// Bytes of packet data an mbuf needs for a frame of `mtu` (with two VLAN tags).
uint16_t mbuf_data_room(unsigned mtu);

// One pool per NUMA socket: rte_pktmbuf_pool_create with a per-lcore cache.
rte_mempool *create_mempool(int socket, unsigned mbufs, uint16_t data_room, std::string &error);

// The port id of a device the EAL probed, by its name ("0000:03:00.0",
// "net_af_packet0").
bool find_port(const std::string &device_name, uint16_t &port_id, std::string &error);

int port_socket(uint16_t port_id);
MacAddress port_mac(uint16_t port_id);

// Configures queues, MTU and offloads, then starts the port in promiscuous mode.
bool start_port(uint16_t port_id, const QueueSetup &setup, rte_mempool *pool,
                std::string &error);

// Stops and closes the port (and its exception path, if any).
void close_port(Port &port);

} // namespace sluice::dataplane
