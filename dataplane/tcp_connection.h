// One userspace TCP connection (RFC 9293), as a worker runs it: pure logic
// over segments, with the time passed in and no EAL, so that unit tests drive
// it with segments built by hand. The owner (the worker's endpoint table)
// finds the connection of an arriving segment, calls receive(), and turns
// what the connection emits through its SegmentSink into packets; it calls
// on_timer() when next_timer_us() is due.
//
// What it does:
//   - the state machine of RFC 9293 3.3.2, with active, passive and
//     simultaneous open and close, and TIME-WAIT for 2 x MSL;
//   - MSS, window scaling and timestamps negotiated on the SYN (RFC 7323),
//     PAWS (RFC 7323 5), SACK-permitted, and SACK blocks sent for data held
//     out of order (RFC 2018);
//   - the checks of RFC 5961: a RST or a SYN that is in the window but not
//     exactly expected gets a challenge ACK, and an ACK for data never sent
//     is answered, not taken;
//   - retransmission per RFC 6298 (SRTT, RTTVAR, backoff, Karn's rule or
//     timestamps for samples); fast retransmit and fast recovery, driven by
//     the peer's SACK blocks when it sends them (RFC 6675: the holes go
//     again as the pipe allows) and by NewReno's partial ACKs otherwise
//     (RFC 6582); the window by CUBIC (RFC 9438, tcp_cubic.h) or NewReno
//     (RFC 5681), as Settings::congestion says;
//   - delayed ACKs (every second full segment, or delayed_ack_us), an
//     immediate ACK for data out of order, and zero-window probes (RFC 9293
//     3.8.6.1) with the retransmission backoff;
//   - keepalives when Settings asks for them (RFC 9293 3.8.4, RFC 1122
//     4.2.3.6): SND.NXT - 1 and no data, and a reset when enough go
//     unanswered;
//   - flow control both ways for the layer above: on_data() returns what it
//     took, the rest waits in the receive buffer and shrinks the window
//     (never opened by small steps: RFC 9293 3.8.6.2.2) until
//     resume_receiving(), which sends the window update; a closed window
//     still takes ACKs and answers the peer's probes; on_send_space() says
//     when a send() that fell short may go on;
//   - one timer for the layer above (set_user_timer(), on_user_timer()),
//     for idle timeouts, run by on_timer() like the others.
//
// Memory: a connection owns a send buffer and a receive buffer (bytes the
// reader left, then those held out of order) of the sizes in its settings,
// allocated once when it is made, and nothing per segment; the object
// itself is sizeof(Connection), 768 bytes on x86-64 (its settings, CUBIC's
// state and the SACK scoreboard included).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/tcp_cubic.h"
#include "dataplane/tcp_ranges.h"
#include "dataplane/tcp_sack_scoreboard.h"
#include "dataplane/tcp_segment.h"

namespace sluice::tcp {


enum class State : uint8_t {
    closed,
    syn_sent,
    syn_received,
    established,
    fin_wait_1,
    fin_wait_2,
    close_wait,
    closing,
    last_ack,
    time_wait,
};
const char *to_string(State state);

// How the congestion window grows between losses and how far it falls on
// one; loss recovery is NewReno's (RFC 5681, 6582) with either.
enum class Congestion : uint8_t {
    cubic,    // RFC 9438
    newreno,  // RFC 5681 3.1: halved, then one MSS per RTT
};

struct Settings {
    uint16_t mss = 1460;                 // what we accept: our MSS option
    uint8_t window_shift = 7;            // our window scale, when the peer offers scaling
    uint32_t send_buffer = 256 * 1024;   // bytes not yet acknowledged, sent or not
    uint32_t receive_buffer = 256 * 1024;
    bool sack = true;
    bool timestamps = true;
    uint32_t rto_initial_us = 1'000'000;  // RFC 6298 2.1
    uint32_t rto_min_us = 200'000;        // Linux's; RFC 6298 says 1 s
    uint32_t rto_max_us = 60'000'000;
    uint32_t delayed_ack_us = 40'000;
    uint32_t msl_us = 30'000'000;         // TIME-WAIT lasts 2 x MSL
    uint32_t max_retransmissions = 15;    // then the connection is given up (reset)
    uint32_t max_syn_retransmissions = 6;
    Congestion congestion = Congestion::cubic;
    // Keepalives (RFC 9293 3.8.4, RFC 1122 4.2.3.6): after this long with
    // nothing from the peer, a probe every keepalive_interval_us; when
    // keepalive_probes go unanswered the connection is reset. 0: off.
    uint64_t keepalive_idle_us = 0;
    uint32_t keepalive_interval_us = 75'000'000;
    uint32_t keepalive_probes = 9;
};

// Why a connection ended.
enum class CloseReason : uint8_t {
    none,
    normal,        // both sides closed (after TIME-WAIT, or on the last ACK)
    reset,         // the peer reset it
    aborted,       // abort() was called
    timed_out,     // retransmissions or keepalive probes ran out
    refused,       // a RST answered our SYN
};
const char *to_string(CloseReason reason);

// A segment's payload where it lies in the send buffer: one piece, or two
// when it wraps around the buffer's end. Valid during send_segment().
struct Payload {
    const uint8_t *first = nullptr;
    size_t first_length = 0;
    const uint8_t *second = nullptr;
    size_t second_length = 0;

