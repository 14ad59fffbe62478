#include "dataplane/exception_path.h"

#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_bus_vdev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sluice::dataplane {

namespace {

// TAP queues see only the kernel's own traffic: small rings suffice.
constexpr unsigned tap_descriptors = 512;

struct AddressRequest {
    nlmsghdr header;
    ifaddrmsg message;
    char attributes[64];
};

void append_attribute(AddressRequest &request, uint16_t type, const void *data, size_t length) {
    auto *attribute = reinterpret_cast<rtattr *>(reinterpret_cast<char *>(&request) +
                                                  NLMSG_ALIGN(request.header.nlmsg_len));
    attribute->rta_type = type;
    attribute->rta_len = uint16_t(RTA_LENGTH(length));
    std::memcpy(RTA_DATA(attribute), data, length);
    request.header.nlmsg_len = NLMSG_ALIGN(request.header.nlmsg_len) + RTA_ALIGN(attribute->rta_len);
}

} // namespace

bool add_kernel_address(const std::string &interface, const InterfaceAddress &address,
                        std::string &error) {
    const unsigned index = if_nametoindex(interface.c_str());
    if (index == 0) {
        error = "no kernel interface " + interface + ": " + std::strerror(errno);
        return false;
    }
    AddressRequest request{};
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
    request.header.nlmsg_type = RTM_NEWADDR;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    request.header.nlmsg_seq = 1;
    const bool v4 = address.address.is_v4();
    request.message.ifa_family = v4 ? AF_INET : AF_INET6;
    request.message.ifa_prefixlen = address.prefix_length;
    request.message.ifa_flags = v4 ? 0 : IFA_F_NODAD;
    request.message.ifa_scope = RT_SCOPE_UNIVERSE;
    request.message.ifa_index = index;
    const size_t length = v4 ? 4 : 16;
    append_attribute(request, IFA_LOCAL, address.address.bytes.data(), length);
    append_attribute(request, IFA_ADDRESS, address.address.bytes.data(), length);

    const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) {
        error = std::string("cannot open rtnetlink: ") + std::strerror(errno);
        return false;
    }
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    bool ok = sendto(fd, &request, request.header.nlmsg_len, 0,
                     reinterpret_cast<sockaddr *>(&kernel), sizeof kernel) >= 0;
    char reply[4096];
    const ssize_t received = ok ? recv(fd, reply, sizeof reply, 0) : -1;
    int status = errno;
    if (received >= ssize_t(NLMSG_LENGTH(sizeof(nlmsgerr)))) {
        auto *header = reinterpret_cast<nlmsghdr *>(reply);
        auto *ack = static_cast<nlmsgerr *>(NLMSG_DATA(header));
        status = header->nlmsg_type == NLMSG_ERROR ? -ack->error : EPROTO;
    }
    close(fd);
    if (status != 0 || received < 0) {
        error = "cannot add " + address.to_string() + " to " + interface + ": " +
                std::strerror(status ? status : EPROTO);
        return false;
    }
    return true;
}

bool open_exception_path(Port &port, const QueueSetup &setup,
                         const std::vector<InterfaceAddress> &addresses, rte_mempool *pool,
                         std::string &error) {
    // vdev names pick the driver by prefix: "net_tap_<port>" is a net_tap.
    const std::string name = "net_tap_" + port.name;
    const std::string args = "iface=" + port.exception_tap + ",mac=" + port.mac.to_string();
    int ret = rte_vdev_init(name.c_str(), args.c_str());
    if (ret != 0) {
        error = "cannot create TAP " + port.exception_tap + ": " + rte_strerror(-ret);
        return false;
    }
    uint16_t tap_port;
    if (!find_port(name, tap_port, error))
        return false;
    // Before the link comes up: no duplicate address detection on the TAP's
    // link-local address, or the kernel could not send neighbour
    // solicitations for a second or two (the port's own addresses are the
    // gateway's to defend, and the worker answers for them).
    if (FILE *dad = std::fopen(("/proc/sys/net/ipv6/conf/" + port.exception_tap + "/accept_dad").c_str(), "w")) {
        std::fputs("0", dad);
        std::fclose(dad);
    }

    QueueSetup tap_setup = setup;
    tap_setup.rx_descriptors = tap_setup.tx_descriptors = tap_descriptors;
    tap_setup.rss = false;  // the kernel spreads its TX over the TAP's queues itself
    if (!start_port(tap_port, tap_setup, pool, error)) {
        error = "TAP " + port.exception_tap + ": " + error;
        rte_eth_dev_close(tap_port);
        return false;
    }
    rte_eth_dev_set_link_up(tap_port);
    port.has_exception_path = true;
    port.exception_port_id = tap_port;
    for (const InterfaceAddress &address : addresses)
        if (!add_kernel_address(port.exception_tap, address, error))
            return false;
    return true;
}

} // namespace sluice::dataplane
