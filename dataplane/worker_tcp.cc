#include "dataplane/worker_tcp.h"

#include <cstring>

#include <rte_mbuf.h>

#include "dataplane/byte_order.h"
#include "dataplane/tcp_frame.h"
#include "dataplane/tcp_segment.h"
#include "dataplane/worker.h"
#include "lb/snapshot.h"

namespace sluice::dataplane {

namespace {

constexpr uint32_t ethernet_header = 14;

IpAddress source_of(const uint8_t *ip, bool ipv6) {
    return ipv6 ? IpAddress::from_v6(ip + 8) : IpAddress::from_v4_be([&] {
        uint32_t be;
        std::memcpy(&be, ip + 12, 4);
        return be;
    }());
}

IpAddress destination_of(const uint8_t *ip, bool ipv6) {
    return ipv6 ? IpAddress::from_v6(ip + 24) : IpAddress::from_v4_be([&] {
        uint32_t be;
        std::memcpy(&be, ip + 16, 4);
        return be;
    }());
}

} // namespace

size_t PeerCache::index_of(const IpAddress &address) {
    // Peers are the clients and backends that talk to us: their addresses
    // are theirs to choose, but a collision only costs a relearn.
    uint64_t words[2];
    std::memcpy(words, address.bytes.data(), sizeof words);
    uint64_t h = (words[0] ^ 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 31) ^ words[1]) * 0x94d049bb133111ebull;
    return size_t(h >> 40) % size;
}

void PeerCache::learn(const IpAddress &address, uint16_t port_index, const uint8_t *mac) {
    Entry &entry = entries_[index_of(address)];
    entry.address = address;
    entry.used = true;
    entry.peer.port_index = port_index;
    std::memcpy(entry.peer.mac.bytes.data(), mac, 6);
}

const PeerCache::Peer *PeerCache::find(const IpAddress &address) const {
    const Entry &entry = entries_[index_of(address)];
    return entry.used && entry.address == address ? &entry.peer : nullptr;
}

WorkerTcp::WorkerTcp(const WorkerTcpSettings &settings, WorkerContext &worker, rte_mempool *pool)
    : settings_(settings), worker_(worker), pool_(pool),
      endpoint_(settings.connection, settings.limits, settings.ports, *this, settings.secret),
      proxy_(endpoint_, settings.proxy) {}

void WorkerTcp::begin_poll(const lb::Snapshot *snapshot, uint64_t now_us) {
    snapshot_ = snapshot;
    now_us_ = now_us;
    proxy_.begin(snapshot, now_us);
}

void WorkerTcp::end_poll() {
    const uint64_t due = endpoint_.next_timer_us();
    if (due && due <= now_us_)
        endpoint_.on_timer(now_us_);
    proxy_.end();
    if (now_us_ - published_us_ >= 1000) {
        publish();
        published_us_ = now_us_;
    }
}

void WorkerTcp::publish() {
    const tcp::TcpEndpoint::Counters &c = endpoint_.counters();
    figures_.connections.set(endpoint_.connections());
    figures_.time_wait.set(endpoint_.time_wait_entries());
    figures_.half_open.set(endpoint_.half_open());
    figures_.sessions.set(proxy_.sessions());
    figures_.accepted.set(c.accepted);
    figures_.connected.set(c.connected);
    figures_.closed.set(c.closed);
    figures_.resets_sent.set(c.resets_sent);
    figures_.refused_full.set(c.refused_full);
    figures_.syn_cookies_sent.set(c.syn_cookies_sent);
    figures_.syn_cookies_accepted.set(c.syn_cookies_accepted);
    figures_.syn_cookies_refused.set(c.syn_cookies_refused);
    figures_.time_wait_evicted.set(c.time_wait_evicted);
    figures_.segments_in.set(segments_in_);
    figures_.segments_out.set(segments_out_);
}