    size_t length() const { return first_length + second_length; }
};

// Where segments go: the owner wraps each in IP and Ethernet (copying the
// payload into the packet once), computes the checksum and sends it.
class SegmentSink {
public:
    virtual ~SegmentSink() = default;
    virtual void send_segment(const TcpHeader &header, const Payload &payload) = 0;
};

// What the layer above hears. Called from inside receive(), on_timer() and
// the calls below; it may call send(), shutdown(), abort() and
// set_user_timer() from them (resume_receiving() not from on_data).
class ConnectionEvents {
public:
    virtual ~ConnectionEvents() = default;
    virtual void on_established() {}
    // In-order bytes, each offered until taken. The view is valid during
    // the call. Returns how many bytes (from the start) the layer above
    // took; the rest stay in the connection's receive buffer, shrinking the
    // window it offers, and are offered again only by resume_receiving().
    virtual size_t on_data(const uint8_t *, size_t length) { return length; }
    // The peer's FIN: no more data will come. Heard after every byte before
    // it was taken.
    virtual void on_peer_finished() {}
    // After a send() that did not take everything, acknowledgments freed at
    // least half of the send buffer: send() takes `free_bytes` now.
    virtual void on_send_space(size_t /*free_bytes*/) {}
    // The time given to set_user_timer() came.
    virtual void on_user_timer() {}
    virtual void on_closed(CloseReason) {}
};

// The four-tuple and who starts: ports here, addresses are the owner's.
struct Endpoints {
    uint16_t local_port = 0;
    uint16_t remote_port = 0;
};

class Connection {
public:
    Connection(const Settings &settings, Endpoints endpoints, SegmentSink &sink,
               ConnectionEvents &events);
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    // Active open: sends a SYN with initial sequence number `iss`.
    void connect(uint32_t iss, uint64_t now_us);
    // Passive open: `syn` arrived on a listener; answers SYN-ACK from `iss`.
    // False (and nothing sent) when the segment is not a SYN to accept.
    bool accept(const TcpSegment &syn, uint32_t iss, uint64_t now_us);

    // Passive open from a SYN cookie (RFC 4987 3.6): `ack` completes a
    // handshake whose SYN-ACK, from `iss`, left no state. The connection is
    // established at once with the peer's MSS as the cookie kept it, and
    // none of the options a cookie cannot carry.
    void accept_cookie(const TcpSegment &ack, const uint8_t *payload, uint32_t iss,
                       uint16_t peer_mss, uint64_t now_us);

    // A segment for this connection, checksum verified by the owner;
    // `payload` points at its header, the data at segment.payload_offset.
    void receive(const TcpSegment &segment, const uint8_t *payload, uint64_t now_us);

