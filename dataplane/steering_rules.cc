#include "dataplane/steering_rules.h"

#include <rte_byteorder.h>
#include <rte_flow.h>

#include <cstring>

namespace sluice::dataplane {

namespace {

// One rule: ETH / IPv4 or IPv6 (destination) / TCP or UDP (destination port
// under a mask) -> QUEUE.
rte_flow *create_rule(uint16_t port_id, const IpAddress &address, uint8_t protocol,
                      const lb::MaskedPort &port, uint16_t queue, rte_flow_error &failure) {
    rte_flow_attr attr{};
    attr.ingress = 1;
    rte_flow_item pattern[4] = {};
    pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;

    rte_flow_item_ipv4 ipv4_spec{}, ipv4_mask{};
    rte_flow_item_ipv6 ipv6_spec{}, ipv6_mask{};
    if (address.is_v4()) {
        std::memcpy(&ipv4_spec.hdr.dst_addr, address.bytes.data(), 4);
        ipv4_mask.hdr.dst_addr = UINT32_MAX;
        ipv4_spec.hdr.next_proto_id = protocol;
        ipv4_mask.hdr.next_proto_id = UINT8_MAX;
        pattern[1] = {RTE_FLOW_ITEM_TYPE_IPV4, &ipv4_spec, nullptr, &ipv4_mask};
    } else {
        std::memcpy(ipv6_spec.hdr.dst_addr, address.bytes.data(), 16);
        std::memset(ipv6_mask.hdr.dst_addr, 0xff, 16);
        ipv6_spec.hdr.proto = protocol;
        ipv6_mask.hdr.proto = UINT8_MAX;
        pattern[1] = {RTE_FLOW_ITEM_TYPE_IPV6, &ipv6_spec, nullptr, &ipv6_mask};
    }
    rte_flow_item_tcp tcp_spec{}, tcp_mask{};
    rte_flow_item_udp udp_spec{}, udp_mask{};
    if (protocol == IPPROTO_TCP) {
        tcp_spec.hdr.dst_port = rte_cpu_to_be_16(port.value);
        tcp_mask.hdr.dst_port = rte_cpu_to_be_16(port.mask);
        pattern[2] = {RTE_FLOW_ITEM_TYPE_TCP, &tcp_spec, nullptr, &tcp_mask};
    } else {
        udp_spec.hdr.dst_port = rte_cpu_to_be_16(port.value);
        udp_mask.hdr.dst_port = rte_cpu_to_be_16(port.mask);
        pattern[2] = {RTE_FLOW_ITEM_TYPE_UDP, &udp_spec, nullptr, &udp_mask};
    }
    pattern[3].type = RTE_FLOW_ITEM_TYPE_END;

    const rte_flow_action_queue to_queue{queue};
    const rte_flow_action actions[] = {{RTE_FLOW_ACTION_TYPE_QUEUE, &to_queue},
                                       {RTE_FLOW_ACTION_TYPE_END, nullptr}};
    if (rte_flow_validate(port_id, &attr, pattern, actions, &failure) != 0)
        return nullptr;
    return rte_flow_create(port_id, &attr, pattern, actions, &failure);
}

} // namespace

int install_steering_rules(uint16_t port_id, const std::vector<IpAddress> &snat_addresses,
                           const lb::SnatSlices &slices, std::string &error) {
    remove_steering_rules(port_id);
    int rules = 0;
    for (const IpAddress &address : snat_addresses)
        for (const uint8_t protocol : {uint8_t(IPPROTO_TCP), uint8_t(IPPROTO_UDP)})
            for (unsigned worker = 0; worker < slices.workers(); ++worker) {
                const lb::SnatPortRange range = slices.slice(worker);
                for (const lb::MaskedPort &block : lb::port_range_masks(range.first, range.last)) {
                    rte_flow_error failure{};
                    if (!create_rule(port_id, address, protocol, block, uint16_t(worker),
                                     failure)) {
                        error = failure.message ? failure.message : "rule refused";
                        remove_steering_rules(port_id);
                        return -1;
                    }
                    ++rules;
                }
            }
    return rules;
}

void remove_steering_rules(uint16_t port_id) {
    rte_flow_error ignored{};
    rte_flow_flush(port_id, &ignored);
}

} // namespace sluice::dataplane
