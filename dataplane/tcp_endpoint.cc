#include "dataplane/tcp_endpoint.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <new>

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
uint64_t keyed_tuple_hash(const SipKey &key, const FourTuple &tuple, uint64_t extra) {
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

namespace {
constexpr uint8_t slot_in_use = 1, slot_marked = 2;
} // namespace

// A connection with its tuple: it sends through the endpoint, and passes
// its events on to the layer above.
struct TcpEndpoint::Slot final : SegmentSink, ConnectionEvents {
    Slot(TcpEndpoint &endpoint, uint32_t id, const FourTuple &tuple, uint64_t hash,
         ConnectionEvents *events)
        : endpoint(endpoint), id(id), hash(hash), tuple(tuple), events(events),
          connection(endpoint.settings_, {tuple.local_port, tuple.remote_port}, *this, *this) {}

    void send_segment(const TcpHeader &header, const Payload &payload) override {
        // A segment out may have armed the retransmission timer: the wheel
        // hears of it at the next settle().
        endpoint.mark(id);
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
        // Freed at the next reap(), never under the connection's own feet.
        endpoint.closed_.push_back(id);
        if (events)
            events->on_closed(reason);
    }

    TcpEndpoint &endpoint;
    const uint32_t id;
    const uint64_t hash;  // tuple_hash(tuple)
    const FourTuple tuple;
    ConnectionEvents *events;
    bool half_open = false;
    Connection connection;
};

// Room for one slot, constructed in place when a connection opens.
struct TcpEndpoint::SlotStorage {
    alignas(Slot) unsigned char bytes[sizeof(Slot)];
};

namespace {
uint32_t id_count(size_t limit) { return uint32_t(std::min<size_t>(limit, UINT32_MAX - 1)); }
} // namespace

TcpEndpoint::TcpEndpoint(const Settings &settings, const EndpointLimits &limits,
                         LocalPorts ports, PacketSink &sink, uint64_t secret)
    : settings_(settings), limits_(limits), ports_(ports), sink_(sink), secret_(secret),
      table_key_(key_of(secret, 3)),
      // Default-initialized: the pages are touched only as slots are used.
      slot_storage_(new SlotStorage[id_count(limits.max_connections)]),
      slot_capacity_(id_count(limits.max_connections)),
      slot_flags_(slot_capacity_, 0), slot_index_(slot_capacity_), wheel_(slot_capacity_),
      time_wait_(new TimeWaitEntry[id_count(limits.max_time_wait)]),
      time_wait_index_(id_count(limits.max_time_wait)) {
    limits_.max_connections = slot_capacity_;
    limits_.max_time_wait = id_count(limits.max_time_wait);
    free_slots_.reserve(slot_capacity_);
    for (uint32_t id = slot_capacity_; id-- > 0;)
        free_slots_.push_back(id);  // the lowest ids first
    marked_.reserve(slot_capacity_);
    closed_.reserve(slot_capacity_);
    due_.reserve(slot_capacity_);
    for (uint32_t i = 0; i < limits_.max_time_wait; ++i)
        time_wait_[i].next = i + 1 < limits_.max_time_wait ? i + 1 : TupleIndex::none;
    time_wait_free_ = limits_.max_time_wait ? 0 : TupleIndex::none;
}

TcpEndpoint::~TcpEndpoint() {
    for (uint32_t id = 0; id < slot_capacity_; ++id)
        if (slot_flags_[id] & slot_in_use)
            slot(id).~Slot();
}

size_t TcpEndpoint::bytes_per_connection() {
    // The slot (with the connection), its flags and free-list entry, its
    // wheel links, and two index entries of 8 bytes (the index is at least
    // twice as large as the pool); marked_, closed_ and due_ hold an id each.
    return sizeof(SlotStorage) + 1 + 4 + 16 + 2 * 8 + 3 * 4;
}

size_t TcpEndpoint::bytes_per_time_wait_entry() { return sizeof(TimeWaitEntry) + 2 * 8; }

uint64_t TcpEndpoint::tuple_hash(const FourTuple &tuple) const {
    return keyed_tuple_hash(table_key_, tuple, 0);
}

TcpEndpoint::Slot &TcpEndpoint::slot(uint32_t id) const {
    return *std::launder(reinterpret_cast<Slot *>(slot_storage_[id].bytes));
}

TcpEndpoint::Slot *TcpEndpoint::find_slot(uint64_t hash, const FourTuple &tuple) const {
    const uint32_t id =
        slot_index_.find(hash, [&](uint32_t candidate) { return slot(candidate).tuple == tuple; });
    return id == TupleIndex::none ? nullptr : &slot(id);
}

long TcpEndpoint::probe_distance(const FourTuple &tuple) const {
    const uint64_t hash = tuple_hash(tuple);
    const Slot *found = find_slot(hash, tuple);
    return found ? long(slot_index_.distance(hash, found->id)) : -1;
}

uint32_t TcpEndpoint::find_time_wait(uint64_t hash, const FourTuple &tuple) const {
    return time_wait_index_.find(hash,
                                 [&](uint32_t index) { return time_wait_[index].tuple == tuple; });
}

bool TcpEndpoint::listen(const IpAddress &address, uint16_t port, AcceptHandler accept) {
    return listeners_.emplace(ListenKey{address, port}, std::move(accept)).second;
}

void TcpEndpoint::stop_listening(const IpAddress &address, uint16_t port) {
    listeners_.erase(ListenKey{address, port});
}

TcpEndpoint::Slot *TcpEndpoint::make_slot(const FourTuple &tuple, uint64_t hash,
                                          ConnectionEvents *events) {
    if (free_slots_.empty())
        return nullptr;
    const uint32_t id = free_slots_.back();
    free_slots_.pop_back();
    Slot *made = new (slot_storage_[id].bytes) Slot(*this, id, tuple, hash, events);
    slot_flags_[id] |= slot_in_use;
    slot_index_.insert(hash, id);
    ++connection_count_;
    return made;
}

void TcpEndpoint::free_slot(Slot &freed) {
    const uint32_t id = freed.id;
    slot_index_.erase(freed.hash, id);
    wheel_.remove(id);
    freed.~Slot();
    // The marked flag stays: marked_ may still hold the id once.
    slot_flags_[id] &= uint8_t(~slot_in_use);
    free_slots_.push_back(id);
    --connection_count_;
}

void TcpEndpoint::refile(Slot &filed) {
    if (filed.connection.closed())
        return;
    if (const uint64_t at = filed.connection.next_timer_us())
        wheel_.file_if_earlier(filed.id, at);
}

void TcpEndpoint::mark(uint32_t id) {
    if (slot_flags_[id] & slot_marked)
        return;
    slot_flags_[id] |= slot_marked;
    marked_.push_back(id);
}

void TcpEndpoint::touch(Connection &connection) {
    // The slot that holds it, by its place in the pool.
    const auto base = reinterpret_cast<uintptr_t>(slot_storage_.get());
    const auto at = reinterpret_cast<uintptr_t>(&connection);
    if (at < base || at >= base + uintptr_t(slot_capacity_) * sizeof(SlotStorage))
        return;
    const uint32_t id = uint32_t((at - base) / sizeof(SlotStorage));
    if ((slot_flags_[id] & slot_in_use) && &slot(id).connection == &connection)
        mark(id);
}

void TcpEndpoint::settle() {
    // refile() may not add to marked_: it only reads the connection.
    for (const uint32_t id : marked_) {
        slot_flags_[id] &= uint8_t(~slot_marked);
        if (slot_flags_[id] & slot_in_use)
            refile(slot(id));
    }
    marked_.clear();
}

Connection *TcpEndpoint::connect(const IpAddress &local, const IpAddress &remote,
                                 uint16_t remote_port, ConnectionEvents &events,
                                 uint64_t now_us) {
    const uint32_t count = uint32_t(ports_.last) - ports_.first + 1;
    for (uint32_t tried = 0; tried < count; ++tried) {
        const uint16_t port = uint16_t(ports_.first + (next_port_ + tried) % count);
        const FourTuple tuple{local, port, remote, remote_port};
        const uint64_t hash = tuple_hash(tuple);
        if (find_slot(hash, tuple) || find_time_wait(hash, tuple) != TupleIndex::none)
            continue;
        next_port_ = (next_port_ + tried + 1) % count;
        Slot *made = make_slot(tuple, hash, &events);
        if (!made) {
            ++counters_.refused_full;
            return nullptr;
        }
        ++counters_.connected;
        made->connection.connect(initial_sequence(tuple, now_us), now_us);
        refile(*made);
        return &made->connection;
    }
    return nullptr;
}

void TcpEndpoint::receive(const IpAddress &source, const IpAddress &destination,
                          const TcpSegment &segment, const uint8_t *payload, uint64_t now_us) {
    const TcpHeader &h = segment.header;
    const FourTuple tuple{destination, h.destination_port, source, h.source_port};
    // Connections the layer above aborted since: gone before the lookup.
    reap();
    const uint64_t hash = tuple_hash(tuple);
    if (Slot *found = find_slot(hash, tuple)) {
        Connection &connection = found->connection;
        connection.receive(segment, payload, now_us);
        if (connection.state() == State::time_wait)
            enter_time_wait(*found, now_us);
        refile(*found);
    } else if (find_time_wait(hash, tuple) != TupleIndex::none &&
               on_time_wait_segment(tuple, segment, now_us)) {
        return;
    } else if (const auto listener = listeners_.find(ListenKey{destination, h.destination_port});
               listener != listeners_.end()) {
        on_listener_segment(tuple, listener->second, segment, payload, now_us);
    } else {
        send_reset(tuple, segment);
        return;
    }
    // What the callbacks did to other connections.
    settle();
    reap();
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
        refile(*slot);
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
    refile(*slot);
}

TcpEndpoint::Slot *TcpEndpoint::admit(const FourTuple &tuple, const AcceptHandler &accept,
                                      const TcpSegment &segment) {
    Slot *slot = make_slot(tuple, tuple_hash(tuple), nullptr);
    if (!slot) {
        ++counters_.refused_full;
        send_reset(tuple, segment);
        return nullptr;
    }
    slot->events = accept(slot->connection, tuple);
    if (!slot->events) {
        // Refused by the layer above: reset, as a closed port would be.
        send_reset(tuple, segment);
        free_slot(*slot);  // never used: nothing refers to it
        return nullptr;
    }
    ++counters_.accepted;
    return slot;
}

bool TcpEndpoint::on_time_wait_segment(const FourTuple &tuple, const TcpSegment &segment,
                                       uint64_t now_us) {
    const uint32_t index = find_time_wait(tuple_hash(tuple), tuple);
    TimeWaitEntry &entry = time_wait_[index];
    const TcpHeader &h = segment.header;
    if (h.flags & flag::rst)
        return true;  // RFC 1337: a RST does not cut TIME-WAIT short
    if ((h.flags & (flag::syn | flag::ack)) == flag::syn && seq_gt(h.seq, entry.rcv_nxt)) {
        // RFC 6191: a new incarnation, past the old one's sequence numbers.
        erase_time_wait(index);
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
    if (h.flags & flag::fin) {
        // The wait starts again: the entry's deadline is now the latest, so
        // the list stays in the order of the deadlines.
        entry.until_us = now_us + 2ull * settings_.msl_us;
        unlink_time_wait(index);
        link_time_wait_last(index);
    }
    return true;
}

void TcpEndpoint::unlink_time_wait(uint32_t index) {
    TimeWaitEntry &entry = time_wait_[index];
    if (entry.prev != TupleIndex::none)
        time_wait_[entry.prev].next = entry.next;
    else
        time_wait_first_ = entry.next;
    if (entry.next != TupleIndex::none)
        time_wait_[entry.next].prev = entry.prev;
    else
        time_wait_last_ = entry.prev;
    entry.prev = entry.next = TupleIndex::none;
}

void TcpEndpoint::link_time_wait_last(uint32_t index) {
    TimeWaitEntry &entry = time_wait_[index];
    entry.prev = time_wait_last_;
    entry.next = TupleIndex::none;
    if (time_wait_last_ != TupleIndex::none)
        time_wait_[time_wait_last_].next = index;
    else
        time_wait_first_ = index;
    time_wait_last_ = index;
}

void TcpEndpoint::erase_time_wait(uint32_t index) {
    TimeWaitEntry &entry = time_wait_[index];
    time_wait_index_.erase(tuple_hash(entry.tuple), index);
    unlink_time_wait(index);
    entry.next = time_wait_free_;
    time_wait_free_ = index;
    --time_wait_count_;
}

void TcpEndpoint::enter_time_wait(Slot &waiting, uint64_t now_us) {
    const FourTuple &tuple = waiting.tuple;
    const Connection::Info info = waiting.connection.info();
    if (limits_.max_time_wait > 0) {
        if (time_wait_count_ == limits_.max_time_wait) {
            erase_time_wait(time_wait_first_);  // the oldest
            ++counters_.time_wait_evicted;
        }
        const uint32_t index = time_wait_free_;
        TimeWaitEntry &entry = time_wait_[index];
        time_wait_free_ = entry.next;
        entry.tuple = tuple;
        entry.snd_nxt = info.snd_nxt;
        entry.rcv_nxt = info.rcv_nxt;
        entry.until_us = now_us + 2ull * settings_.msl_us;
        link_time_wait_last(index);
        time_wait_index_.insert(waiting.hash, index);
        ++time_wait_count_;
    }
    ++counters_.time_wait_entered;
    // Closes the connection: the slot is freed at the next reap().
    waiting.connection.release_time_wait();
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
    if (!closed_.empty())
        return 1;  // closed connections to free: at once
    uint64_t next = wheel_.next_us();
    // Slots that sent or were touched since the last settle(): few, those
    // of the last burst. Rounded up to the tick the wheel will file them at.
    for (const uint32_t id : marked_) {
        if (!(slot_flags_[id] & slot_in_use))
            continue;
        uint64_t at = slot(id).connection.next_timer_us();
        at = (at + TimerWheel::tick_us - 1) / TimerWheel::tick_us * TimerWheel::tick_us;
        if (at && (!next || at < next))
            next = at;
    }
    if (time_wait_first_ != TupleIndex::none) {
        const uint64_t until = time_wait_[time_wait_first_].until_us;
        if (!next || until < next)
            next = until;
    }
    return next;
}

void TcpEndpoint::on_timer(uint64_t now_us) {
    settle();
    due_.clear();
    wheel_.expire(now_us, due_);
    // No slot is freed before reap() below, so the ids stay theirs even if
    // callbacks close connections or open new ones.
    for (const uint32_t id : due_) {
        Slot &fired = slot(id);
        Connection &connection = fired.connection;
        if (!(slot_flags_[id] & slot_in_use) || connection.closed())
            continue;
        const uint64_t at = connection.next_timer_us();
        if (!at)
            continue;  // disarmed since it was filed
        if (at > now_us) {
            wheel_.file(id, at);  // moved later since it was filed
            ++counters_.timer_wheel_refiled;
            continue;
        }
        ++counters_.timer_wheel_fired;
        connection.on_timer(now_us);
        if (!connection.closed()) {
            if (const uint64_t next = connection.next_timer_us())
                wheel_.file(id, next);
        }
    }
    // TIME-WAIT entries leave from the front, in the order of their deadlines.
    while (time_wait_first_ != TupleIndex::none &&
           time_wait_[time_wait_first_].until_us <= now_us)
        erase_time_wait(time_wait_first_);
    settle();
    reap();
}

void TcpEndpoint::reap() {
    // free_slot() may not add to closed_: destroying a closed connection
    // calls nothing back.
    for (const uint32_t id : closed_) {
        if (!(slot_flags_[id] & slot_in_use))
            continue;
        free_slot(slot(id));
        ++counters_.closed;
    }
    closed_.clear();
}

uint32_t TcpEndpoint::initial_sequence(const FourTuple &tuple, uint64_t now_us) const {
    // RFC 6528: a clock ticking every 4 us plus a keyed hash of the tuple.
    return uint32_t(now_us / 4) + uint32_t(keyed_tuple_hash(key_of(secret_, 1), tuple, 0));
}

uint32_t TcpEndpoint::make_cookie(const FourTuple &tuple, uint32_t peer_seq, uint16_t mss,
                                  uint64_t now_us) const {
    const uint32_t period = uint32_t(now_us / cookie_period_us) & 31;
    uint32_t mss_index = 0;
    for (uint32_t i = 0; i < cookie_mss.size(); ++i)
        if (cookie_mss[i] == mss)
            mss_index = i;
    const uint32_t mac = uint32_t(keyed_tuple_hash(key_of(secret_, 2), tuple,
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
    const uint32_t mac = uint32_t(keyed_tuple_hash(key_of(secret_, 2), tuple,
                                             uint64_t(peer_seq) << 32 | period << 3 | mss_index));
    return (mac & 0xffffff) == (cookie & 0xffffff) ? cookie_mss[mss_index] : 0;
}

} // namespace sluice::tcp
