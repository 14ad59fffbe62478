#include "dataplane/tcp_connection.h"

#include <algorithm>
#include <cstring>

namespace sluice::tcp {

namespace {

constexpr uint8_t max_window_shift = 14;  // RFC 7323 2.3
constexpr uint16_t default_peer_mss = 536;  // RFC 9293 3.7.1, without an MSS option
constexpr size_t timestamp_option_bytes = 12;

// RFC 6928: the initial window.
uint32_t initial_window(uint32_t mss) { return std::min(10 * mss, std::max(2 * mss, 14600u)); }

} // namespace

const char *to_string(State state) {
    switch (state) {
    case State::closed: return "CLOSED";
    case State::syn_sent: return "SYN-SENT";
    case State::syn_received: return "SYN-RECEIVED";
    case State::established: return "ESTABLISHED";
    case State::fin_wait_1: return "FIN-WAIT-1";
    case State::fin_wait_2: return "FIN-WAIT-2";
    case State::close_wait: return "CLOSE-WAIT";
    case State::closing: return "CLOSING";
    case State::last_ack: return "LAST-ACK";
    case State::time_wait: return "TIME-WAIT";
    }
    return "?";
}

const char *to_string(CloseReason reason) {
    switch (reason) {
    case CloseReason::none: return "none";
    case CloseReason::normal: return "normal";
    case CloseReason::reset: return "reset";
    case CloseReason::aborted: return "aborted";
    case CloseReason::timed_out: return "timed out";
    case CloseReason::refused: return "refused";
    }
    return "?";
}

// ---------------------------------------------------------------- the ring

void Connection::Ring::write(size_t offset, const uint8_t *data, size_t length) {
    size_t at = (start_ + offset) % capacity_;
    while (length > 0) {
        const size_t piece = std::min(length, capacity_ - at);
        std::memcpy(bytes_.get() + at, data, piece);
        data += piece;
        length -= piece;
        at = 0;
    }
}

Payload Connection::Ring::view(size_t offset, size_t length) const {
    const size_t at = (start_ + offset) % capacity_;
    Payload payload;
    payload.first = bytes_.get() + at;
    payload.first_length = std::min(length, capacity_ - at);
    if (payload.first_length < length) {
        payload.second = bytes_.get();
        payload.second_length = length - payload.first_length;
    }
    return payload;
}

// ---------------------------------------------------------------- opening

Connection::Connection(const Settings &settings, Endpoints endpoints, SegmentSink &sink,
                       ConnectionEvents &events)
    : settings_(settings), endpoints_(endpoints), sink_(sink), events_(events),
      send_ring_(settings.send_buffer), receive_ring_(settings.receive_buffer) {
    settings_.window_shift = std::min(settings_.window_shift, max_window_shift);
    rto_us_ = settings_.rto_initial_us;
}

void Connection::connect(uint32_t iss, uint64_t now_us) {
    iss_ = snd_una_ = iss;
    snd_nxt_ = snd_max_ = iss + 1;
    enter(State::syn_sent);
    send_control(flag::syn, iss_, now_us);
    timing_ = true;
    timed_seq_ = iss_;
    timed_at_ = now_us;
    arm_retransmit(now_us);
}

bool Connection::accept(const TcpSegment &syn, uint32_t iss, uint64_t now_us) {
    const TcpHeader &h = syn.header;
    if (state_ != State::closed || (h.flags & (flag::syn | flag::ack | flag::rst)) != flag::syn)
        return false;
    irs_ = h.seq;
    rcv_nxt_ = rcv_adv_ = irs_ + 1;
    take_peer_options(h.options, false);
    snd_wnd_ = max_snd_wnd_ = h.window;  // never scaled on a SYN (RFC 7323 2.2)
    snd_wl1_ = h.seq;
    iss_ = snd_una_ = iss;
    snd_nxt_ = snd_max_ = iss + 1;
    enter(State::syn_received);
    send_control(flag::syn | flag::ack, iss_, now_us);
    timing_ = true;
    timed_seq_ = iss_;
    timed_at_ = now_us;
    arm_retransmit(now_us);
    return true;
}

void Connection::accept_cookie(const TcpSegment &ack, const uint8_t *payload, uint32_t iss,
                               uint16_t peer_mss, uint64_t now_us) {
    const TcpHeader &h = ack.header;
    irs_ = h.seq - 1;
    rcv_nxt_ = rcv_adv_ = h.seq;
    iss_ = iss;
    snd_una_ = snd_nxt_ = snd_max_ = iss + 1;
    peer_mss_ = peer_mss;
    snd_wnd_ = max_snd_wnd_ = h.window;  // unscaled: no scaling was agreed
    snd_wl1_ = h.seq;
    snd_wl2_ = h.ack;
    cwnd_ = initial_window(peer_mss_);
    last_heard_us_ = now_us;
    enter(State::established);
    events_.on_established();
    if (!closed() && ack.payload_length > 0)
        receive(ack, payload, now_us);
}

void Connection::take_peer_options(const TcpOptions &options, bool syn_ack) {
    peer_mss_ = options.mss ? std::max<uint16_t>(*options.mss, 64) : default_peer_mss;
    // Scaling, SACK and timestamps hold only when both sides offered them;
    // a SYN-ACK carries them only if our SYN did (RFC 7323 1.3, RFC 2018 2).
    (void)syn_ack;
    scaling_ = options.window_scale.has_value();
    if (scaling_) {
        snd_shift_ = std::min(*options.window_scale, max_window_shift);
        rcv_shift_ = settings_.window_shift;
    } else {
        snd_shift_ = rcv_shift_ = 0;
    }
    sack_ = settings_.sack && options.sack_permitted;
    timestamps_ = settings_.timestamps && options.timestamp.has_value();
    if (timestamps_)
        ts_recent_ = options.timestamp->first;
}

void Connection::receive_syn_sent(const TcpSegment &segment, uint64_t now_us) {
    const TcpHeader &h = segment.header;
    const bool has_ack = h.flags & flag::ack;
    // RFC 9293 3.10.7.3: an ACK must acknowledge our SYN and nothing more.
    if (has_ack && (seq_le(h.ack, iss_) || seq_gt(h.ack, snd_max_))) {
        if (!(h.flags & flag::rst))
            send_control(flag::rst, h.ack, now_us);
        return;
    }
    if (h.flags & flag::rst) {
        if (has_ack)  // RFC 5961 3.2: only a RST that acknowledges our SYN counts
            close(CloseReason::refused);
        return;
    }
    if (!(h.flags & flag::syn))
        return;
    irs_ = h.seq;
    rcv_nxt_ = rcv_adv_ = irs_ + 1;
    take_peer_options(h.options, true);
    snd_wnd_ = max_snd_wnd_ = h.window;
    snd_wl1_ = h.seq;
    snd_wl2_ = h.ack;
    if (!has_ack) {
        // Simultaneous open: both SYNs crossed.
        enter(State::syn_received);
        send_control(flag::syn | flag::ack, iss_, now_us);
        return;
    }
    snd_una_ = h.ack;
    if (timing_ && !timestamps_)
        take_rtt_sample(uint32_t(now_us - timed_at_));
    else if (timestamps_ && h.options.timestamp && h.options.timestamp->second != 0)
        take_rtt_sample((ts_now(now_us) - h.options.timestamp->second) * 1000);
    timing_ = false;
    retransmit_at_ = 0;
    backoffs_ = 0;
    cwnd_ = initial_window(peer_mss_);
    last_heard_us_ = now_us;
    enter(State::established);
    send_ack(now_us);
    events_.on_established();
    if (!closed())
        output(now_us);
}

// ---------------------------------------------------------------- receiving

void Connection::receive(const TcpSegment &segment, const uint8_t *payload, uint64_t now_us) {
    switch (state_) {
    case State::closed: return;
    case State::syn_sent: receive_syn_sent(segment, now_us); return;
    default: process_synchronized(segment, payload, now_us); return;
    }
}

bool Connection::acceptable(const TcpSegment &segment) const {
    const TcpHeader &h = segment.header;
    const uint32_t length = segment.payload_length + ((h.flags & flag::syn) ? 1 : 0) +
                            ((h.flags & flag::fin) ? 1 : 0);
    const uint32_t window = receive_window();
    const auto in_window = [&](uint32_t seq) {
        return seq_le(rcv_nxt_, seq) && seq_lt(seq, rcv_nxt_ + window);
    };
    // A closed window takes nothing, but a segment at RCV.NXT still brings
    // its ACK, RST or FIN, none of which needs room (RFC 9293 3.10.7.4's
    // "special allowance"); its data is dropped and acknowledged.
    if (window == 0)
        return h.seq == rcv_nxt_;
    if (length == 0)
        return in_window(h.seq);
    return in_window(h.seq) || in_window(h.seq + length - 1);
}

void Connection::process_synchronized(const TcpSegment &segment, const uint8_t *payload,
                                      uint64_t now_us) {
    const TcpHeader &h = segment.header;
    const bool rst = h.flags & flag::rst;

    // The peer's SYN again: our SYN-ACK was lost. Send it again now rather
    // than at our next timeout, as Linux does.
    if (state_ == State::syn_received && (h.flags & (flag::syn | flag::ack | flag::rst)) ==
                                             flag::syn && h.seq == irs_) {
        ++retransmissions_;
        send_control(flag::syn | flag::ack, iss_, now_us);
        return;
    }

    // PAWS (RFC 7323 5.3): an older timestamp is an old duplicate.
    if (timestamps_ && h.options.timestamp && !rst &&
        seq_lt(h.options.timestamp->first, ts_recent_)) {
        send_ack(now_us);
        return;
    }
    if (!acceptable(segment)) {
        if (!rst) {
            send_ack(now_us);
            // A retransmitted FIN in TIME-WAIT: acknowledged, and the wait
            // starts over (RFC 9293 3.10.7.4, eighth step).
            if (state_ == State::time_wait && (h.flags & flag::fin))
                time_wait_until_ = now_us + 2ull * settings_.msl_us;
        }
        return;
    }
    // RFC 5961 3.2: only a RST at exactly RCV.NXT resets; another in the
    // window may be forged, and the peer, if it is real, answers a
    // challenge ACK with the exact one.
    if (rst) {
        if (h.seq == rcv_nxt_)
            close(CloseReason::reset);
        else
            send_challenge_ack(now_us);
        return;
    }
    // RFC 5961 4.2: a SYN in a synchronized state gets a challenge ACK.
    if (h.flags & flag::syn) {
        send_challenge_ack(now_us);
        return;
    }
    if (!(h.flags & flag::ack))
        return;
    last_heard_us_ = now_us;
    keepalive_probes_sent_ = 0;
    if (timestamps_ && h.options.timestamp && seq_le(h.seq, last_ack_sent_))
        ts_recent_ = h.options.timestamp->first;
    if (!process_ack(segment, now_us) || closed())
        return;

    if (segment.payload_length > 0) {
        if (state_ == State::established || state_ == State::fin_wait_1 ||
            state_ == State::fin_wait_2)
            process_data(segment, payload + segment.payload_offset, now_us);
        if (closed())
            return;
    }
    // A FIN counts once every byte before it has arrived.
    if ((h.flags & flag::fin) && h.seq + segment.payload_length == rcv_nxt_)
        process_fin(now_us);
    if (closed())
        return;
    output(now_us);
    if (!closed())
        report_send_space();
}

// False when the segment is to be dropped after the ACK.
bool Connection::process_ack(const TcpSegment &segment, uint64_t now_us) {
    const TcpHeader &h = segment.header;
    if (state_ == State::syn_received) {
        // RFC 9293 3.10.7.4: an ACK that does not take our SYN is reset.
        if (!seq_gt(h.ack, snd_una_) || seq_gt(h.ack, snd_max_)) {
            send_control(flag::rst, h.ack, now_us);
            return false;
        }
        // Our SYN is acknowledged.
        cwnd_ = initial_window(peer_mss_);
        enter(State::established);
        events_.on_established();
        if (closed())
            return false;
    }
    // RFC 5961 5.2: an ACK for data never sent, or too old to be real.
    if (seq_gt(h.ack, snd_max_) || seq_lt(h.ack, snd_una_ - max_snd_wnd_)) {
        send_challenge_ack(now_us);
        return false;
    }
    // The peer is there: retransmissions and probes start counting again
    // (RFC 9293 3.8.6.1: a zero window held open is no reason to give up).
    retries_ = 0;
    if (sack_)
        scoreboard_.update(seq_gt(h.ack, snd_una_) ? h.ack : snd_una_, snd_max_,
                           h.options.sack.data(), h.options.sack_count);

    const uint32_t scaled_window = uint32_t(h.window) << snd_shift_;
    const bool window_update = seq_lt(snd_wl1_, h.seq) ||
                               (snd_wl1_ == h.seq && seq_le(snd_wl2_, h.ack));
    const bool window_changed = window_update && scaled_window != snd_wnd_;

    if (seq_gt(h.ack, snd_una_)) {
        uint32_t acked = h.ack - snd_una_;
        // The SYN and the FIN take a sequence number each but no buffer byte.
        if (snd_una_ == iss_)
            --acked;
        const bool fin_acked = fin_sent_ && seq_gt(h.ack, fin_seq_);
        const size_t data_acked = std::min<size_t>(acked - (fin_acked ? 1 : 0), queued_);
        send_ring_.advance(data_acked);
        queued_ -= data_acked;
        snd_una_ = h.ack;
        if (seq_lt(snd_nxt_, snd_una_))
            snd_nxt_ = snd_una_;

        if (timestamps_ && h.options.timestamp && h.options.timestamp->second != 0)
            take_rtt_sample((ts_now(now_us) - h.options.timestamp->second) * 1000);
        else if (timing_ && seq_gt(h.ack, timed_seq_))
            take_rtt_sample(uint32_t(now_us - timed_at_));
        if (timing_ && seq_gt(h.ack, timed_seq_))
            timing_ = false;

        const uint32_t mss = peer_mss_;
        if (going_back_ && seq_ge(h.ack, recover_))
            going_back_ = false;
        if (in_recovery_) {
            if (seq_ge(h.ack, recover_)) {
                // Full acknowledgment (RFC 6582 3.2, step 3).
                cwnd_ = std::min(ssthresh_, std::max(flight_size(), mss) + mss);
                in_recovery_ = sack_recovery_ = false;
            } else if (sack_recovery_) {
                // RFC 6675 5 (C): the holes the blocks show, as the pipe allows.
                retransmit_holes(now_us, false);
            } else {
                // Partial: the next hole is lost too.
                retransmit_first(now_us);
                cwnd_ = cwnd_ > acked ? cwnd_ - acked : mss;
                if (acked >= mss)
                    cwnd_ += mss;
            }
        } else if (cwnd_ < ssthresh_) {
            cwnd_ += std::min(acked, mss);  // slow start (RFC 5681 3.1)
        } else if (settings_.congestion == Congestion::cubic) {
            cwnd_ = cubic_.on_ack(cwnd_, acked, mss, now_us, srtt_us_);
        } else {
            cwnd_ += std::max<uint32_t>(1, uint32_t(uint64_t(mss) * mss / cwnd_));
        }
        dupacks_ = 0;
        backoffs_ = 0;
        rto_us_ = srtt_us_ ? std::clamp(srtt_us_ + std::max<uint32_t>(4 * rttvar_us_, 1000),
                                        settings_.rto_min_us, settings_.rto_max_us)
                           : settings_.rto_initial_us;
        retransmit_at_ = 0;
        if (flight_size() > 0)
            arm_retransmit(now_us);

        if (fin_acked) {
            if (state_ == State::fin_wait_1)
                enter(State::fin_wait_2);
            else if (state_ == State::closing) {
                enter(State::time_wait);
                time_wait_until_ = now_us + 2ull * settings_.msl_us;
            } else if (state_ == State::last_ack) {
                close(CloseReason::normal);
                return false;
            }
        }
    } else if (h.ack == snd_una_ && segment.payload_length == 0 &&
               !(h.flags & (flag::syn | flag::fin)) && !window_changed && flight_size() > 0 &&
               scaled_window > 0) {
        // A duplicate ACK (RFC 5681 2): the peer holds data past a hole.
        // (Answers to zero-window probes are not: nothing was lost.)
        if (++dupacks_ == 3 && !in_recovery_ && !going_back_)
            enter_recovery(now_us);
        else if (in_recovery_ && sack_recovery_)
            retransmit_holes(now_us, false);
        else if (dupacks_ > 3 && in_recovery_)
            cwnd_ += peer_mss_;  // each one says a segment left the network
    } else if (h.ack == snd_una_ && in_recovery_ && sack_recovery_) {
        // Not a duplicate by RFC 5681's letter (Linux's receive window
        // grows on many of them), but its SACK blocks may have shrunk the
        // pipe: RFC 6675 5 (C) runs on every ACK in recovery.
        retransmit_holes(now_us, false);
    }
    // RFC 6675 4 (IsLost): more than DupThresh - 1 segments SACKed above
    // the first unacknowledged one mean it is lost, duplicate ACKs or not
    // (ACKs lost, or stretched).
    if (sack_ && !in_recovery_ && !going_back_ && flight_size() > 0 &&
        scoreboard_.sacked_bytes() > 2u * peer_mss_)
        enter_recovery(now_us);
    if (window_update) {
        snd_wnd_ = scaled_window;
        max_snd_wnd_ = std::max(max_snd_wnd_, snd_wnd_);
        snd_wl1_ = h.seq;
        snd_wl2_ = h.ack;
    }
    // In TIME-WAIT nothing is left to acknowledge or to send.
    return state_ != State::time_wait;
}

void Connection::process_data(const TcpSegment &segment, const uint8_t *data, uint64_t now_us) {
    uint32_t seq = segment.header.seq;
    size_t length = segment.payload_length;
    if (seq_lt(seq, rcv_nxt_)) {
        const uint32_t old = rcv_nxt_ - seq;
        if (old >= length) {
            send_ack(now_us);  // all of it arrived before: the peer missed our ACK
            return;
        }
        data += old;
        length -= old;
        seq = rcv_nxt_;
    }
    // Nothing beyond the window we offered (RFC 9293 3.10.7.4): the rest
    // is dropped, and the peer hears at once where the window ends.
    const uint32_t window_end = rcv_nxt_ + receive_window();
    const size_t room = seq_lt(seq, window_end) ? window_end - seq : 0;
    const bool trimmed = length > room;
    length = std::min(length, room);
    if (length == 0) {
        send_ack(now_us);
        return;
    }
    if (seq != rcv_nxt_) {
        hold(seq, data, length);
        send_ack(now_us);  // at once, with SACK blocks: fast retransmit needs it
        return;
    }
    const bool filled_hole = !held_.empty();
    // The segment goes up in place, unless the reader has bytes to take
    // before it: then it waits in the ring behind them.
    const bool reader_ready = unread_ == 0;
    rcv_nxt_ += uint32_t(length);
    // Counted unread while offered, so that a window sent from inside
    // on_data() does not promise room the reader may keep.
    unread_ += length;
    size_t taken = 0;
    if (reader_ready) {
        offering_ = true;
        taken = std::min(events_.on_data(data, length), length);
        offering_ = false;
        if (closed())
            return;
        receive_ring_.advance(taken);
        unread_ -= taken;
    }
    receive_ring_.write(unread_ - (length - taken), data + taken, length - taken);
    absorb_held();
    if (reader_ready && taken == length) {
        offer_unread();
        if (closed())
            return;
    }
    ++unacked_segments_;
    if (filled_hole || trimmed || unacked_segments_ >= 2)
        send_ack(now_us);
    else if (!delayed_ack_at_)
        delayed_ack_at_ = now_us + settings_.delayed_ack_us;
}

void Connection::hold(uint32_t seq, const uint8_t *data, size_t length) {
    // No room to remember another hole: the peer sends it again.
    if (!held_.insert(seq, seq + uint32_t(length), &newest_held_))
        return;
    receive_ring_.write(unread_ + (seq - rcv_nxt_), data, length);
}

// The blocks held out of order that the last segment joined become bytes
// in order, unread, where they lie in the ring.
void Connection::absorb_held() {
    while (!held_.empty() && seq_le(held_[0].left, rcv_nxt_)) {
        const auto block = held_.pop_front();
        if (seq_gt(block.right, rcv_nxt_)) {
            unread_ += block.right - rcv_nxt_;
            rcv_nxt_ = block.right;
        }
    }
}

// Offers the unread bytes from the ring, in place (nothing writes to it
// until the next segment), until the reader takes less than it is offered.
void Connection::offer_unread() {
    offering_ = true;
    while (unread_ > 0) {
        const Payload piece = receive_ring_.view(0, unread_);
        const size_t taken =
            std::min(events_.on_data(piece.first, piece.first_length), piece.first_length);
        if (closed())
            break;
        receive_ring_.advance(taken);
        unread_ -= taken;
        if (taken < piece.first_length)
            break;
    }
    offering_ = false;
}

// The peer's FIN is news for the reader once it has taken every byte before it.
void Connection::report_fin_if_read() {
    if (fin_unreported_ && unread_ == 0) {
        fin_unreported_ = false;
        events_.on_peer_finished();
    }
}

void Connection::resume_receiving(uint64_t now_us) {
    if (closed() || offering_)
        return;
    offer_unread();
    if (closed())
        return;
    report_fin_if_read();
    if (closed())
        return;
    // A window update, when receive_window() finds the right edge moved
    // far enough to be worth one (RFC 9293 3.8.6.2.2).
    const bool receiving = state_ == State::established || state_ == State::fin_wait_1 ||
                           state_ == State::fin_wait_2;
    if (receiving && seq_gt(rcv_nxt_ + receive_window(), rcv_adv_))
        send_ack(now_us);
}

void Connection::process_fin(uint64_t now_us) {
    // The FIN takes a sequence number but no byte of the ring; nothing
    // more is written to it.
    ++rcv_nxt_;
    send_ack(now_us);
    switch (state_) {
    case State::syn_received:
    case State::established: enter(State::close_wait); break;
    case State::fin_wait_1:
        // Our FIN not yet acknowledged: both closed at once.
        enter(State::closing);
        break;
    case State::fin_wait_2:
        enter(State::time_wait);
        time_wait_until_ = now_us + 2ull * settings_.msl_us;
        retransmit_at_ = 0;
        break;
    default: break;
    }
    fin_unreported_ = true;
    report_fin_if_read();
}

// ---------------------------------------------------------------- sending

size_t Connection::send(const uint8_t *data, size_t length, uint64_t now_us) {
    const bool open = state_ == State::established || state_ == State::close_wait ||
                      state_ == State::syn_sent || state_ == State::syn_received;
    if (!open || fin_queued_)
        return 0;
    const size_t accepted = std::min(length, send_space());
    if (accepted < length)
        send_blocked_ = true;
    send_ring_.write(queued_, data, accepted);
    queued_ += accepted;
    if (state_ == State::established || state_ == State::close_wait)
        output(now_us);
    return accepted;
}

size_t Connection::send_space() const {
    const bool open = state_ == State::established || state_ == State::close_wait ||
                      state_ == State::syn_sent || state_ == State::syn_received;
    return open && !fin_queued_ ? send_ring_.capacity() - queued_ : 0;
}

void Connection::report_send_space() {
    if (!send_blocked_)
        return;
    // Half the buffer at least, so that the writer comes back for big
    // pieces rather than for what each ACK frees.
    const size_t space = send_space();
    if (space == 0 || space < send_ring_.capacity() / 2)
        return;
    send_blocked_ = false;
    events_.on_send_space(space);
}

void Connection::shutdown(uint64_t now_us) {
    if (fin_queued_)
        return;
    switch (state_) {
    case State::syn_sent: close(CloseReason::normal); return;
    case State::syn_received:
    case State::established: enter(State::fin_wait_1); break;
    case State::close_wait: enter(State::last_ack); break;
    default: return;
    }
    fin_queued_ = true;
    output(now_us);
}

void Connection::abort(uint64_t now_us) {
    if (closed())
        return;
    if (state_ != State::syn_sent && state_ != State::time_wait)
        send_control(flag::rst | flag::ack, snd_nxt_, now_us);
    close(CloseReason::aborted);
}

void Connection::release_time_wait() {
    if (state_ == State::time_wait)
        close(CloseReason::normal);
}

size_t Connection::unsent() const {
    // Bytes in the ring from snd_nxt_ on (snd_una_ is the ring's start).
    const uint32_t data_start = snd_una_ == iss_ ? iss_ + 1 : snd_una_;
    const size_t in_flight = seq_gt(snd_nxt_, data_start) ? snd_nxt_ - data_start : 0;
    const size_t fin = fin_sent_ && seq_gt(snd_nxt_, fin_seq_) ? 1 : 0;
    const size_t sent = std::min(in_flight - std::min(in_flight, fin), queued_);
    return queued_ - sent;
}

void Connection::output(uint64_t now_us) {
    const bool sending = state_ == State::established || state_ == State::close_wait ||
                         state_ == State::fin_wait_1 || state_ == State::last_ack ||
                         state_ == State::closing;
    if (!sending)
        return;
    const size_t mss = segment_size();
    for (;;) {
        // The congestion window against what is in the network (the pipe,
        // in SACK recovery), the peer's against the sequence space.
        const uint32_t in_flight = sack_recovery_ ? pipe() : flight_size();
        const uint32_t congestion_room = cwnd_ > in_flight ? cwnd_ - in_flight : 0;
        const uint32_t peer_room =
            seq_lt(snd_nxt_, snd_una_ + snd_wnd_) ? snd_una_ + snd_wnd_ - snd_nxt_ : 0;
        const uint32_t usable = std::min(congestion_room, peer_room);
        const size_t pending = unsent();
        const bool fin_due = fin_queued_ && !fin_sent_ && pending == 0;
        if (pending == 0 && !fin_due)
            break;
        if (pending > 0) {
            size_t length = std::min<size_t>({pending, mss, usable});
            // Sender-side silly window avoidance (RFC 9293 3.8.6.2.1): a
            // small segment only when it is all there is and nothing is in
            // flight, or it is the last piece.
            if (length == 0 || (length < mss && length < pending && flight_size() > 0))
                break;
            const bool fin = fin_queued_ && length == pending;
            send_data(snd_nxt_, length, fin, now_us);
            continue;
        }
        send_data(snd_nxt_, 0, true, now_us);
    }
    // A zero window with data waiting: probe it (the retransmission timer
    // doubles as the persist timer).
    if (snd_wnd_ == 0 && unsent() > 0 && !retransmit_at_)
        arm_retransmit(now_us);
    if (delayed_ack_at_ && unacked_segments_ == 0)
        delayed_ack_at_ = 0;
}

// Sends `length` bytes from sequence number `seq`, and the FIN after them
// when `fin`; advances snd_nxt_ when this is new data.
void Connection::send_data(uint32_t seq, size_t length, bool fin, uint64_t now_us) {
    TcpHeader header;
    header.source_port = endpoints_.local_port;
    header.destination_port = endpoints_.remote_port;
    header.seq = seq;
    header.ack = rcv_nxt_;
    header.flags = flag::ack | (length > 0 ? flag::psh : 0) | (fin ? flag::fin : 0);
    header.window = advertised_window();
    rcv_adv_ = rcv_nxt_ + (uint32_t(header.window) << rcv_shift_);
    fill_options(header, false, now_us);
    const uint32_t data_start = snd_una_ == iss_ ? iss_ + 1 : snd_una_;
    sink_.send_segment(header, send_ring_.view(seq - data_start, length));
    last_ack_sent_ = rcv_nxt_;
    unacked_segments_ = 0;
    delayed_ack_at_ = 0;

    const uint32_t end = seq + uint32_t(length) + (fin ? 1 : 0);
    const uint64_t previous_data_sent_us = last_data_sent_us_;
    if (length > 0)
        last_data_sent_us_ = now_us;
    if (fin) {
        fin_sent_ = true;
        fin_seq_ = seq + uint32_t(length);
    }
    if (seq_gt(end, snd_nxt_)) {
        // New data after a pause with nothing in flight: the window was
        // not in use, so CUBIC's curve does not move on for that time.
        if (length > 0 && flight_size() == 0 && previous_data_sent_us &&
            now_us > previous_data_sent_us)
            cubic_.on_idle(now_us - previous_data_sent_us);
        snd_nxt_ = end;
        if (!timing_ && seq_ge(seq, snd_max_)) {  // Karn: time new data only
            timing_ = true;
            timed_seq_ = seq;
            timed_at_ = now_us;
        }
    }
    if (seq_gt(snd_nxt_, snd_max_))
        snd_max_ = snd_nxt_;
    if (!retransmit_at_)
        arm_retransmit(now_us);
}

void Connection::enter_recovery(uint64_t now_us) {
    ssthresh_ = ssthresh_after_loss(false);
    recover_ = snd_max_;
    in_recovery_ = true;
    ++fast_retransmits_;
    sack_recovery_ = sack_ && !scoreboard_.empty();
    if (!sack_recovery_) {
        // NewReno (RFC 6582 3.2): the first segment, and a window inflated
        // by the three segments the duplicate ACKs say have left.
        retransmit_first(now_us);
        cwnd_ = ssthresh_ + 3 * peer_mss_;
        return;
    }
    // RFC 6675 5 (4): no inflation, the pipe counts what left; the first
    // hole goes at once, then more as the pipe allows.
    cwnd_ = ssthresh_;
    high_rxt_ = snd_una_;
    retransmit_holes(now_us, true);
}

// Bytes in the network, by RFC 6675 SetPipe() with every hole below the
// highest SACKed byte taken as lost (as FACK did): what was sent above the
// highest block, and the holes sent again in this recovery.
uint32_t Connection::pipe() const {
    const uint32_t highest = scoreboard_.highest(snd_una_);
    const uint32_t above = seq_gt(snd_nxt_, highest) ? snd_nxt_ - highest : 0;
    const uint32_t resent_to = seq_lt(high_rxt_, highest) ? high_rxt_ : highest;
    return above + scoreboard_.unsacked_between(snd_una_, resent_to);
}

// RFC 6675 5 (C): NextSeg() and send, while the pipe leaves room in cwnd;
// `first_anyway` sends one segment whatever the pipe says (5 (4.3)).
void Connection::retransmit_holes(uint64_t now_us, bool first_anyway) {
    if (seq_lt(high_rxt_, snd_una_))
        high_rxt_ = snd_una_;
    const uint32_t data_start = snd_una_ == iss_ ? iss_ + 1 : snd_una_;
    uint32_t in_flight = pipe();
    while (first_anyway || in_flight < cwnd_) {
        uint32_t seq = 0, end = 0;
        if (!scoreboard_.next_hole(snd_una_, high_rxt_, seq, end))
            break;
        // Only bytes still queued: a block past them would be bogus.
        const size_t sent_data = std::min<size_t>(queued_, snd_max_ - data_start);
        const size_t offset = seq - data_start;
        if (offset >= sent_data)
            break;
        const size_t length = std::min<size_t>({segment_size(), end - seq, sent_data - offset});
        ++retransmissions_;
        timing_ = false;  // Karn
        send_data(seq, length, false, now_us);
        high_rxt_ = seq + uint32_t(length);
        in_flight += uint32_t(length);
        first_anyway = false;
    }
}

size_t Connection::segment_size() const {
    return std::min<size_t>(peer_mss_, settings_.mss) - (timestamps_ ? timestamp_option_bytes : 0);
}

void Connection::retransmit_first(uint64_t now_us) {
    ++retransmissions_;
    timing_ = false;
    const uint32_t data_start = snd_una_ == iss_ ? iss_ + 1 : snd_una_;
    const size_t mss = segment_size();
    const size_t sent_data = std::min<size_t>(queued_, snd_max_ - data_start);
    const size_t length = std::min(mss, sent_data);
    // The FIN rides with the last byte, or alone: after a timeout has gone
    // back (fin_sent_ cleared) it must go again too, or a lost FIN with
    // no data before it is never sent again.
    const bool fin = fin_queued_ && length == queued_;
    const uint32_t snd_nxt = snd_nxt_;
    send_data(snd_una_, length, fin, now_us);
    snd_nxt_ = seq_gt(snd_nxt, snd_nxt_) ? snd_nxt : snd_nxt_;
}

void Connection::send_control(uint8_t flags, uint32_t seq, uint64_t now_us) {
    TcpHeader header;
    header.source_port = endpoints_.local_port;
    header.destination_port = endpoints_.remote_port;
    header.seq = seq;
    header.flags = flags;
    if (flags & flag::ack)
        header.ack = rcv_nxt_;
    if (!(flags & flag::rst)) {
        // A SYN's window is never scaled (RFC 7323 2.2).
        const bool syn = flags & flag::syn;
        header.window = syn ? uint16_t(std::min<uint32_t>(settings_.receive_buffer, 65535))
                            : advertised_window();
        rcv_adv_ = rcv_nxt_ + (uint32_t(header.window) << (syn ? 0 : rcv_shift_));
        fill_options(header, syn, now_us);
    }
    sink_.send_segment(header, Payload{});
    if (flags & flag::ack) {
        last_ack_sent_ = rcv_nxt_;
        unacked_segments_ = 0;
        delayed_ack_at_ = 0;
    }
}

void Connection::send_ack(uint64_t now_us) { send_control(flag::ack, snd_nxt_, now_us); }

void Connection::send_challenge_ack(uint64_t now_us) {
    // RFC 5961 7 asks for a rate limit; the owner's per-worker limit of
    // segments sent to one peer is where that belongs.
    ++challenge_acks_;
    send_ack(now_us);
}

void Connection::fill_options(TcpHeader &header, bool syn, uint64_t now_us) const {
    TcpOptions &o = header.options;
    if (syn) {
        o.mss = settings_.mss;
        // A SYN-ACK offers only what the SYN offered (RFC 7323 2.2).
        const bool answering = header.flags & flag::ack;
        if (!answering || scaling_)
            o.window_scale = settings_.window_shift;
        o.sack_permitted = answering ? sack_ : settings_.sack;
        if (answering ? timestamps_ : settings_.timestamps)
            o.timestamp = std::make_pair(ts_now(now_us), answering ? ts_recent_ : 0u);
        return;
    }
    if (timestamps_)
        o.timestamp = std::make_pair(ts_now(now_us), ts_recent_);
    if (sack_ && !held_.empty()) {
        // The block with the newest data first (RFC 2018 4), then the rest.
        const size_t room = timestamps_ ? 3 : 4;
        for (size_t i = 0; i < held_.size() && o.sack_count < room; ++i)
            if (held_[i].left == newest_held_)
                o.sack[o.sack_count++] = {held_[i].left, held_[i].right};
        for (size_t i = 0; i < held_.size() && o.sack_count < room; ++i)
            if (held_[i].left != newest_held_)
                o.sack[o.sack_count++] = {held_[i].left, held_[i].right};
    }
}

uint32_t Connection::receive_window() const {
    // The ring's room past RCV.NXT: what the reader has not taken shrinks it.
    const uint32_t capacity = uint32_t(receive_ring_.capacity());
    const uint32_t free = capacity - uint32_t(unread_);
    const uint32_t offered =
        std::min(seq_gt(rcv_adv_, rcv_nxt_) ? rcv_adv_ - rcv_nxt_ : 0u, free);
    // Receiver silly window avoidance (RFC 9293 3.8.6.2.2, RFC 1122
    // 4.2.3.3): the right edge moves only by min(half the buffer, an MSS)
    // or more; until then the window offered only shrinks as data comes.
    const uint32_t step = std::min<uint32_t>(capacity / 2, settings_.mss);
    uint32_t window = free >= offered + step ? free : offered;
    // What the header can say: a multiple of the scale, at most 65535 of them.
    window = std::min<uint32_t>(window, uint32_t(65535) << rcv_shift_);
    return window >> rcv_shift_ << rcv_shift_;
}

uint16_t Connection::advertised_window() const {
    return uint16_t(std::min<uint32_t>(receive_window() >> rcv_shift_, 65535));
}

// ---------------------------------------------------------------- timers

uint32_t Connection::ssthresh_after_loss(bool timeout) {
    if (settings_.congestion == Congestion::cubic)
        return timeout ? cubic_.on_timeout(cwnd_, flight_size(), peer_mss_)
                       : cubic_.on_loss(cwnd_, flight_size(), peer_mss_);
    return std::max(flight_size() / 2, 2u * peer_mss_);  // RFC 5681 (4)
}

void Connection::take_rtt_sample(uint32_t rtt_us) {
    // RFC 6298 2.2 and 2.3, in microseconds.
    if (srtt_us_ == 0) {
        srtt_us_ = std::max<uint32_t>(rtt_us, 1);
        rttvar_us_ = rtt_us / 2;
    } else {
        const uint32_t delta = srtt_us_ > rtt_us ? srtt_us_ - rtt_us : rtt_us - srtt_us_;
        rttvar_us_ = (3 * rttvar_us_ + delta) / 4;
        srtt_us_ = (7 * srtt_us_ + rtt_us) / 8;
    }
    rto_us_ = std::clamp(srtt_us_ + std::max<uint32_t>(4 * rttvar_us_, 1000),
                         settings_.rto_min_us, settings_.rto_max_us);
}

void Connection::arm_retransmit(uint64_t now_us) { retransmit_at_ = now_us + rto_us_; }

uint64_t Connection::next_timer_us() const {
    uint64_t next = 0;
    for (const uint64_t at : {retransmit_at_, delayed_ack_at_, time_wait_until_, user_timer_at_,
                              keepalive_due_us()})
        if (at && (!next || at < next))
            next = at;
    return next;
}

void Connection::on_timer(uint64_t now_us) {
    run_protocol_timers(now_us);
    if (!closed())
        run_keepalive(now_us);
    if (!closed() && user_timer_at_ && now_us >= user_timer_at_) {
        user_timer_at_ = 0;
        events_.on_user_timer();
    }
}

// Keepalives watch an idle connection only: while data or a window probe
// is out, the retransmission timer watches the peer.
uint64_t Connection::keepalive_due_us() const {
    const bool idle_state = state_ == State::established || state_ == State::close_wait ||
                            state_ == State::fin_wait_2;
    if (!settings_.keepalive_idle_us || !idle_state || retransmit_at_)
        return 0;
    return last_heard_us_ + settings_.keepalive_idle_us +
           uint64_t(keepalive_probes_sent_) * settings_.keepalive_interval_us;
}

void Connection::run_keepalive(uint64_t now_us) {
    const uint64_t due = keepalive_due_us();
    if (!due || now_us < due)
        return;
    if (keepalive_probes_sent_ >= settings_.keepalive_probes) {
        send_control(flag::rst | flag::ack, snd_nxt_, now_us);
        close(CloseReason::timed_out);
        return;
    }
    ++keepalive_probes_sent_;
    ++keepalives_;
    // RFC 1122 4.2.3.6: SEG.SEQ = SND.NXT - 1 and no data, a byte the peer
    // has had, which it must answer with an ACK (any segment from it
    // counts, and starts the idle time over).
    send_control(flag::ack, snd_nxt_ - 1, now_us);
}

void Connection::run_protocol_timers(uint64_t now_us) {
    if (time_wait_until_ && now_us >= time_wait_until_) {
        close(CloseReason::normal);
        return;
    }
    if (delayed_ack_at_ && now_us >= delayed_ack_at_)
        send_ack(now_us);
    if (!retransmit_at_ || now_us < retransmit_at_)
        return;
    retransmit_at_ = 0;
    // RFC 6298 5.5: back off.
    rto_us_ = std::min<uint64_t>(uint64_t(rto_us_) * 2, settings_.rto_max_us);
    ++backoffs_;
    ++timeouts_;
    timing_ = false;
    if (state_ == State::syn_sent || state_ == State::syn_received) {
        if (++retries_ > settings_.max_syn_retransmissions) {
            if (state_ == State::syn_received)
                send_control(flag::rst, snd_nxt_, now_us);
            close(CloseReason::timed_out);
            return;
        }
        ++retransmissions_;
        send_control(state_ == State::syn_sent ? flag::syn : flag::syn | flag::ack, iss_,
                     now_us);
        arm_retransmit(now_us);
        return;
    }
    if (flight_size() == 0 && !(snd_wnd_ == 0 && unsent() > 0))
        return;
    if (++retries_ > settings_.max_retransmissions) {
        send_control(flag::rst | flag::ack, snd_nxt_, now_us);
        close(CloseReason::timed_out);
        return;
    }
    if (flight_size() == 0) {
        // The persist timer: a byte past a zero window asks the peer again
        // (RFC 9293 3.8.6.1). It is not counted in flight: if the peer
        // drops it, it goes again as new data once the window opens; if it
        // takes it, its ACK moves snd_nxt_ past it.
        const uint32_t next = snd_nxt_;
        send_data(snd_nxt_, 1, false, now_us);
        snd_nxt_ = next;
        timing_ = false;
        ++retransmissions_;
        arm_retransmit(now_us);
        return;
    }
    // RFC 5681 3.1: after a timeout, one segment, slow start from there.
    ssthresh_ = ssthresh_after_loss(true);
    cwnd_ = peer_mss_;
    in_recovery_ = sack_recovery_ = false;
    recover_ = snd_max_;
    // RFC 6582 4: the duplicate ACKs and SACKs that the data sent again
    // will bring are no new loss: no fast recovery until all of it is
    // acknowledged.
    going_back_ = true;
    dupacks_ = 0;
    // Everything goes again from SND.UNA, and the peer may have dropped
    // what it SACKed (RFC 2018 8: it may renege).
    scoreboard_.clear();
    // Go back: everything after the first segment is sent again as the
    // window opens, the FIN with the last piece. fin_sent_ stays: the peer
    // may have the FIN already, and its ACK of it must count as one (a FIN
    // forgotten here went out again at a new sequence number).
    snd_nxt_ = snd_una_;
    retransmit_first(now_us);
    arm_retransmit(now_us);
}

// ---------------------------------------------------------------- states

void Connection::enter(State state) { state_ = state; }

void Connection::close(CloseReason reason) {
    if (closed())
        return;
    state_ = State::closed;
    close_reason_ = reason;
    retransmit_at_ = delayed_ack_at_ = time_wait_until_ = user_timer_at_ = 0;
    events_.on_closed(reason);
}

Connection::Info Connection::info() const {
    Info i{};
    i.snd_una = snd_una_;
    i.snd_nxt = snd_nxt_;
    i.snd_wnd = snd_wnd_;
    i.rcv_nxt = rcv_nxt_;
    i.rcv_wnd = receive_window();
    i.cwnd = cwnd_;
    i.ssthresh = ssthresh_;
    i.srtt_us = srtt_us_;
    i.rto_us = rto_us_;
    i.peer_mss = peer_mss_;
    i.snd_shift = snd_shift_;
    i.rcv_shift = rcv_shift_;
    i.sack = sack_;
    i.timestamps = timestamps_;
    i.queued = queued_;
    i.held_out_of_order = held_.bytes();
    i.unread = unread_;
    i.sacked = scoreboard_.sacked_bytes();
    i.retransmissions = retransmissions_;
    i.fast_retransmits = fast_retransmits_;
    i.timeouts = timeouts_;
    i.challenge_acks = challenge_acks_;
    i.keepalives = keepalives_;
    return i;
}

} // namespace sluice::tcp
