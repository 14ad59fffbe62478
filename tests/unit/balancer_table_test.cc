// The balancer as a table, Katran's way: each row is a frame in, the verdict
// expected, and for a forward the exact frame expected out, built from
// scratch with the packet builder (checksums computed afresh). Comparing
// whole frames byte for byte checks every field at once, and proves that the
// balancer's incremental checksum updates (RFC 1624) equal a recomputation.
//
// The outputs are deterministic by construction: every service has one
// backend (so Maglev's pick is known), each row gets a fresh flow table with a
// fixed key and a balancer whose SNAT range is one port (so the fullnat
// source port is known).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "lb/flow_key.h"
#include "lb/l4_balancer.h"
#include "lb/nat.h"
#include "tests/fixtures/balancer_fixture.h"
#include "tests/fixtures/packet_builder.h"

namespace sluice::lb {
namespace {

using namespace sluice::testing;
using Packet = BufferedFrame;

// The lab: port 0 faces the clients, port 1 the backends.
constexpr uint16_t client_side = 0, backend_side = 1;
const MacAddress client_mac = mac("02:00:00:00:00:02");
const MacAddress gw_client_mac = mac("02:00:00:00:01:00");
const MacAddress gw_backend_mac = mac("02:00:00:00:01:01");
const IpAddress gw_client4 = ip("198.18.0.1"), gw_client6 = ip("2001:db8:0:1::1");
const IpAddress gw_backend4 = ip("198.18.1.1"), gw_backend6 = ip("2001:db8:0:2::1");
const IpAddress client4 = ip("198.18.0.2"), client6 = ip("2001:db8:0:1::2");
const IpAddress local4 = ip("198.18.1.100"), local6 = ip("2001:db8:0:2::100");

// One service per mode and family, each with its one backend.
const IpAddress vip_fullnat4 = ip("198.18.10.1"), backend_fullnat4 = ip("198.18.1.11");
const IpAddress vip_fullnat6 = ip("2001:db8:10::1"), backend_fullnat6 = ip("2001:db8:0:2::11");
const IpAddress vip_fullnat_udp = ip("198.18.10.2"), backend_fullnat_udp = ip("198.18.1.12");
const IpAddress vip_nat4 = ip("198.18.10.3"), backend_nat4 = ip("198.18.1.13");
const IpAddress vip_nat6 = ip("2001:db8:10::3"), backend_nat6 = ip("2001:db8:0:2::13");
const IpAddress vip_ipip4 = ip("198.18.10.4"), backend_ipip4 = ip("198.18.1.14");
const IpAddress vip_ipip6 = ip("2001:db8:10::4"), backend_ipip6 = ip("2001:db8:0:2::14");
const IpAddress vip_gue4 = ip("198.18.10.5"), backend_gue4 = ip("198.18.1.15");
const IpAddress vip_gue6 = ip("2001:db8:10::5"), backend_gue6 = ip("2001:db8:0:2::15");
const IpAddress vip_drained = ip("198.18.10.6"), backend_drained = ip("198.18.1.16");
const IpAddress vip_reset = ip("198.18.10.7"), backend_leaving = ip("198.18.1.17"),
                backend_staying = ip("198.18.1.18");
const IpAddress vip_unresolved = ip("198.18.10.8"), backend_unresolved = ip("198.18.1.19");
const IpAddress vip_nat_port = ip("198.18.10.9"), backend_nat_port = ip("198.18.1.20");
constexpr uint16_t backend_port = 8080;  // the nat_port service's backend listens here
// GUE may carry one family inside the other (config_services.cc allows it).
const IpAddress vip_gue_4in6 = ip("198.18.10.10"), backend_gue_4in6 = ip("2001:db8:0:2::16");
const IpAddress vip_gue_6in4 = ip("2001:db8:10::6"), backend_gue_6in4 = ip("198.18.1.21");
// UDP in the modes that keep the client's address or bypass the answers.
const IpAddress vip_nat_udp4 = ip("198.18.10.11"), backend_nat_udp4 = ip("198.18.1.22");
const IpAddress vip_nat_udp6 = ip("2001:db8:10::11"), backend_nat_udp6 = ip("2001:db8:0:2::22");
const IpAddress vip_dsr_udp4 = ip("198.18.10.12"), backend_dsr_udp4 = ip("198.18.1.23");

constexpr uint8_t tcp_protocol = 6, udp_protocol = 17, icmp_protocol = 1, icmpv6_protocol = 58;
constexpr uint8_t syn = 0x02, rst = 0x04, ack = 0x10, syn_ack = 0x12;
constexpr uint16_t snat_port = 20000;  // the balancer's whole SNAT range
constexpr uint16_t gue_port = 6080;
constexpr uint64_t flow_seed = 99;
constexpr uint32_t now = 1000;

// ---------------------------------------------------------------------------
// The snapshot

// `backend_left`: the snapshot a reload publishes once the reset service's
// backend has left it (another one has taken its place).
std::unique_ptr<Snapshot> lab_snapshot(bool backend_left) {
    std::vector<Service> services;
    services.push_back(balanced_service("fullnat4", vip_fullnat4, tcp_protocol, 80, ForwardingMode::fullnat,
                               {backend_fullnat4}));
    services.back().local_addresses = {local4};
    services.push_back(balanced_service("fullnat6", vip_fullnat6, tcp_protocol, 80, ForwardingMode::fullnat,
                               {backend_fullnat6}));
    services.back().local_addresses = {local6};
    services.push_back(balanced_service("fullnat-udp", vip_fullnat_udp, udp_protocol, 53,
                               ForwardingMode::fullnat, {backend_fullnat_udp}));
    services.back().local_addresses = {local4};
    services.push_back(
        balanced_service("nat4", vip_nat4, tcp_protocol, 80, ForwardingMode::nat, {backend_nat4}));
    services.push_back(
        balanced_service("nat6", vip_nat6, tcp_protocol, 80, ForwardingMode::nat, {backend_nat6}));
    services.push_back(
        balanced_service("ipip4", vip_ipip4, tcp_protocol, 80, ForwardingMode::dsr, {backend_ipip4}));
    services.push_back(
        balanced_service("ipip6", vip_ipip6, tcp_protocol, 80, ForwardingMode::dsr, {backend_ipip6}));
    services.push_back(
        balanced_service("gue4", vip_gue4, tcp_protocol, 80, ForwardingMode::dsr, {backend_gue4}));
    services.back().encapsulation = DsrEncapsulation::gue;
    services.back().gue_port = gue_port;
    services.push_back(
        balanced_service("gue6", vip_gue6, tcp_protocol, 80, ForwardingMode::dsr, {backend_gue6}));
    services.back().encapsulation = DsrEncapsulation::gue;
    services.back().gue_port = gue_port;
    services.push_back(balanced_service("drained", vip_drained, tcp_protocol, 80, ForwardingMode::fullnat,
                               {backend_drained}, 0));
    services.back().local_addresses = {local4};
    services.push_back(balanced_service("reset", vip_reset, tcp_protocol, 80, ForwardingMode::fullnat,
                               {backend_left ? backend_staying : backend_leaving}));
    services.back().local_addresses = {local4};
    services.back().removed_backend_flows = RemovedBackendFlows::reset;
    services.push_back(balanced_service("unresolved", vip_unresolved, tcp_protocol, 80,
                               ForwardingMode::fullnat, {backend_unresolved}));
    services.back().local_addresses = {local4};
    services.push_back(balanced_service("nat-port", vip_nat_port, tcp_protocol, 80, ForwardingMode::nat,
                               {backend_nat_port}));
    services.back().backends[0].port_be = uint16_t(backend_port << 8 | backend_port >> 8);
    for (const auto &[name, vip, backend] : {std::tuple{"gue-4in6", vip_gue_4in6, backend_gue_4in6},
                                             std::tuple{"gue-6in4", vip_gue_6in4, backend_gue_6in4}}) {
        services.push_back(balanced_service(name, vip, tcp_protocol, 80, ForwardingMode::dsr, {backend}));
        services.back().encapsulation = DsrEncapsulation::gue;
        services.back().gue_port = gue_port;
    }

    for (const auto &[name, vip, backend] : {std::tuple{"nat-udp4", vip_nat_udp4, backend_nat_udp4},
                                             std::tuple{"nat-udp6", vip_nat_udp6, backend_nat_udp6}})
        services.push_back(balanced_service(name, vip, udp_protocol, 53, ForwardingMode::nat, {backend}));
    services.push_back(balanced_service("dsr-udp4", vip_dsr_udp4, udp_protocol, 53, ForwardingMode::dsr,
                                        {backend_dsr_udp4}));

    std::vector<EgressPort> ports(2);
    ports[client_side].mac = gw_client_mac;
    ports[client_side].ipv4 = gw_client4;
    ports[client_side].ipv6 = gw_client6;
    ports[backend_side].mac = gw_backend_mac;
    ports[backend_side].ipv4 = gw_backend4;
    ports[backend_side].ipv6 = gw_backend6;
    for (EgressPort &port : ports)
        port.has_ipv4 = port.has_ipv6 = true;

    std::vector<std::pair<IpAddress, NextHop>> next_hops;
    for (const IpAddress &backend :
         {backend_fullnat4, backend_fullnat6, backend_fullnat_udp, backend_nat4, backend_nat6,
          backend_ipip4, backend_ipip6, backend_gue4, backend_gue6, backend_drained,
          backend_leaving, backend_staying, backend_unresolved, backend_nat_port,
          backend_gue_4in6, backend_gue_6in4, backend_nat_udp4, backend_nat_udp6,
          backend_dsr_udp4})
        next_hops.emplace_back(backend, NextHop{backend_side, !(backend == backend_unresolved),
                                                backend_mac(backend)});
    return std::make_unique<Snapshot>(std::move(services), std::move(ports), std::move(next_hops),
                                      7, backend_left ? 2 : 1);
}

// ---------------------------------------------------------------------------
// Frames

// An IP packet of the family of `src` in an Ethernet frame.
Bytes ip_frame(const MacAddress &dst_mac, const MacAddress &src_mac, const IpAddress &src,
               const IpAddress &dst, uint8_t protocol, const Bytes &l4, uint8_t ttl = 64) {
    return src.is_v4() ? concat({ethernet(dst_mac, src_mac, 0x0800),
                                 ipv4(src, dst, protocol, l4.size(), {}, 0, ttl), l4})
                       : concat({ethernet(dst_mac, src_mac, 0x86dd),
                                 ipv6(src, dst, protocol, l4.size(), ttl), l4});
}

Bytes tcp_segment(const IpAddress &src, const IpAddress &dst, uint16_t sport, uint16_t dport,
                  uint8_t flags, const Bytes &payload = {}) {
    Bytes segment = tcp(sport, dport, flags);
    append(segment, payload);
    return with_transport_checksum(src, dst, tcp_protocol, segment);
}

Bytes udp_datagram(const IpAddress &src, const IpAddress &dst, uint16_t sport, uint16_t dport,
                   const Bytes &payload) {
    Bytes datagram = udp(sport, dport, payload.size());
    append(datagram, payload);
    return with_transport_checksum(src, dst, udp_protocol, datagram);
}

// A TCP segment from the client to a VIP, as it arrives on the client side.
Bytes from_client(const IpAddress &client, const IpAddress &vip, uint8_t flags,
                  uint8_t ttl = 64, uint16_t dport = 80) {
    return ip_frame(gw_client_mac, client_mac, client, vip, tcp_protocol,
                    tcp_segment(client, vip, 40000, dport, flags), ttl);
}

// A TCP segment from a backend, as it arrives on the backend side.
Bytes from_backend(const IpAddress &backend, const IpAddress &to, uint16_t to_port,
                   uint8_t flags, uint8_t ttl = 64) {
    return ip_frame(gw_backend_mac, backend_mac(backend), backend, to, tcp_protocol,
                    tcp_segment(backend, to, 80, to_port, flags), ttl);
}

// What a fullnat or nat rewrite should leave toward a backend: the new tuple,
// TTL one less, the gateway's backend-side MAC to the backend's.
Bytes to_backend(const IpAddress &src, uint16_t sport, const IpAddress &backend, uint8_t flags) {
    return ip_frame(backend_mac(backend), gw_backend_mac, src, backend, tcp_protocol,
                    tcp_segment(src, backend, sport, 80, flags), 63);
}

// What should go back to the client: from the VIP, to the client's MAC.
Bytes to_client(const IpAddress &vip, const IpAddress &client, uint8_t flags) {
    return ip_frame(client_mac, gw_client_mac, vip, client, tcp_protocol,
                    tcp_segment(vip, client, 80, 40000, flags), 63);
}

// An IPv4 header as the gateway writes its own (DSR outer headers, RSTs,
// ICMP errors): identification 0, flags as given.
Bytes gateway_ipv4(const IpAddress &src, const IpAddress &dst, uint8_t protocol,
                   size_t payload_length, uint16_t flags, uint8_t ttl = 64) {
    Bytes header = ipv4(src, dst, protocol, payload_length, {}, flags, ttl);
    put16(header, 4, 0);
    refresh_ipv4_checksum(header, 0);
    return header;
}

// `header` (an IPv4 header built above) with TOS `tos`.
Bytes with_tos(Bytes header, uint8_t tos) {
    header[1] = tos;
    refresh_ipv4_checksum(header, 0);
    return header;
}

// `header` (an IPv6 header built above) with a traffic class and flow label.
Bytes with_traffic_class(Bytes header, uint8_t traffic_class, uint32_t flow_label) {
    header[0] = uint8_t(0x60 | traffic_class >> 4);
    header[1] = uint8_t(traffic_class << 4 | (flow_label >> 16 & 0x0f));
    header[2] = uint8_t(flow_label >> 8);
    header[3] = uint8_t(flow_label);
    return header;
}

// The first `length` bytes of the IP packet in `frame` (an ICMP error's quote).
Bytes ip_quote(const Bytes &frame, size_t length) {
    Bytes quote(length);
    std::memcpy(quote.data(), frame.data() + 14, length);
    return quote;
}

// The source port GUE gives a flow (l4_balancer.cc): 0xc000 | the low 14
// bits of the flow table's hash of the inner tuple. It depends on the
// table's key, so it is computed here with the same keyed hash from the
// same seed (not read back from the output).
uint16_t gue_source_port(const Bytes &input) {
    ParsedPacket parsed;
    if (parse_packet(input.data(), uint32_t(input.size()), parsed) != DropReason::none)
        return 0;
    const uint64_t hash = flow_hash(flow_key_of(input.data(), parsed), HashKey::from_seed(flow_seed));
    return uint16_t(0xc000 | (hash & 0x3fff));
}

// ---------------------------------------------------------------------------
// The table

struct Sent {
    Bytes frame;
    uint16_t ingress = client_side;
};

struct Row {
    const char *description;
    // Run first, in order, each expected to be forwarded (the SYN that
    // creates the flow, the first fragment of a datagram).
    std::vector<Sent> setup;
    // The reset service's backend leaves between the setup and the input.
    bool backend_leaves_after_setup = false;
    Bytes input;
    uint16_t ingress = client_side;
    BalanceVerdict verdict = BalanceVerdict::forward;
    DropReason reason = DropReason::none;
    // For a forward: where it leaves and exactly what. For not_balanced,
    // await_next_hop and unknown_flow the frame must be left as it came:
    // someone else (the kernel, the worker's retry, another worker) handles it.
    uint16_t egress = backend_side;
    Bytes expected;
};

// Rows name only the fields they set; the rest keep their defaults, which is
// the point of designated initializers. g++ 12 warns about every omitted
// member even so (clang and later g++ do not).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
std::vector<Row> rows() {
    std::vector<Row> table;

    // --- fullnat: to the backend from a SNAT address and port -------------
    table.push_back({
        .description = "fullnat IPv4 TCP SYN goes to the backend from the SNAT address",
        .input = from_client(client4, vip_fullnat4, syn),
        .expected = to_backend(local4, snat_port, backend_fullnat4, syn),
    });
    table.push_back({
        .description = "fullnat IPv6 TCP SYN goes to the backend from the SNAT address",
        .input = from_client(client6, vip_fullnat6, syn),
        .expected = to_backend(local6, snat_port, backend_fullnat6, syn),
    });
    {
        const Bytes query(12, 0x5a);
        table.push_back({
            .description = "fullnat IPv4 UDP datagram goes to the backend from the SNAT address",
            .input = ip_frame(gw_client_mac, client_mac, client4, vip_fullnat_udp, udp_protocol,
                              udp_datagram(client4, vip_fullnat_udp, 5353, 53, query)),
            .expected = ip_frame(backend_mac(backend_fullnat_udp), gw_backend_mac, local4,
                                 backend_fullnat_udp, udp_protocol,
                                 udp_datagram(local4, backend_fullnat_udp, snat_port, 53, query),
                                 63),
        });
        // RFC 768: zero means "no checksum"; it must stay zero, not become
        // a checksum of the rewritten datagram.
        Bytes plain = udp(5353, 53, query.size());
        append(plain, query);
        Bytes translated = udp(snat_port, 53, query.size());
        append(translated, query);
        table.push_back({
            .description = "fullnat IPv4 UDP datagram without checksum keeps it zero",
            .input = ip_frame(gw_client_mac, client_mac, client4, vip_fullnat_udp, udp_protocol,
                              plain),
            .expected = ip_frame(backend_mac(backend_fullnat_udp), gw_backend_mac, local4,
                                 backend_fullnat_udp, udp_protocol, translated, 63),
        });
    }
    {
        // A payload chosen so that the rewritten datagram's checksum
        // computes to zero, which RFC 768 sends as all ones: the
        // incremental update must not leave 0 ("no checksum").
        Bytes payload(2);
        for (uint32_t value = 0; value <= 0xffff; ++value) {
            put16(payload, 0, uint16_t(value));
            Bytes datagram = udp(snat_port, 53, payload.size());
            append(datagram, payload);
            const uint64_t sum = checksum_add(
                pseudo_header_sum(local4, backend_fullnat_udp, uint32_t(datagram.size()),
                                  udp_protocol),
                datagram.data(), datagram.size());
            if (checksum_finish(sum) == 0)
                break;
        }
        const Bytes translated = udp_datagram(local4, backend_fullnat_udp, snat_port, 53, payload);
        if (translated[6] != 0xff || translated[7] != 0xff)
            ADD_FAILURE() << "no 2-byte payload makes the rewritten UDP checksum zero";
        table.push_back({
            .description = "fullnat IPv4 UDP whose rewritten checksum computes to zero sends "
                           "all ones",
            .input = ip_frame(gw_client_mac, client_mac, client4, vip_fullnat_udp, udp_protocol,
                              udp_datagram(client4, vip_fullnat_udp, 5353, 53, payload)),
            .expected = ip_frame(backend_mac(backend_fullnat_udp), gw_backend_mac, local4,
                                 backend_fullnat_udp, udp_protocol, translated, 63),
        });
    }
    table.push_back({
        .description = "fullnat IPv4 client's ACK follows the flow its SYN made",
        .setup = {{from_client(client4, vip_fullnat4, syn)}},
        .input = from_client(client4, vip_fullnat4, ack),
        .expected = to_backend(local4, snat_port, backend_fullnat4, ack),
    });

    // --- fullnat: the backend's answers back to the client ----------------
    table.push_back({
        .description = "fullnat IPv4 backend's SYN-ACK goes back to the client from the VIP",
        .setup = {{from_client(client4, vip_fullnat4, syn)}},
        .input = from_backend(backend_fullnat4, local4, snat_port, syn_ack),
        .ingress = backend_side,
        .egress = client_side,
        .expected = to_client(vip_fullnat4, client4, syn_ack),
    });
    table.push_back({
        .description = "fullnat IPv6 backend's SYN-ACK goes back to the client from the VIP",
        .setup = {{from_client(client6, vip_fullnat6, syn)}},
        .input = from_backend(backend_fullnat6, local6, snat_port, syn_ack),
        .ingress = backend_side,
        .egress = client_side,
        .expected = to_client(vip_fullnat6, client6, syn_ack),
    });

    // --- nat: the client's address is kept ---------------------------------
    table.push_back({
        .description = "nat IPv4 SYN goes to the backend from the client's own address",
        .input = from_client(client4, vip_nat4, syn),
        .expected = to_backend(client4, 40000, backend_nat4, syn),
    });
    table.push_back({
        .description = "nat IPv6 SYN goes to the backend from the client's own address",
        .input = from_client(client6, vip_nat6, syn),
        .expected = to_backend(client6, 40000, backend_nat6, syn),
    });
    table.push_back({
        .description = "nat IPv4 backend's SYN-ACK goes back to the client from the VIP",
        .setup = {{from_client(client4, vip_nat4, syn)}},
        .input = from_backend(backend_nat4, client4, 40000, syn_ack),
        .ingress = backend_side,
        .egress = client_side,
        .expected = to_client(vip_nat4, client4, syn_ack),
    });
    table.push_back({
        .description = "nat IPv6 backend's SYN-ACK goes back to the client from the VIP",
        .setup = {{from_client(client6, vip_nat6, syn)}},
        .input = from_backend(backend_nat6, client6, 40000, syn_ack),
        .ingress = backend_side,
        .egress = client_side,
        .expected = to_client(vip_nat6, client6, syn_ack),
    });

    table.push_back({
        .description = "nat to a backend on another port: the destination port follows",
        .input = from_client(client4, vip_nat_port, syn),
        .expected = ip_frame(backend_mac(backend_nat_port), gw_backend_mac, client4,
                             backend_nat_port, tcp_protocol,
                             tcp_segment(client4, backend_nat_port, 40000, backend_port, syn), 63),
    });
    table.push_back({
        .description = "nat answer from a backend on another port: from the VIP's port",
        .setup = {{from_client(client4, vip_nat_port, syn)}},
        .input = ip_frame(gw_backend_mac, backend_mac(backend_nat_port), backend_nat_port, client4,
                          tcp_protocol,
                          tcp_segment(backend_nat_port, client4, backend_port, 40000, syn_ack)),
        .ingress = backend_side,
        .egress = client_side,
        .expected = to_client(vip_nat_port, client4, syn_ack),
    });

    // --- nat and dsr over UDP ---------------------------------------------
    for (const auto &[family, vip, backend, client] :
         {std::tuple{"IPv4", vip_nat_udp4, backend_nat_udp4, client4},
          std::tuple{"IPv6", vip_nat_udp6, backend_nat_udp6, client6}}) {
        const Bytes query(12, 0x5a), answer(20, 0xa5);
        const Bytes from_client_frame = ip_frame(gw_client_mac, client_mac, client, vip, udp_protocol,
                                                 udp_datagram(client, vip, 5353, 53, query));
        table.push_back({
            .description = family == std::string("IPv4")
                               ? "nat IPv4 UDP datagram goes to the backend from the client's address"
                               : "nat IPv6 UDP datagram goes to the backend from the client's address",
            .input = from_client_frame,
            .expected = ip_frame(backend_mac(backend), gw_backend_mac, client, backend, udp_protocol,
                                 udp_datagram(client, backend, 5353, 53, query), 63),
        });
        table.push_back({
            .description = family == std::string("IPv4")
                               ? "nat IPv4 UDP answer goes back to the client from the VIP"
                               : "nat IPv6 UDP answer goes back to the client from the VIP",
            .setup = {{from_client_frame}},
            .input = ip_frame(gw_backend_mac, backend_mac(backend), backend, client, udp_protocol,
                              udp_datagram(backend, client, 53, 5353, answer)),
            .ingress = backend_side,
            .egress = client_side,
            .expected = ip_frame(client_mac, gw_client_mac, vip, client, udp_protocol,
                                 udp_datagram(vip, client, 53, 5353, answer), 63),
        });
    }
    {
        const Bytes query(12, 0x5a);
        const Bytes datagram = udp_datagram(client4, vip_dsr_udp4, 5353, 53, query);
        const Bytes inner = concat(
            {ipv4(client4, vip_dsr_udp4, udp_protocol, datagram.size(), {}, 0, 63), datagram});
        table.push_back({
            .description = "dsr IP-in-IP 4in4 UDP datagram goes to the backend encapsulated",
            .input = ip_frame(gw_client_mac, client_mac, client4, vip_dsr_udp4, udp_protocol, datagram),
            .expected = concat({ethernet(backend_mac(backend_dsr_udp4), gw_backend_mac, 0x0800),
                                gateway_ipv4(gw_backend4, backend_dsr_udp4, 4, inner.size(), 0),
                                inner}),
        });
    }

    // --- dsr: the client's packet, TTL one less, inside an outer header -----
    // encap.cc: outer TTL 64, TOS/traffic class and flow label copied from
    // the inner header (0 here), IPv4 identification 0 and DF copied (clear
    // here), source the egress port's address of the backend's family.
    {
        const Bytes input = from_client(client4, vip_ipip4, syn);
        const Bytes inner = concat({ipv4(client4, vip_ipip4, tcp_protocol, 20, {}, 0, 63),
                                    tcp_segment(client4, vip_ipip4, 40000, 80, syn)});
        table.push_back({
            .description = "dsr IP-in-IP 4in4 SYN goes to the backend encapsulated",
            .input = input,
            .expected = concat({ethernet(backend_mac(backend_ipip4), gw_backend_mac, 0x0800),
                                gateway_ipv4(gw_backend4, backend_ipip4, 4, inner.size(), 0),
                                inner}),
        });
    }
    {
        const Bytes inner = concat({ipv6(client6, vip_ipip6, tcp_protocol, 20, 63),
                                    tcp_segment(client6, vip_ipip6, 40000, 80, syn)});
        table.push_back({
            .description = "dsr IP-in-IP 6in6 SYN goes to the backend encapsulated",
            .input = from_client(client6, vip_ipip6, syn),
            .expected = concat({ethernet(backend_mac(backend_ipip6), gw_backend_mac, 0x86dd),
                                ipv6(gw_backend6, backend_ipip6, 41, inner.size(), 64), inner}),
        });
    }
    {
        // DSCP and ECN (RFC 6040 4.1 normal mode) and DF go outward.
        const Bytes segment = tcp_segment(client4, vip_ipip4, 40000, 80, syn);
        const Bytes inner = concat(
            {with_tos(ipv4(client4, vip_ipip4, tcp_protocol, 20, {}, 0x4000, 63), 0xb9), segment});
        table.push_back({
            .description = "dsr IP-in-IP 4in4 copies TOS and DF to the outer header",
            .input = concat({ethernet(gw_client_mac, client_mac, 0x0800),
                             with_tos(ipv4(client4, vip_ipip4, tcp_protocol, 20, {}, 0x4000), 0xb9),
                             segment}),
            .expected = concat(
                {ethernet(backend_mac(backend_ipip4), gw_backend_mac, 0x0800),
                 with_tos(gateway_ipv4(gw_backend4, backend_ipip4, 4, inner.size(), 0x4000), 0xb9),
                 inner}),
        });
    }
    {
        // The flow label too (RFC 6438), so the flow keeps one ECMP path.
        const Bytes segment = tcp_segment(client6, vip_ipip6, 40000, 80, syn);
        const Bytes inner = concat(
            {with_traffic_class(ipv6(client6, vip_ipip6, tcp_protocol, 20, 63), 0xb9, 0x12345),
             segment});
        table.push_back({
            .description = "dsr IP-in-IP 6in6 copies traffic class and flow label outward",
            .input = concat({ethernet(gw_client_mac, client_mac, 0x86dd),
                             with_traffic_class(ipv6(client6, vip_ipip6, tcp_protocol, 20), 0xb9,
                                                0x12345),
                             segment}),
            .expected = concat({ethernet(backend_mac(backend_ipip6), gw_backend_mac, 0x86dd),
                                with_traffic_class(ipv6(gw_backend6, backend_ipip6, 41,
                                                        inner.size(), 64),
                                                   0xb9, 0x12345),
                                inner}),
        });
    }
    {
        // GUE variant 0: version 0, C 0, Hlen 0, proto 4 (or 41), flags 0.
        const Bytes input = from_client(client4, vip_gue4, syn);
        const Bytes inner = concat({ipv4(client4, vip_gue4, tcp_protocol, 20, {}, 0, 63),
                                    tcp_segment(client4, vip_gue4, 40000, 80, syn)});
        // Over IPv4 the outer UDP checksum is zero (none, RFC 768).
        Bytes outer_udp = concat({udp(gue_source_port(input), gue_port, 4 + inner.size()),
                                  Bytes{0, 4, 0, 0}});
        table.push_back({
            .description = "dsr GUE over IPv4 SYN goes to the backend encapsulated",
            .input = input,
            .expected = concat({ethernet(backend_mac(backend_gue4), gw_backend_mac, 0x0800),
                                gateway_ipv4(gw_backend4, backend_gue4, udp_protocol,
                                             outer_udp.size() + inner.size(), 0),
                                outer_udp, inner}),
        });
    }
    {
        const Bytes input = from_client(client6, vip_gue6, syn);
        const Bytes inner = concat({ipv6(client6, vip_gue6, tcp_protocol, 20, 63),
                                    tcp_segment(client6, vip_gue6, 40000, 80, syn)});
        // Over IPv6 the outer UDP checksum is required (RFC 8200 8.1).
        const Bytes outer_udp = with_transport_checksum(
            gw_backend6, backend_gue6, udp_protocol,
            concat({udp(gue_source_port(input), gue_port, 4 + inner.size()), Bytes{0, 41, 0, 0},
                    inner}));
        table.push_back({
            .description = "dsr GUE over IPv6 SYN goes to the backend encapsulated",
            .input = input,
            .expected = concat({ethernet(backend_mac(backend_gue6), gw_backend_mac, 0x86dd),
                                ipv6(gw_backend6, backend_gue6, udp_protocol, outer_udp.size(), 64),
                                outer_udp}),
        });
    }

    // GUE may carry a packet to a backend of the other family: the flow's
    // backend-side tuple must take the backend's family, or its next hop is
    // looked up under the client's (a bug these rows found).
    {
        const Bytes input = from_client(client4, vip_gue_4in6, syn);
        const Bytes inner = concat({ipv4(client4, vip_gue_4in6, tcp_protocol, 20, {}, 0, 63),
                                    tcp_segment(client4, vip_gue_4in6, 40000, 80, syn)});
        const Bytes outer_udp = with_transport_checksum(
            gw_backend6, backend_gue_4in6, udp_protocol,
            concat({udp(gue_source_port(input), gue_port, 4 + inner.size()), Bytes{0, 4, 0, 0},
                    inner}));
        table.push_back({
            .description = "dsr GUE IPv4 in IPv6 to a backend of the other family",
            .input = input,
            .expected = concat({ethernet(backend_mac(backend_gue_4in6), gw_backend_mac, 0x86dd),
                                ipv6(gw_backend6, backend_gue_4in6, udp_protocol, outer_udp.size(),
                                     64),
                                outer_udp}),
        });
    }
    {
        const Bytes input = from_client(client6, vip_gue_6in4, syn);
        const Bytes inner = concat({ipv6(client6, vip_gue_6in4, tcp_protocol, 20, 63),
                                    tcp_segment(client6, vip_gue_6in4, 40000, 80, syn)});
        const Bytes outer_udp = concat({udp(gue_source_port(input), gue_port, 4 + inner.size()),
                                        Bytes{0, 41, 0, 0}});
        // encap.cc: an IPv6 inner packet sets DF on the IPv4 outer header.
        table.push_back({
            .description = "dsr GUE IPv6 in IPv4 to a backend of the other family",
            .input = input,
            .expected = concat({ethernet(backend_mac(backend_gue_6in4), gw_backend_mac, 0x0800),
                                gateway_ipv4(gw_backend4, backend_gue_6in4, udp_protocol,
                                             outer_udp.size() + inner.size(), 0x4000),
                                outer_udp, inner}),
        });
    }

    // --- too big once encapsulated: the client learns the path MTU --------
    {
        // A full 1500-byte packet with DF: 20 more bytes of IP-in-IP exceed
        // the backend link's 1500.
        const Bytes segment = tcp_segment(client4, vip_ipip4, 40000, 80, ack, Bytes(1460, 'x'));
        const Bytes input = concat({ethernet(gw_client_mac, client_mac, 0x0800),
                                    ipv4(client4, vip_ipip4, tcp_protocol, segment.size(), {},
                                         0x4000),
                                    segment});
        // RFC 1191 "fragmentation needed" from the client port's address,
        // quoting the packet as it came, up to 576 bytes in all.
        const Bytes error = icmp_error(3, 4, 1500 - 20, ip_quote(input, 576 - 20 - 8));
        table.push_back({
            .description = "dsr IPv4 too big with DF once encapsulated: ICMP fragmentation "
                           "needed back to the client",
            .input = input,
            .egress = client_side,
            .expected = concat({ethernet(client_mac, gw_client_mac, 0x0800),
                                gateway_ipv4(gw_client4, client4, icmp_protocol, error.size(), 0),
                                error}),
        });
    }
    {
        const Bytes segment = tcp_segment(client6, vip_ipip6, 40000, 80, ack, Bytes(1440, 'x'));
        const Bytes input = ip_frame(gw_client_mac, client_mac, client6, vip_ipip6, tcp_protocol,
                                     segment);
        // RFC 8201 "packet too big", quoting up to the minimum MTU of 1280.
        const Bytes error = icmpv6_error(gw_client6, client6, 2, 0, 1500 - 40,
                                         ip_quote(input, 1280 - 40 - 8));
        table.push_back({
            .description = "dsr IPv6 too big once encapsulated: ICMPv6 packet too big back "
                           "to the client",
            .input = input,
            .egress = client_side,
            .expected = concat({ethernet(client_mac, gw_client_mac, 0x86dd),
                                ipv6(gw_client6, client6, icmpv6_protocol, error.size(), 255),
                                error}),
        });
    }

    // --- ICMP errors about a flow ------------------------------------------
    {
        // The backend quotes what the gateway sent it (RFC 792: IP header
        // and 8 bytes); the client must get a quote of what it sent itself,
        // from the VIP. The quoted TTL stays as the backend saw it (63).
        const Bytes sent = concat({ipv4(local4, backend_fullnat4, tcp_protocol, 20, {}, 0, 63),
                                   tcp_segment(local4, backend_fullnat4, snat_port, 80, syn)});
        const Bytes client_sent =
            concat({ipv4(client4, vip_fullnat4, tcp_protocol, 20, {}, 0, 63),
                    tcp_segment(client4, vip_fullnat4, 40000, 80, syn)});
        table.push_back({
            .description = "fullnat IPv4 ICMP error from the backend reaches the client about "
                           "its own segment",
            .setup = {{from_client(client4, vip_fullnat4, syn)}},
            .input = ip_frame(gw_backend_mac, backend_mac(backend_fullnat4), backend_fullnat4,
                              local4, icmp_protocol, icmp_error(3, 4, 1400, quote_of(sent))),
            .ingress = backend_side,
            .egress = client_side,
            .expected = ip_frame(client_mac, gw_client_mac, vip_fullnat4, client4, icmp_protocol,
                                 icmp_error(3, 4, 1400, quote_of(client_sent)), 63),
        });
    }
    {
        // ICMPv6 quotes as much as fits: here the whole segment, so the
        // quoted TCP checksum must be updated too, and the ICMPv6 checksum
        // covers the outer addresses.
        const Bytes sent = concat({ipv6(local6, backend_fullnat6, tcp_protocol, 20, 63),
                                   tcp_segment(local6, backend_fullnat6, snat_port, 80, syn)});
        const Bytes client_sent = concat({ipv6(client6, vip_fullnat6, tcp_protocol, 20, 63),
                                          tcp_segment(client6, vip_fullnat6, 40000, 80, syn)});
        table.push_back({
            .description = "fullnat IPv6 packet too big from the backend reaches the client "
                           "about its own segment",
            .setup = {{from_client(client6, vip_fullnat6, syn)}},
            .input = ip_frame(gw_backend_mac, backend_mac(backend_fullnat6), backend_fullnat6,
                              local6, icmpv6_protocol,
                              icmpv6_error(backend_fullnat6, local6, 2, 0, 1280, sent)),
            .ingress = backend_side,
            .egress = client_side,
            .expected = ip_frame(client_mac, gw_client_mac, vip_fullnat6, client6,
                                 icmpv6_protocol,
                                 icmpv6_error(vip_fullnat6, client6, 2, 0, 1280, client_sent),
                                 63),
        });
    }
    {
        // "Port unreachable" from the client about what the VIP sent it: the
        // backend gets it at its SNAT peer, quoting its own segment.
        const Bytes vip_sent = concat({ipv4(vip_fullnat4, client4, tcp_protocol, 20, {}, 0, 63),
                                       tcp_segment(vip_fullnat4, client4, 80, 40000, syn_ack)});
        const Bytes backend_sent =
            concat({ipv4(backend_fullnat4, local4, tcp_protocol, 20, {}, 0, 63),
                    tcp_segment(backend_fullnat4, local4, 80, snat_port, syn_ack)});
        table.push_back({
            .description = "fullnat IPv4 ICMP error from the client reaches the backend about "
                           "its own segment",
            .setup = {{from_client(client4, vip_fullnat4, syn)}},
            .input = ip_frame(gw_client_mac, client_mac, client4, vip_fullnat4, icmp_protocol,
                              icmp_error(3, 3, 0, quote_of(vip_sent))),
            .expected = ip_frame(backend_mac(backend_fullnat4), gw_backend_mac, local4,
                                 backend_fullnat4, icmp_protocol,
                                 icmp_error(3, 3, 0, quote_of(backend_sent)), 63),
        });
    }
    {
        // nat: the backend's error goes to the client itself; only the
        // VIP's part of it changes.
        const Bytes sent = concat({ipv4(client4, backend_nat4, tcp_protocol, 20, {}, 0, 63),
                                   tcp_segment(client4, backend_nat4, 40000, 80, syn)});
        const Bytes client_sent = concat({ipv4(client4, vip_nat4, tcp_protocol, 20, {}, 0, 63),
                                          tcp_segment(client4, vip_nat4, 40000, 80, syn)});
        table.push_back({
            .description = "nat IPv4 ICMP error from the backend reaches the client from the VIP",
            .setup = {{from_client(client4, vip_nat4, syn)}},
            .input = ip_frame(gw_backend_mac, backend_mac(backend_nat4), backend_nat4, client4,
                              icmp_protocol, icmp_error(3, 4, 1400, sent)),
            .ingress = backend_side,
            .egress = client_side,
            .expected = ip_frame(client_mac, gw_client_mac, vip_nat4, client4, icmp_protocol,
                                 icmp_error(3, 4, 1400, client_sent), 63),
        });
    }
    {
        const Bytes stray = concat({ipv4(local4, backend_fullnat4, tcp_protocol, 20),
                                    tcp_segment(local4, backend_fullnat4, 1, 2, syn)});
        table.push_back({
            .description = "ICMP error about no flow of this worker: perhaps another's",
            .input = ip_frame(gw_backend_mac, backend_mac(backend_fullnat4), backend_fullnat4,
                              local4, icmp_protocol, icmp_error(3, 3, 0, quote_of(stray))),
            .ingress = backend_side,
            .verdict = BalanceVerdict::unknown_flow,
            .reason = DropReason::none,
        });
    }

    // --- fragments -----------------------------------------------------------
    {
        // A 40-byte UDP payload cut 24 + 24: the first fragment has the ports.
        const std::vector<Bytes> in = udp_fragments(gw_client_mac, client_mac, client4,
                                                    vip_fullnat_udp, 5353, 53, 40, {24, 24}, 0x4242);
        std::vector<Bytes> out = udp_fragments(backend_mac(backend_fullnat_udp), gw_backend_mac,
                                               local4, backend_fullnat_udp, snat_port, 53, 40,
                                               {24, 24}, 0x4242);
        for (Bytes &fragment : out) {
            fragment[14 + 8] = 63;
            refresh_ipv4_checksum(fragment, 14);
        }
        table.push_back({
            .description = "fullnat IPv4 UDP first fragment: translated, its checksum for the "
                           "whole datagram",
            .input = in[0],
            .expected = out[0],
        });
        table.push_back({
            .description = "fullnat IPv4 UDP later fragment follows its first",
            .setup = {{in[0]}},
            .input = in[1],
            .expected = out[1],
        });
        table.push_back({
            .description = "later IPv4 fragment to a VIP, its first unseen",
            .input = in[1],
            .verdict = BalanceVerdict::unknown_flow,
            .reason = DropReason::fragment_without_first,
        });
        const std::vector<Bytes> elsewhere = udp_fragments(
            gw_client_mac, client_mac, client4, gw_client4, 5353, 53, 40, {24, 24}, 0x4343);
        table.push_back({
            .description = "later IPv4 fragment to an address that is not ours",
            .input = elsewhere[1],
            .verdict = BalanceVerdict::unknown_flow,
            .reason = DropReason::none,
        });
    }

    // --- refused ---------------------------------------------------------------
    table.push_back({
        .description = "TTL 1 toward a backend",
        .input = from_client(client4, vip_fullnat4, syn, 1),
        .verdict = BalanceVerdict::drop,
        .reason = DropReason::ttl_exceeded,
    });
    table.push_back({
        .description = "hop limit 1 toward a backend",
        .input = from_client(client6, vip_nat6, syn, 1),
        .verdict = BalanceVerdict::drop,
        .reason = DropReason::ttl_exceeded,
    });
    table.push_back({
        .description = "TTL 1 on the backend's answer",
        .setup = {{from_client(client4, vip_fullnat4, syn)}},
        .input = from_backend(backend_fullnat4, local4, snat_port, syn_ack, 1),
        .ingress = backend_side,
        .verdict = BalanceVerdict::drop,
        .reason = DropReason::ttl_exceeded,
    });
    table.push_back({
        .description = "service whose only backend has weight 0",
        .input = from_client(client4, vip_drained, syn),
        .verdict = BalanceVerdict::drop,
        .reason = DropReason::no_backend,
    });
    table.push_back({
        .description = "fullnat mid-stream ACK without a flow",
        .input = from_client(client4, vip_fullnat4, ack),
        .verdict = BalanceVerdict::drop,
        .reason = DropReason::no_flow_for_segment,
    });
    table.push_back({
        .description = "backend's next hop unresolved: held, untouched",
        .input = from_client(client4, vip_unresolved, syn),
        .verdict = BalanceVerdict::await_next_hop,
        .reason = DropReason::next_hop_unresolved,
    });

    // --- someone else's ----------------------------------------------------------
    table.push_back({
        .description = "TCP to a VIP port with no service",
        .input = from_client(client4, vip_fullnat4, syn, 64, 443),
        .verdict = BalanceVerdict::not_balanced,
    });
    table.push_back({
        .description = "UDP to a VIP whose service is TCP",
        .input = ip_frame(gw_client_mac, client_mac, client4, vip_fullnat4, udp_protocol,
                          udp_datagram(client4, vip_fullnat4, 5353, 80, Bytes(4, 1))),
        .verdict = BalanceVerdict::not_balanced,
    });
    table.push_back({
        .description = "TCP to the gateway's own address",
        .input = from_client(client4, gw_client4, syn, 64, 22),
        .verdict = BalanceVerdict::not_balanced,
    });
    // No flow owns it: the balancer leaves it to the rest of the data plane.
    table.push_back({
        .description = "backend's segment to a SNAT port of no flow",
        .input = from_backend(backend_fullnat4, local4, snat_port, syn_ack),
        .ingress = backend_side,
        .verdict = BalanceVerdict::not_balanced,
    });

    // --- a `reset` service whose flow's backend left ------------------------------
    {
        // The client's next segment (seq 1000, ack 5000, 100 bytes) is
        // answered with a RST from the VIP sequenced at what it acknowledged
        // (RFC 9293 3.10.7.1); nat.cc writes identification 0, DF, TTL 64,
        // window 0.
        Bytes segment = tcp(40000, 80, ack);
        append(segment, Bytes(100, 'x'));
        put16(segment, 6, 1000);
        put16(segment, 10, 5000);
        Bytes reset = tcp(80, 40000, rst);
        put16(reset, 6, 5000);
        put16(reset, 14, 0);
        reset = with_transport_checksum(vip_reset, client4, tcp_protocol, reset);
        table.push_back({
            .description = "reset service whose flow's backend left: RST to the client",
            .setup = {{from_client(client4, vip_reset, syn)}},
            .backend_leaves_after_setup = true,
            .input = ip_frame(gw_client_mac, client_mac, client4, vip_reset, tcp_protocol,
                              with_transport_checksum(client4, vip_reset, tcp_protocol, segment)),
            .egress = client_side,
            .expected = concat({ethernet(client_mac, gw_client_mac, 0x0800),
                                gateway_ipv4(vip_reset, client4, tcp_protocol, 20, 0x4000), reset}),
        });
        // The RST carries no IP options (nat.h) even when the segment had some.
        table.push_back({
            .description = "reset service whose flow's backend left: RST without the "
                           "segment's IP options",
            .setup = {{from_client(client4, vip_reset, syn)}},
            .backend_leaves_after_setup = true,
            .input = concat({ethernet(gw_client_mac, client_mac, 0x0800),
                             ipv4(client4, vip_reset, tcp_protocol, segment.size(),
                                  Bytes{0x01, 0x01, 0x01, 0x00}),  // NOP NOP NOP EOL
                             with_transport_checksum(client4, vip_reset, tcp_protocol, segment)}),
            .egress = client_side,
            .expected = concat({ethernet(client_mac, gw_client_mac, 0x0800),
                                gateway_ipv4(vip_reset, client4, tcp_protocol, 20, 0x4000), reset}),
        });
    }
    return table;
}
#pragma GCC diagnostic pop

// ---------------------------------------------------------------------------
// The runner

// 16 bytes a line with their offset: gtest shows two of these as a line diff.
std::string hex(const Bytes &bytes) {
    std::string out;
    char cell[24];
    for (size_t i = 0; i < bytes.size(); ++i) {
        if (i % 16 == 0) {
            std::snprintf(cell, sizeof cell, "%04zx:", i);
            out += (i ? "\n" : "") + std::string(cell);
        }
        std::snprintf(cell, sizeof cell, " %02x", bytes[i]);
        out += cell;
    }
    return out;
}

const char *verdict_name(BalanceVerdict verdict) {
    switch (verdict) {
    case BalanceVerdict::not_balanced: return "not_balanced";
    case BalanceVerdict::forward: return "forward";
    case BalanceVerdict::drop: return "drop";
    case BalanceVerdict::await_next_hop: return "await_next_hop";
    case BalanceVerdict::to_stack: return "to_stack";
    case BalanceVerdict::unknown_flow: return "unknown_flow";
    }
    return "?";
}

TEST(BalancerTable, EveryRow) {
    const std::unique_ptr<Snapshot> before = lab_snapshot(false);
    const std::unique_ptr<Snapshot> after = lab_snapshot(true);
    const std::vector<Row> table = rows();
    for (const Row &row : table) {
        SCOPED_TRACE(row.description);
        FlowTable flows(1024, HashKey::from_seed(flow_seed));
        L4Balancer balancer(flows, SnatPortRange{snat_port, snat_port});
        BalancerCounters counters;
        const Snapshot *snapshot = before.get();

        bool set_up = true;
        for (size_t i = 0; i < row.setup.size() && set_up; ++i) {
            Packet packet(row.setup[i].frame);
            const BalanceResult result = balancer.balance(packet.frame, packet.parsed,
                                                          row.setup[i].ingress, *snapshot, now,
                                                          counters);
            EXPECT_STREQ(verdict_name(result.verdict), verdict_name(BalanceVerdict::forward))
                << "setup packet " << i << ": " << drop_reason_name(result.reason);
            set_up = result.verdict == BalanceVerdict::forward;
        }
        if (!set_up)
            continue;
        if (row.backend_leaves_after_setup)
            snapshot = after.get();

        Packet packet(row.input);
        const BalanceResult result =
            balancer.balance(packet.frame, packet.parsed, row.ingress, *snapshot, now, counters);
        EXPECT_STREQ(verdict_name(result.verdict), verdict_name(row.verdict));
        EXPECT_STREQ(drop_reason_name(result.reason), drop_reason_name(row.reason));
        if (row.verdict == BalanceVerdict::forward) {
            EXPECT_EQ(result.egress_port, row.egress);
            EXPECT_EQ(hex(packet.bytes()), hex(row.expected)) << "output frame (actual, expected)";
        } else if (row.verdict != BalanceVerdict::drop) {
            EXPECT_EQ(hex(packet.bytes()), hex(row.input)) << "must be left as it came";
        }
    }
}

} // namespace
} // namespace sluice::lb
