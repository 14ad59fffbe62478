#include "dataplane/tcp_endpoint.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "dataplane/siphash.h"

namespace sluice::tcp {

namespace {

// The MSS values a SYN cookie can keep (3 bits), largest last: the peer's
// MSS becomes the largest of them that does not exceed it.
constexpr std::array<uint16_t, 8> cookie_mss = {536, 1200, 1220, 1360, 1400, 1440, 1460, 8960};
constexpr uint64_t cookie_period_us = 64'000'000;  // a cookie lasts one or two periods

SipKey key_of(uint64_t secret, uint64_t salt) {
    return {secret, secret * 0x9e3779b97f4a7c15ull ^ salt};
}

// The tuple's bytes, with `extra` after them, hashed under `key`.
uint64_t tuple_hash(const SipKey &key, const FourTuple &tuple, uint64_t extra) {
    uint8_t bytes[16 + 2 + 16 + 2 + 8];
    std::memcpy(bytes, tuple.local.bytes.data(), 16);
    std::memcpy(bytes + 16, &tuple.local_port, 2);
    std::memcpy(bytes + 18, tuple.remote.bytes.data(), 16);
    std::memcpy(bytes + 34, &tuple.remote_port, 2);
    std::memcpy(bytes + 36, &extra, 8);
    return siphash24(key, bytes, sizeof bytes);
}

} // namespace

size_t FourTupleHash::operator()(const FourTuple &tuple) const {
    // Not keyed: the worker's own tuples, which outsiders choose only in
    // part; the table's sizes are bounded by the limits anyway.
    uint64_t h = 0xcbf29ce484222325ull;
    const auto mix = [&h](const uint8_t *bytes, size_t n) {
        for (size_t i = 0; i < n; ++i)
            h = (h ^ bytes[i]) * 0x100000001b3ull;
    };
    mix(tuple.local.bytes.data(), 16);
    mix(tuple.remote.bytes.data(), 16);
    mix(reinterpret_cast<const uint8_t *>(&tuple.local_port), 2);
    mix(reinterpret_cast<const uint8_t *>(&tuple.remote_port), 2);
    return size_t(h);
}

size_t TcpEndpoint::ListenKeyHash::operator()(const ListenKey &key) const {
    return FourTupleHash{}(FourTuple{key.address, key.port, {}, 0});
}

// A connection with its tuple: it sends through the endpoint, and passes
// its events on to the layer above.
struct TcpEndpoint::Slot final : SegmentSink, ConnectionEvents {
    Slot(TcpEndpoint &endpoint, const FourTuple &tuple, ConnectionEvents *events)
        : endpoint(endpoint), tuple(tuple), events(events),
          connection(endpoint.settings_, {tuple.local_port, tuple.remote_port}, *this, *this) {}

    void send_segment(const TcpHeader &header, const Payload &payload) override {
        endpoint.sink_.send_packet(tuple, header, payload);
    }
    void on_established() override {
        if (half_open) {
            half_open = false;
            --endpoint.half_open_;
        }
        if (events)
            events->on_established();
    }
    size_t on_data(const uint8_t *data, size_t length) override {
        return events ? events->on_data(data, length) : length;
    }
    void on_send_space(size_t free_bytes) override {
        if (events)
            events->on_send_space(free_bytes);
    }
    void on_user_timer() override {
        if (events)
            events->on_user_timer();
    }
    void on_peer_finished() override {
        if (events)
            events->on_peer_finished();
    }
    void on_closed(CloseReason reason) override {
        if (half_open) {
            half_open = false;
            --endpoint.half_open_;
        }
        endpoint.reap_due_ = true;
        if (events)
            events->on_closed(reason);
    }