void WorkerTcp::receive(rte_mbuf *packet, const ParsedPacket &parsed, uint16_t port_index) {
    const uint8_t *frame = rte_pktmbuf_mtod(packet, const uint8_t *);
    const bool ipv6 = parsed.network == NetworkLayer::ipv6;
    const uint8_t *ip = frame + parsed.l3_offset;
    const uint8_t *segment_bytes = frame + parsed.l4_offset;
    const size_t length = parsed.l3_payload_length();
    const bool checksum_verified =
        (packet->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD;
    tcp::TcpSegment segment;
    DropReason reason = DropReason::none;
    if (!checksum_verified &&
        tcp::segment_checksum(ip + (ipv6 ? 8 : 12), ip + (ipv6 ? 24 : 16), ipv6, segment_bytes,
                              length) != 0)
        reason = DropReason::bad_tcp_checksum;
    else if (tcp::parse_segment(segment_bytes, length, segment) != tcp::SegmentError::none)
        reason = DropReason::bad_tcp_option;  // parse_packet() checked the rest
    if (reason != DropReason::none) {
        worker_.counters.drop(reason).increment();
        rte_pktmbuf_free(packet);
        return;
    }
    ++segments_in_;
    const IpAddress source = source_of(ip, ipv6);
    peers_.learn(source, port_index, frame + 6);
    // The payload is handed up in place: the mbuf lives until receive() returns.
    endpoint_.receive(source, destination_of(ip, ipv6), segment, segment_bytes, now_us_);
    rte_pktmbuf_free(packet);
}

void WorkerTcp::send_packet(const tcp::FourTuple &tuple, const tcp::TcpHeader &header,
                            const tcp::Payload &payload) {
    if (!snapshot_) {
        worker_.counters.drop(DropReason::tcp_no_route).increment();
        return;
    }
    uint16_t port_index;
    const MacAddress *next_hop_mac;
    if (const PeerCache::Peer *peer = peers_.find(tuple.remote)) {
        port_index = peer->port_index;
        next_hop_mac = &peer->mac;
    } else {
        std::array<uint8_t, 16> address{};
        std::memcpy(address.data(), tuple.remote.bytes.data(), tuple.remote.is_v4() ? 4 : 16);
        const lb::NextHop *next_hop =
            snapshot_->find_next_hop(address, tuple.remote.is_v4() ? 4 : 6);
        if (!next_hop || !next_hop->resolved) {
            worker_.counters.drop(DropReason::tcp_no_route).increment();
            return;
        }
        port_index = next_hop->egress_port;
        next_hop_mac = &next_hop->mac;
    }
    if (port_index >= snapshot_->ports().size()) {
        worker_.counters.drop(DropReason::tcp_no_route).increment();
        return;
    }
    rte_mbuf *packet = rte_pktmbuf_alloc(pool_);
    if (!packet) {
        worker_.counters.drop(DropReason::tcp_no_mbuf).increment();
        return;
    }
    const size_t room = ethernet_header + (tuple.local.is_v4() ? 20 : 40) + 20 +
                        tcp::options_length(header.options) + payload.length();
    if (rte_pktmbuf_tailroom(packet) < room) {
        // Segments keep to the MSS, and mbufs hold a frame of the port's MTU.
        rte_pktmbuf_free(packet);
        worker_.counters.drop(DropReason::no_room_for_reply).increment();
        return;
    }
    uint8_t *frame = rte_pktmbuf_mtod(packet, uint8_t *);
    std::memcpy(frame, next_hop_mac->bytes.data(), 6);
    std::memcpy(frame + 6, snapshot_->ports()[port_index].mac.bytes.data(), 6);
    write_be16(frame + 12, tuple.local.is_v4() ? 0x0800 : 0x86dd);
    const size_t length =
        ethernet_header + tcp::write_ip_segment(tuple, header, payload, ip_id_++, frame + 14);
    rte_pktmbuf_data_len(packet) = uint16_t(length);
    rte_pktmbuf_pkt_len(packet) = uint32_t(length);
    ++segments_out_;
    send_to_wire(worker_, port_index, packet);
}

} // namespace sluice::dataplane
