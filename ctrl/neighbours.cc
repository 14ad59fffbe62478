#include "ctrl/neighbours.h"

#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sluice::ctrl {

namespace {

struct NeighbourRequest {
    nlmsghdr header;
    ndmsg message;
    char attributes[32];
};

} // namespace

NeighbourWatcher::NeighbourWatcher() {
    socket_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (socket_ < 0)
        throw std::runtime_error(std::string("cannot open rtnetlink: ") + std::strerror(errno));
}

NeighbourWatcher::~NeighbourWatcher() {
    if (socket_ >= 0)
        ::close(socket_);
}

void NeighbourWatcher::request_resolution(unsigned interface_index, const IpAddress &address) {
    NeighbourRequest request{};
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(ndmsg));
    request.header.nlmsg_type = RTM_NEWNEIGH;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
    request.header.nlmsg_seq = ++sequence_;
    request.message.ndm_family = address.is_v4() ? AF_INET : AF_INET6;
    request.message.ndm_ifindex = int(interface_index);
    // NTF_USE: "as if a packet used it": the kernel resolves an unknown
    // neighbour and re-probes a stale one, without changing a known MAC.
    request.message.ndm_flags = NTF_USE;
    request.message.ndm_state = NUD_NONE;
    auto *attribute = reinterpret_cast<rtattr *>(reinterpret_cast<char *>(&request) +
                                                  NLMSG_ALIGN(request.header.nlmsg_len));
    const size_t length = address.is_v4() ? 4 : 16;
    attribute->rta_type = NDA_DST;
    attribute->rta_len = uint16_t(RTA_LENGTH(length));
    std::memcpy(RTA_DATA(attribute), address.bytes.data(), length);
    request.header.nlmsg_len = NLMSG_ALIGN(request.header.nlmsg_len) + RTA_ALIGN(attribute->rta_len);
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    // Best effort: a request that fails is made again at the next refresh.
    (void)::sendto(socket_, &request, request.header.nlmsg_len, 0,
                   reinterpret_cast<sockaddr *>(&kernel), sizeof kernel);
}

std::map<NeighbourKey, MacAddress> NeighbourWatcher::dump(
    const std::map<unsigned, std::string> &interfaces) {
    std::map<NeighbourKey, MacAddress> found;
    // Drop whatever answers the resolution requests left in the socket.
    char buffer[32768];
    while (::recv(socket_, buffer, sizeof buffer, 0) > 0) {
    }

    struct {
        nlmsghdr header;
        ndmsg message;
    } request{};
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(ndmsg));
    request.header.nlmsg_type = RTM_GETNEIGH;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request.header.nlmsg_seq = ++sequence_;
    request.message.ndm_family = AF_UNSPEC;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(socket_, &request, request.header.nlmsg_len, 0,
                 reinterpret_cast<sockaddr *>(&kernel), sizeof kernel) < 0)
        return found;

    for (int idle_polls = 0; idle_polls < 1000;) {
        const ssize_t received = ::recv(socket_, buffer, sizeof buffer, 0);
        if (received < 0 && (errno == EAGAIN || errno == EINTR)) {
            ++idle_polls;
            ::usleep(100);
            continue;
        }
        if (received <= 0)
            return found;
        size_t remaining = size_t(received);
        for (auto *header = reinterpret_cast<nlmsghdr *>(buffer); NLMSG_OK(header, remaining);
             header = NLMSG_NEXT(header, remaining)) {
            if (header->nlmsg_seq != sequence_)
                continue;
            if (header->nlmsg_type == NLMSG_DONE || header->nlmsg_type == NLMSG_ERROR)
                return found;
            if (header->nlmsg_type != RTM_NEWNEIGH)
                continue;
            const auto *message = static_cast<const ndmsg *>(NLMSG_DATA(header));
            const auto interface = interfaces.find(unsigned(message->ndm_ifindex));
            const bool usable = message->ndm_state &
                                (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT);
            if (interface == interfaces.end() || !usable)
                continue;
            const uint8_t *destination = nullptr, *link_layer = nullptr;
            size_t destination_length = 0, link_layer_length = 0;
            int attributes_length = int(RTM_PAYLOAD(header));
            for (auto *attribute = RTM_RTA(message); RTA_OK(attribute, attributes_length);
                 attribute = RTA_NEXT(attribute, attributes_length)) {
                if (attribute->rta_type == NDA_DST) {
                    destination = static_cast<const uint8_t *>(RTA_DATA(attribute));
                    destination_length = RTA_PAYLOAD(attribute);
                } else if (attribute->rta_type == NDA_LLADDR) {
                    link_layer = static_cast<const uint8_t *>(RTA_DATA(attribute));
                    link_layer_length = RTA_PAYLOAD(attribute);
                }
            }
            if (!destination || !link_layer || link_layer_length != 6)
                continue;
            IpAddress address;
            if (message->ndm_family == AF_INET && destination_length == 4) {
                uint32_t be;
                std::memcpy(&be, destination, 4);
                address = IpAddress::from_v4_be(be);
            } else if (message->ndm_family == AF_INET6 && destination_length == 16) {
                address = IpAddress::from_v6(destination);
            } else {
                continue;
            }
            MacAddress mac;
            std::memcpy(mac.bytes.data(), link_layer, 6);
            found[{interface->second, address.to_string()}] = mac;
        }
    }
    return found;
}

std::map<NeighbourKey, MacAddress> NeighbourWatcher::refresh(
    const std::vector<WantedNeighbour> &wanted) {
    std::map<unsigned, std::string> interfaces;
    for (const WantedNeighbour &neighbour : wanted) {
        const unsigned index = if_nametoindex(neighbour.interface.c_str());
        if (index == 0)
            continue;
        interfaces[index] = neighbour.interface;
        request_resolution(index, neighbour.address);
    }
    // The kernel knows more neighbours than we asked about: keep ours.
    std::map<NeighbourKey, MacAddress> found = dump(interfaces);
    std::map<NeighbourKey, MacAddress> ours;
    for (const WantedNeighbour &neighbour : wanted) {
        const NeighbourKey key{neighbour.interface, neighbour.address.to_string()};
        if (const auto it = found.find(key); it != found.end())
            ours.insert(*it);
    }
    return ours;
}

} // namespace sluice::ctrl