    // Queues bytes to send; returns how many fit in the send buffer. When
    // not all did, on_send_space() says when to try again.
    size_t send(const uint8_t *data, size_t length, uint64_t now_us);
    // What send() would take now.
    size_t send_space() const;
    // The layer above has room again: offers the bytes on_data() left, in
    // order, and when the window this opens is worth it (RFC 9293 3.8.6.2.2)
    // tells the peer at once.
    void resume_receiving(uint64_t now_us);
    // Bytes in order that the layer above has not taken yet.
    size_t unread() const { return unread_; }
    // One timer for the layer above (idle timeouts): on_user_timer() at
    // `at_us`; 0 cancels. Counted in next_timer_us() and run by on_timer().
    void set_user_timer(uint64_t at_us) { user_timer_at_ = at_us; }
    // No more data from us: a FIN follows the queued bytes.
    void shutdown(uint64_t now_us);
    // Resets the connection at once (RST), dropping queued data.
    void abort(uint64_t now_us);
    // Ends a connection in TIME-WAIT as closed normally: its owner keeps a
    // smaller entry for the rest of the wait.
    void release_time_wait();

    // The earliest due timer, 0 when none is armed.
    uint64_t next_timer_us() const;
    void on_timer(uint64_t now_us);

    State state() const { return state_; }
    CloseReason close_reason() const { return close_reason_; }
    bool closed() const { return state_ == State::closed; }
    const Endpoints &endpoints() const { return endpoints_; }

    // For tests, metrics and the docs.
    struct Info {
        uint32_t snd_una, snd_nxt, snd_wnd, rcv_nxt, rcv_wnd;
        uint32_t cwnd, ssthresh, srtt_us, rto_us;
        uint16_t peer_mss;
        uint8_t snd_shift, rcv_shift;
        bool sack, timestamps;
        size_t queued, held_out_of_order, unread, sacked;
        uint64_t retransmissions, fast_retransmits, timeouts, challenge_acks, keepalives;
    };
    Info info() const;

private:
    // A byte ring of fixed capacity.
    class Ring {
    public:
        // Not zeroed: a connection touches only the bytes it uses, so a big
        // buffer costs pages only as it fills.
        explicit Ring(size_t capacity) : bytes_(new uint8_t[capacity]), capacity_(capacity) {}
        size_t capacity() const { return capacity_; }
        // Writes `length` bytes at `offset` from the ring's start (wrapping).
        void write(size_t offset, const uint8_t *data, size_t length);
        // `length` bytes from `offset`, in place.
        Payload view(size_t offset, size_t length) const;
        // Moves the ring's start by `length` bytes.
        void advance(size_t length) { start_ = (start_ + length) % capacity_; }

    private:
        std::unique_ptr<uint8_t[]> bytes_;
        size_t capacity_;
        size_t start_ = 0;
    };

    void enter(State state);
    void close(CloseReason reason);

    bool acceptable(const TcpSegment &segment) const;
    void process_synchronized(const TcpSegment &segment, const uint8_t *payload,
                              uint64_t now_us);
    void receive_syn_sent(const TcpSegment &segment, uint64_t now_us);
    void take_peer_options(const TcpOptions &options, bool syn_ack);
    bool process_ack(const TcpSegment &segment, uint64_t now_us);
    void process_data(const TcpSegment &segment, const uint8_t *payload, uint64_t now_us);
    void hold(uint32_t seq, const uint8_t *data, size_t length);
    void absorb_held();
    void offer_unread();
    void report_fin_if_read();
    void report_send_space();
    void run_protocol_timers(uint64_t now_us);
    uint64_t keepalive_due_us() const;
    void run_keepalive(uint64_t now_us);
    uint32_t ssthresh_after_loss(bool timeout);
    void process_fin(uint64_t now_us);

    void take_rtt_sample(uint32_t rtt_us);
    void arm_retransmit(uint64_t now_us);
    void retransmit_first(uint64_t now_us);
    void enter_recovery(uint64_t now_us);
    void retransmit_holes(uint64_t now_us, bool first_anyway);
    uint32_t pipe() const;
    size_t segment_size() const;