    TcpEndpoint &endpoint;
    const FourTuple tuple;
    ConnectionEvents *events;
    bool half_open = false;
    Connection connection;
};

TcpEndpoint::TcpEndpoint(const Settings &settings, const EndpointLimits &limits,
                         LocalPorts ports, PacketSink &sink, uint64_t secret)
    : settings_(settings), limits_(limits), ports_(ports), sink_(sink), secret_(secret) {}

TcpEndpoint::~TcpEndpoint() = default;

bool TcpEndpoint::listen(const IpAddress &address, uint16_t port, AcceptHandler accept) {
    return listeners_.emplace(ListenKey{address, port}, std::move(accept)).second;
}

void TcpEndpoint::stop_listening(const IpAddress &address, uint16_t port) {
    listeners_.erase(ListenKey{address, port});
}

TcpEndpoint::Slot *TcpEndpoint::make_slot(const FourTuple &tuple, ConnectionEvents *events) {
    if (slots_.size() >= limits_.max_connections)
        return nullptr;
    auto slot = std::make_unique<Slot>(*this, tuple, events);
    Slot *made = slot.get();
    slots_.emplace(tuple, std::move(slot));
    return made;
}

Connection *TcpEndpoint::connect(const IpAddress &local, const IpAddress &remote,
                                 uint16_t remote_port, ConnectionEvents &events,
                                 uint64_t now_us) {
    const uint32_t count = uint32_t(ports_.last) - ports_.first + 1;
    for (uint32_t tried = 0; tried < count; ++tried) {
        const uint16_t port = uint16_t(ports_.first + (next_port_ + tried) % count);
        const FourTuple tuple{local, port, remote, remote_port};
        if (slots_.count(tuple) || time_wait_.count(tuple))
            continue;
        next_port_ = (next_port_ + tried + 1) % count;
        Slot *slot = make_slot(tuple, &events);
        if (!slot) {
            ++counters_.refused_full;
            return nullptr;
        }
        ++counters_.connected;
        slot->connection.connect(initial_sequence(tuple, now_us), now_us);
        return &slot->connection;
    }
    return nullptr;
}

void TcpEndpoint::receive(const IpAddress &source, const IpAddress &destination,
                          const TcpSegment &segment, const uint8_t *payload, uint64_t now_us) {
    const TcpHeader &h = segment.header;
    const FourTuple tuple{destination, h.destination_port, source, h.source_port};
    if (const auto found = slots_.find(tuple); found != slots_.end()) {
        // The slot, not the iterator: the layer above may open connections
        // from its callbacks, and the map may rehash.
        Connection &connection = found->second->connection;
        connection.receive(segment, payload, now_us);
        if (connection.state() == State::time_wait)
            enter_time_wait(tuple, connection, now_us);
        if (connection.closed()) {
            slots_.erase(tuple);
            ++counters_.closed;
        }
        return;
    }
    if (time_wait_.count(tuple) && on_time_wait_segment(tuple, segment, now_us))
        return;
    if (const auto listener = listeners_.find(ListenKey{destination, h.destination_port});
        listener != listeners_.end()) {
        on_listener_segment(tuple, listener->second, segment, payload, now_us);
        return;
    }
    send_reset(tuple, segment);
}

void TcpEndpoint::on_listener_segment(const FourTuple &tuple, const AcceptHandler &accept,
                                      const TcpSegment &segment, const uint8_t *payload,
                                      uint64_t now_us) {
    const TcpHeader &h = segment.header;
    if (h.flags & flag::rst)
        return;
    // RFC 9293 3.10.7.2: in LISTEN, an ACK is reset, unless it returns a
    // cookie; a SYN starts a connection; anything else is dropped.
    if ((h.flags & (flag::syn | flag::ack)) == flag::ack) {
        const uint16_t mss = check_cookie(tuple, h.seq - 1, h.ack - 1, now_us);
        if (!mss) {
            ++counters_.syn_cookies_refused;
            send_reset(tuple, segment);
            return;
        }
        Slot *slot = admit(tuple, accept, segment);
        if (!slot)
            return;
        ++counters_.syn_cookies_accepted;
        slot->connection.accept_cookie(segment, payload, h.ack - 1, mss, now_us);
        return;
    }
    if ((h.flags & (flag::syn | flag::ack)) != flag::syn)
        return;
    if (half_open_ >= limits_.syn_backlog) {
        // No state: the SYN-ACK's sequence number is the cookie.
        uint16_t mss = cookie_mss[0];
        for (const uint16_t candidate : cookie_mss)
            if (h.options.mss && candidate <= *h.options.mss)
                mss = candidate;
        TcpHeader syn_ack;
        syn_ack.source_port = tuple.local_port;
        syn_ack.destination_port = tuple.remote_port;
        syn_ack.seq = make_cookie(tuple, h.seq, mss, now_us);
        syn_ack.ack = h.seq + 1;
        syn_ack.flags = flag::syn | flag::ack;
        syn_ack.window = uint16_t(std::min<uint32_t>(settings_.receive_buffer, 65535));
        syn_ack.options.mss = settings_.mss;
        sink_.send_packet(tuple, syn_ack, Payload{});
        ++counters_.syn_cookies_sent;
        return;
    }
    Slot *slot = admit(tuple, accept, segment);
    if (!slot)
        return;
    slot->half_open = true;
    ++half_open_;
    slot->connection.accept(segment, initial_sequence(tuple, now_us), now_us);
}

TcpEndpoint::Slot *TcpEndpoint::admit(const FourTuple &tuple, const AcceptHandler &accept,
                                      const TcpSegment &segment) {
    Slot *slot = make_slot(tuple, nullptr);
    if (!slot) {
        ++counters_.refused_full;
        send_reset(tuple, segment);
        return nullptr;
    }
    slot->events = accept(slot->connection, tuple);
    if (!slot->events) {
        // Refused by the layer above: reset, as a closed port would be.
        send_reset(tuple, segment);
        slots_.erase(tuple);
        return nullptr;
    }
    ++counters_.accepted;
    return slot;
}

bool TcpEndpoint::on_time_wait_segment(const FourTuple &tuple, const TcpSegment &segment,
                                       uint64_t now_us) {
    TimeWaitEntry &entry = time_wait_.at(tuple);
    const TcpHeader &h = segment.header;
    if (h.flags & flag::rst)
        return true;  // RFC 1337: a RST does not cut TIME-WAIT short
    if ((h.flags & (flag::syn | flag::ack)) == flag::syn && seq_gt(h.seq, entry.rcv_nxt)) {
        // RFC 6191: a new incarnation, past the old one's sequence numbers.
        time_wait_.erase(tuple);
        ++counters_.time_wait_recycled;
        return false;
    }
    // A retransmitted FIN (the peer lost our ACK), or anything else: the
    // same ACK again, and the FIN restarts the wait.
    TcpHeader ack;
    ack.source_port = tuple.local_port;
    ack.destination_port = tuple.remote_port;
    ack.seq = entry.snd_nxt;
    ack.ack = entry.rcv_nxt;
    ack.flags = flag::ack;
    ack.window = uint16_t(std::min<uint32_t>(settings_.receive_buffer, 65535));
    sink_.send_packet(tuple, ack, Payload{});
    if (h.flags & flag::fin)
        entry.until_us = now_us + 2ull * settings_.msl_us;
    return true;
}

void TcpEndpoint::enter_time_wait(const FourTuple &tuple, const Connection &connection,
                                  uint64_t now_us) {
    const Connection::Info info = connection.info();
    if (limits_.max_time_wait > 0) {
        while (time_wait_.size() >= limits_.max_time_wait && !time_wait_order_.empty()) {
            time_wait_.erase(time_wait_order_.front().first);
            time_wait_order_.pop_front();
            ++counters_.time_wait_evicted;
        }
        const uint64_t until = now_us + 2ull * settings_.msl_us;
        time_wait_[tuple] = {info.snd_nxt, info.rcv_nxt, until};
        time_wait_order_.emplace_back(tuple, until);
    }
    ++counters_.time_wait_entered;
    slots_.at(tuple)->connection.release_time_wait();
}

void TcpEndpoint::send_reset(const FourTuple &tuple, const TcpSegment &segment) {
    const TcpHeader &h = segment.header;
    if (h.flags & flag::rst)
        return;
    // RFC 9293 3.10.7.1: take the sequence number from the ACK, or
    // acknowledge the whole segment.
    TcpHeader rst;
    rst.source_port = tuple.local_port;
    rst.destination_port = tuple.remote_port;
    if (h.flags & flag::ack) {
        rst.seq = h.ack;
        rst.flags = flag::rst;
    } else {
        rst.ack = h.seq + segment.payload_length + ((h.flags & flag::syn) ? 1 : 0) +
                  ((h.flags & flag::fin) ? 1 : 0);
        rst.flags = flag::rst | flag::ack;
    }
    sink_.send_packet(tuple, rst, Payload{});
    ++counters_.resets_sent;
}

uint64_t TcpEndpoint::next_timer_us() const {
    if (reap_due_)
        return 1;  // closed connections to free: at once
    uint64_t next = 0;
    for (const auto &[tuple, slot] : slots_) {
        const uint64_t at = slot->connection.next_timer_us();
        if (at && (!next || at < next))
            next = at;
    }
    // Entries queue in the order of their deadlines, near enough: one whose
    // wait a FIN restarted may leave a little late, which is harmless.
    if (!time_wait_order_.empty() && (!next || time_wait_order_.front().second < next))
        next = time_wait_order_.front().second;
    return next;
}

void TcpEndpoint::on_timer(uint64_t now_us) {
    // The due ones first: their callbacks may open connections, and the map
    // may rehash under a loop over it.
    due_.clear();
    for (auto &[tuple, slot] : slots_) {
        const uint64_t at = slot->connection.next_timer_us();
        if (at && at <= now_us)
            due_.push_back(slot.get());
    }
    for (Slot *slot : due_)
        slot->connection.on_timer(now_us);
    // TIME-WAIT entries leave in order; one whose wait a FIN restarted is
    // queued again at its new deadline.
    while (!time_wait_order_.empty() && time_wait_order_.front().second <= now_us) {
        const auto [tuple, until] = time_wait_order_.front();
        time_wait_order_.pop_front();
        const auto entry = time_wait_.find(tuple);
        if (entry == time_wait_.end())
            continue;
        if (entry->second.until_us > now_us)
            time_wait_order_.emplace_back(tuple, entry->second.until_us);
        else
            time_wait_.erase(entry);
    }
    reap(now_us);
}

void TcpEndpoint::reap(uint64_t) {
    if (!reap_due_)
        return;
    reap_due_ = false;
    for (auto it = slots_.begin(); it != slots_.end();) {
        if (it->second->connection.closed()) {
            ++counters_.closed;
            it = slots_.erase(it);
        } else {
            ++it;
        }
    }
}

uint32_t TcpEndpoint::initial_sequence(const FourTuple &tuple, uint64_t now_us) const {
    // RFC 6528: a clock ticking every 4 us plus a keyed hash of the tuple.
    return uint32_t(now_us / 4) + uint32_t(tuple_hash(key_of(secret_, 1), tuple, 0));
}

uint32_t TcpEndpoint::make_cookie(const FourTuple &tuple, uint32_t peer_seq, uint16_t mss,
                                  uint64_t now_us) const {
    const uint32_t period = uint32_t(now_us / cookie_period_us) & 31;
    uint32_t mss_index = 0;
    for (uint32_t i = 0; i < cookie_mss.size(); ++i)
        if (cookie_mss[i] == mss)
            mss_index = i;
    const uint32_t mac = uint32_t(tuple_hash(key_of(secret_, 2), tuple,
                                             uint64_t(peer_seq) << 32 | period << 3 | mss_index));
    return period << 27 | mss_index << 24 | (mac & 0xffffff);
}

uint16_t TcpEndpoint::check_cookie(const FourTuple &tuple, uint32_t peer_seq, uint32_t cookie,
                                   uint64_t now_us) const {
    const uint32_t now_period = uint32_t(now_us / cookie_period_us);
    const uint32_t period = cookie >> 27;
    const uint32_t mss_index = (cookie >> 24) & 7;
    // This period's or the one before.
    if (period != (now_period & 31) && period != ((now_period - 1) & 31))
        return 0;
    const uint32_t mac = uint32_t(tuple_hash(key_of(secret_, 2), tuple,
                                             uint64_t(peer_seq) << 32 | period << 3 | mss_index));
    return (mac & 0xffffff) == (cookie & 0xffffff) ? cookie_mss[mss_index] : 0;
}

} // namespace sluice::tcp