    void output(uint64_t now_us);
    void send_control(uint8_t flags, uint32_t seq, uint64_t now_us);
    void send_ack(uint64_t now_us);
    void send_challenge_ack(uint64_t now_us);
    void send_data(uint32_t seq, size_t length, bool fin, uint64_t now_us);
    void fill_options(TcpHeader &header, bool syn, uint64_t now_us) const;
    uint16_t advertised_window() const;
    uint32_t receive_window() const;
    uint32_t flight_size() const { return snd_nxt_ - snd_una_; }
    size_t unsent() const;
    uint32_t ts_now(uint64_t now_us) const { return uint32_t(now_us / 1000); }

    Settings settings_;
    Endpoints endpoints_;
    SegmentSink &sink_;
    ConnectionEvents &events_;
    State state_ = State::closed;
    CloseReason close_reason_ = CloseReason::none;

    // Send sequence space (RFC 9293 3.3.1).
    uint32_t iss_ = 0, snd_una_ = 0, snd_nxt_ = 0, snd_max_ = 0, snd_wnd_ = 0;
    uint32_t snd_wl1_ = 0, snd_wl2_ = 0, max_snd_wnd_ = 0;
    Ring send_ring_;        // bytes from snd_una_ on
    size_t queued_ = 0;     // bytes in send_ring_
    bool fin_queued_ = false;  // shutdown() called: FIN after the queued bytes
    bool fin_sent_ = false;
    uint32_t fin_seq_ = 0;
    bool send_blocked_ = false;  // a send() did not take everything: on_send_space() owed

    // Receive sequence space.
    uint32_t irs_ = 0, rcv_nxt_ = 0;
    // From its start: the bytes in order the layer above has not taken
    // (unread_ of them, up to rcv_nxt_), then those held out of order, at
    // offset unread_ + seq - rcv_nxt_.
    Ring receive_ring_;
    size_t unread_ = 0;
    bool offering_ = false;        // inside on_data()
    bool fin_unreported_ = false;  // the peer's FIN came before the reader took everything
    uint32_t rcv_adv_ = 0;         // the right edge of the window last offered
    SequenceRanges<16> held_;   // bytes held out of order, in the ring after the unread
    uint32_t newest_held_ = 0;  // left edge of the block the latest segment joined

    // Negotiated.
    uint16_t peer_mss_ = 536;
    uint8_t snd_shift_ = 0, rcv_shift_ = 0;
    bool scaling_ = false, sack_ = false, timestamps_ = false;
    uint32_t ts_recent_ = 0;      // the peer's last TSval (RFC 7323 4.3)
    uint32_t last_ack_sent_ = 0;

    // Congestion control (RFC 5681, 6582; RFC 9438 in cubic_).
    uint32_t cwnd_ = 0, ssthresh_ = UINT32_MAX;
    Cubic cubic_;
    uint64_t last_data_sent_us_ = 0;
    uint32_t dupacks_ = 0;
    bool in_recovery_ = false;
    bool going_back_ = false;  // after a timeout, until recover_ is acknowledged
    uint32_t recover_ = 0;
    // RFC 6675: recovery driven by the peer's SACK blocks, when it sends them.
    SackScoreboard scoreboard_;
    bool sack_recovery_ = false;
    uint32_t high_rxt_ = 0;  // the end of the last hole sent again in this recovery

    // Timers, absolute microseconds; 0: not armed.
    uint64_t retransmit_at_ = 0;
    uint64_t delayed_ack_at_ = 0;
    uint64_t time_wait_until_ = 0;
    uint64_t user_timer_at_ = 0;
    uint64_t last_heard_us_ = 0;        // the peer's last acceptable segment
    uint32_t keepalive_probes_sent_ = 0;  // since then
    uint32_t srtt_us_ = 0, rttvar_us_ = 0, rto_us_ = 0;
    uint32_t backoffs_ = 0;
    uint32_t retries_ = 0;  // timeouts since the peer last acknowledged anything
    bool timing_ = false;          // a sample is being taken (Karn: none on retransmitted data)
    uint32_t timed_seq_ = 0;
    uint64_t timed_at_ = 0;
    uint32_t unacked_segments_ = 0;  // full segments received since our last ACK

    uint64_t retransmissions_ = 0, fast_retransmits_ = 0, timeouts_ = 0, challenge_acks_ = 0;
    uint64_t keepalives_ = 0;
};

} // namespace sluice::tcp
