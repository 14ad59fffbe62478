// The userspace TCP's connection, driven with segments built by hand: every
// open (active, passive, simultaneous) and close (active, passive,
// simultaneous, TIME-WAIT), data in order, out of order and duplicated, the
// checks of RFC 5961 (RST and SYN in the window, ACKs for unsent data),
// PAWS, retransmission (RFC 6298) and NewReno's fast retransmit and
// recovery (RFC 5681, 6582), SACK recovery (RFC 6675), CUBIC's reduction
// (RFC 9438), zero-window probes and giving up, keepalives; a reader that
// takes less than it is offered (the window closing and opening again),
// the send-space event and the timer for the layer above.
#include "dataplane/tcp_connection.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>

#include <string>
#include <vector>

namespace sluice::tcp {
namespace {

constexpr uint32_t our_iss = 1000;
constexpr uint32_t peer_iss = 5000;
constexpr uint64_t ms = 1000;

struct Sent {
    TcpHeader header;
    std::string payload;
};

// The connection's surroundings: what it sent, and what it told the layer above.
struct Harness : SegmentSink, ConnectionEvents {
    std::vector<Sent> sent;
    std::string received;
    bool established = false, peer_finished = false;
    CloseReason closed = CloseReason::none;
    size_t reader_room = SIZE_MAX;  // what on_data() takes, in all, before it is full
    size_t offers = 0;              // on_data() calls
    std::vector<size_t> send_space_events;
    int user_timers = 0;

    void send_segment(const TcpHeader &header, const Payload &payload) override {
        std::string bytes(reinterpret_cast<const char *>(payload.first), payload.first_length);
        bytes.append(reinterpret_cast<const char *>(payload.second), payload.second_length);
        sent.push_back({header, bytes});
    }
    void on_established() override { established = true; }
    size_t on_data(const uint8_t *data, size_t length) override {
        ++offers;
        const size_t taken = std::min(length, reader_room);
        reader_room -= reader_room == SIZE_MAX ? 0 : taken;
        received.append(reinterpret_cast<const char *>(data), taken);
        return taken;
    }
    void on_send_space(size_t free_bytes) override { send_space_events.push_back(free_bytes); }
    void on_user_timer() override { ++user_timers; }
    void on_peer_finished() override { peer_finished = true; }
    void on_closed(CloseReason reason) override { closed = reason; }

    Sent take() {
        EXPECT_FALSE(sent.empty());
        if (sent.empty())
            return {};
        Sent first = sent.front();
        sent.erase(sent.begin());
        return first;
    }
};

// A segment from the peer, as parse_segment would give it, and its payload.
struct Incoming {
    TcpSegment segment;
    std::string payload;
};

Incoming segment(uint8_t flags, uint32_t seq, uint32_t ack, const std::string &payload = "",
                 uint16_t window = 65535) {
    Incoming in;
    TcpHeader &h = in.segment.header;
    h.source_port = 80;
    h.destination_port = 40000;
    h.seq = seq;
    h.ack = ack;
    h.flags = flags;
    h.window = window;
    in.segment.header_length = 20;
    in.segment.payload_offset = 0;
    in.segment.payload_length = uint16_t(payload.size());
    in.payload = payload;
    return in;
}

class TcpConnectionTest : public testing::Test {
protected:
    TcpConnectionTest() : connection(settings(), {40000, 80}, harness, harness) {}

    static Settings settings() {
        Settings s;
        s.mss = 1000;
        s.window_shift = 2;
        s.send_buffer = 64 * 1024;
        s.receive_buffer = 16 * 1024;
        s.timestamps = false;  // most tests: plain segments, no options
        s.msl_us = 1'000'000;
        // The windows worked out by hand below are NewReno's; CUBIC's have
        // tests of their own (here and in tcp_cubic_test.cc).
        s.congestion = Congestion::newreno;
        return s;
    }

    void deliver(const Incoming &in, uint64_t now) {
        connection.receive(in.segment, reinterpret_cast<const uint8_t *>(in.payload.data()),
                           now);
    }

    // Active open to ESTABLISHED, the peer offering MSS 1000 and a window
    // of 65535 unscaled: a window of 65535 bytes.
    void establish(uint64_t now = 0) {
        connection.connect(our_iss, now);
        harness.take();
        Incoming syn_ack = segment(flag::syn | flag::ack, peer_iss, our_iss + 1);
        syn_ack.segment.header.options.mss = 1000;
        syn_ack.segment.header.options.sack_permitted = true;
        deliver(syn_ack, now + 10 * ms);
        ASSERT_EQ(connection.state(), State::established);
        harness.take();  // our ACK
    }

    std::string bytes(size_t n, char c = 'x') { return std::string(n, c); }

    Harness harness;
    Connection connection;
};

TEST_F(TcpConnectionTest, ActiveOpenNegotiatesWhatBothOffer) {
    connection.connect(our_iss, 0);
    EXPECT_EQ(connection.state(), State::syn_sent);
    const Sent syn = harness.take();
    EXPECT_EQ(syn.header.flags, flag::syn);
    EXPECT_EQ(syn.header.seq, our_iss);
    EXPECT_EQ(syn.header.options.mss, 1000);
    EXPECT_EQ(syn.header.options.window_scale, 2);
    EXPECT_TRUE(syn.header.options.sack_permitted);
    EXPECT_FALSE(syn.header.options.timestamp);  // off in these settings

    Incoming syn_ack = segment(flag::syn | flag::ack, peer_iss, our_iss + 1, "", 4000);
    syn_ack.segment.header.options.mss = 1400;
    syn_ack.segment.header.options.window_scale = 3;
    syn_ack.segment.header.options.sack_permitted = true;
    deliver(syn_ack, 30 * ms);
    EXPECT_EQ(connection.state(), State::established);
    EXPECT_TRUE(harness.established);
    const Sent ack = harness.take();
    EXPECT_EQ(ack.header.flags, flag::ack);
    EXPECT_EQ(ack.header.seq, our_iss + 1);
    EXPECT_EQ(ack.header.ack, peer_iss + 1);
    EXPECT_EQ(ack.header.window, 16 * 1024 >> 2);  // our window, scaled by our shift
    const Connection::Info info = connection.info();
    EXPECT_EQ(info.peer_mss, 1400);
    EXPECT_EQ(info.snd_shift, 3);
    EXPECT_EQ(info.rcv_shift, 2);
    EXPECT_TRUE(info.sack);
    EXPECT_EQ(info.snd_wnd, 4000u);  // a SYN's window is never scaled
    EXPECT_EQ(info.srtt_us, 30'000u);
    EXPECT_EQ(info.cwnd, 14'000u);  // RFC 6928: min(10 MSS, max(2 MSS, 14600))
}

TEST_F(TcpConnectionTest, PassiveOpenAnswersOnlyWhatTheSynOffered) {
    Incoming syn = segment(flag::syn, peer_iss, 0);
    syn.segment.header.options.mss = 1200;  // no window scale, no SACK
    ASSERT_TRUE(connection.accept(syn.segment, our_iss, 0));
    EXPECT_EQ(connection.state(), State::syn_received);
    const Sent syn_ack = harness.take();
    EXPECT_EQ(syn_ack.header.flags, flag::syn | flag::ack);
    EXPECT_EQ(syn_ack.header.ack, peer_iss + 1);
    EXPECT_FALSE(syn_ack.header.options.window_scale);
    EXPECT_FALSE(syn_ack.header.options.sack_permitted);
    EXPECT_EQ(syn_ack.header.options.mss, 1000);

    // The handshake's ACK, with the first data.
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1, "hello"), 5 * ms);
    EXPECT_EQ(connection.state(), State::established);
    EXPECT_TRUE(harness.established);
    EXPECT_EQ(harness.received, "hello");
    EXPECT_EQ(connection.info().rcv_shift, 0);

    // Not a SYN to accept: SYN+ACK, or a second accept.
    Harness other;
    Connection second(settings(), {1, 2}, other, other);
    EXPECT_FALSE(second.accept(segment(flag::syn | flag::ack, 1, 2).segment, our_iss, 0));
    EXPECT_TRUE(other.sent.empty());
}

TEST_F(TcpConnectionTest, ARetransmittedSynGetsTheSynAckAgain) {
    ASSERT_TRUE(connection.accept(segment(flag::syn, peer_iss, 0).segment, our_iss, 0));
    harness.take();
    deliver(segment(flag::syn, peer_iss, 0), 1000 * ms);
    const Sent again = harness.take();
    EXPECT_EQ(again.header.flags, flag::syn | flag::ack);
    EXPECT_EQ(again.header.seq, our_iss);
    EXPECT_EQ(again.header.ack, peer_iss + 1);
    EXPECT_EQ(connection.state(), State::syn_received);
}

TEST_F(TcpConnectionTest, AnAckThatDoesNotTakeOurSynIsReset) {
    ASSERT_TRUE(connection.accept(segment(flag::syn, peer_iss, 0).segment, our_iss, 0));
    harness.take();
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 7), 1 * ms);
    const Sent rst = harness.take();
    EXPECT_EQ(rst.header.flags, flag::rst);
    EXPECT_EQ(rst.header.seq, our_iss + 7);
    EXPECT_EQ(connection.state(), State::syn_received);
}

TEST_F(TcpConnectionTest, SimultaneousOpen) {
    connection.connect(our_iss, 0);
    harness.take();
    deliver(segment(flag::syn, peer_iss, 0), 1 * ms);  // the SYNs crossed
    EXPECT_EQ(connection.state(), State::syn_received);
    const Sent syn_ack = harness.take();
    EXPECT_EQ(syn_ack.header.flags, flag::syn | flag::ack);
    EXPECT_EQ(syn_ack.header.seq, our_iss);
    EXPECT_EQ(syn_ack.header.ack, peer_iss + 1);
    deliver(segment(flag::syn | flag::ack, peer_iss, our_iss + 1), 2 * ms);
    // Its SYN again, in a synchronized state: a challenge ACK (RFC 5961 4.2).
    EXPECT_EQ(harness.take().header.flags, flag::ack);
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1), 3 * ms);
    EXPECT_EQ(connection.state(), State::established);
}

TEST_F(TcpConnectionTest, SynSentRefusalsAndBadAcks) {
    connection.connect(our_iss, 0);
    harness.take();
    // A RST without an ACK, or an ACK for something else, does not refuse.
    deliver(segment(flag::rst, peer_iss, 0), 1 * ms);
    EXPECT_EQ(connection.state(), State::syn_sent);
    deliver(segment(flag::ack, peer_iss, our_iss + 50), 1 * ms);
    const Sent rst = harness.take();
    EXPECT_EQ(rst.header.flags, flag::rst);
    EXPECT_EQ(rst.header.seq, our_iss + 50);
    EXPECT_EQ(connection.state(), State::syn_sent);
    deliver(segment(flag::rst | flag::ack, 0, our_iss + 1), 2 * ms);
    EXPECT_TRUE(connection.closed());
    EXPECT_EQ(harness.closed, CloseReason::refused);
}

TEST_F(TcpConnectionTest, InOrderDataIsDeliveredAndEverySecondSegmentAcked) {
    establish();
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1, bytes(1000, 'a')), 20 * ms);
    EXPECT_EQ(harness.received, bytes(1000, 'a'));
    EXPECT_TRUE(harness.sent.empty());  // delayed
    EXPECT_EQ(connection.next_timer_us(), 20 * ms + 40 * ms);
    deliver(segment(flag::ack, peer_iss + 1001, our_iss + 1, bytes(1000, 'b')), 21 * ms);
    const Sent ack = harness.take();
    EXPECT_EQ(ack.header.ack, peer_iss + 2001);
    EXPECT_EQ(connection.next_timer_us(), 0u);

    // A lone segment is acknowledged when the delayed-ACK timer fires.
    deliver(segment(flag::ack, peer_iss + 2001, our_iss + 1, "c"), 30 * ms);
    EXPECT_TRUE(harness.sent.empty());
    connection.on_timer(70 * ms);
    EXPECT_EQ(harness.take().header.ack, peer_iss + 2002);
}

TEST_F(TcpConnectionTest, OutOfOrderDataIsHeldAndSacked) {
    establish();
    deliver(segment(flag::ack, peer_iss + 1001, our_iss + 1, bytes(1000, 'b')), 20 * ms);
    deliver(segment(flag::ack, peer_iss + 3001, our_iss + 1, bytes(500, 'd')), 21 * ms);
    EXPECT_EQ(harness.received, "");
    EXPECT_EQ(connection.info().held_out_of_order, 1500u);
    // Each is answered at once, the newest block first.
    EXPECT_EQ(harness.take().header.ack, peer_iss + 1);
    const Sent dup = harness.take();
    EXPECT_EQ(dup.header.ack, peer_iss + 1);
    ASSERT_EQ(dup.header.options.sack_count, 2);
    EXPECT_EQ(dup.header.options.sack[0], (SackBlock{peer_iss + 3001, peer_iss + 3501}));
    EXPECT_EQ(dup.header.options.sack[1], (SackBlock{peer_iss + 1001, peer_iss + 2001}));

    // The hole fills: everything up to the next hole goes up, in order.
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1, bytes(1000, 'a')), 22 * ms);
    EXPECT_EQ(harness.received, bytes(1000, 'a') + bytes(1000, 'b'));
    const Sent ack = harness.take();
    EXPECT_EQ(ack.header.ack, peer_iss + 2001);
    ASSERT_EQ(ack.header.options.sack_count, 1);
    deliver(segment(flag::ack, peer_iss + 2001, our_iss + 1, bytes(1000, 'c')), 23 * ms);
    EXPECT_EQ(harness.received,
              bytes(1000, 'a') + bytes(1000, 'b') + bytes(1000, 'c') + bytes(500, 'd'));
    EXPECT_EQ(connection.info().held_out_of_order, 0u);
    EXPECT_EQ(harness.take().header.options.sack_count, 0);

    // An old duplicate is acknowledged, not delivered again; one that
    // overlaps gives only its new bytes.
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1, bytes(1000, 'a')), 24 * ms);
    EXPECT_EQ(harness.take().header.ack, peer_iss + 3501);
    deliver(segment(flag::ack, peer_iss + 3001, our_iss + 1, bytes(500, 'd') + "ef"), 25 * ms);
    EXPECT_EQ(harness.received.substr(harness.received.size() - 2), "ef");
}

TEST_F(TcpConnectionTest, SendingIsSegmentedAndLimitedByTheWindows) {
    establish();
    const std::string data = bytes(20'000, 'q');
    EXPECT_EQ(connection.send(reinterpret_cast<const uint8_t *>(data.data()), data.size(),
                              20 * ms),
              data.size());
    // The initial window: 10 segments of the peer's MSS.
    ASSERT_EQ(harness.sent.size(), 10u);
    for (size_t i = 0; i < 10; ++i) {
        EXPECT_EQ(harness.sent[i].header.seq, our_iss + 1 + 1000 * i);
        EXPECT_EQ(harness.sent[i].payload.size(), 1000u);
        EXPECT_EQ(harness.sent[i].header.ack, peer_iss + 1);
    }
    harness.sent.clear();
    // An ACK of two segments in slow start: the window grows by one MSS
    // (RFC 5681 3.1), and the two acknowledged plus one more go out.
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 2001), 40 * ms);
    EXPECT_EQ(harness.sent.size(), 3u);
    EXPECT_EQ(connection.info().cwnd, 11'000u);
    // RTT samples: 10 ms (the SYN), then 20 ms (the first segment, sent at 20 ms).
    EXPECT_EQ(connection.info().srtt_us, 11'250u);
    harness.sent.clear();
    // The peer's window limits it too.
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 13001, "", 1000), 41 * ms);
    ASSERT_EQ(harness.sent.size(), 1u);
    EXPECT_EQ(harness.sent[0].header.seq, our_iss + 13001);
    EXPECT_EQ(connection.info().queued, 7'000u);
}

TEST_F(TcpConnectionTest, ATimeoutRetransmitsAndBacksOff) {
    establish();
    const std::string data = bytes(3000, 'r');
    connection.send(reinterpret_cast<const uint8_t *>(data.data()), data.size(), 20 * ms);
    harness.sent.clear();
    const uint64_t due = connection.next_timer_us();
    EXPECT_EQ(due, 20 * ms + 200 * ms);  // RTO: SRTT 10 ms + 4 x 5 ms, at least rto_min
    connection.on_timer(due);
    const Sent again = harness.take();
    EXPECT_EQ(again.header.seq, our_iss + 1);
    EXPECT_EQ(again.payload, bytes(1000, 'r'));
    const Connection::Info info = connection.info();
    EXPECT_EQ(info.cwnd, 1000u);
    EXPECT_EQ(info.ssthresh, 2000u);
    EXPECT_EQ(info.rto_us, 400'000u);
    EXPECT_EQ(info.timeouts, 1u);
    EXPECT_EQ(connection.next_timer_us(), due + 400 * ms);
    // The ACK of the retransmission is no RTT sample (Karn); the rest follows.
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1001), due + 5 * ms);
    EXPECT_EQ(connection.info().srtt_us, 10'000u);
    EXPECT_EQ(harness.sent.size(), 2u);  // slow start from one segment
}

TEST_F(TcpConnectionTest, RetransmissionsRunOutAndTheConnectionIsReset) {
    establish();
    connection.send(reinterpret_cast<const uint8_t *>("x"), 1, 20 * ms);
    harness.sent.clear();
    for (int i = 0; i < 20 && !connection.closed(); ++i)
        connection.on_timer(connection.next_timer_us());
    EXPECT_TRUE(connection.closed());
    EXPECT_EQ(harness.closed, CloseReason::timed_out);
    EXPECT_EQ(harness.sent.back().header.flags, flag::rst | flag::ack);
    EXPECT_EQ(connection.info().retransmissions, 15u);
}

TEST_F(TcpConnectionTest, ThreeDuplicateAcksFastRetransmitAndRecover) {
    establish();
    const std::string data = bytes(10'000, 'f');
    connection.send(reinterpret_cast<const uint8_t *>(data.data()), data.size(), 20 * ms);
    harness.sent.clear();
    // Segment 1 was lost; 2, 3, 4 arrive and each gives a duplicate ACK.
    for (int i = 0; i < 3; ++i)
        deliver(segment(flag::ack, peer_iss + 1, our_iss + 1), 40 * ms);
    ASSERT_EQ(harness.sent.size(), 1u);
    EXPECT_EQ(harness.sent[0].header.seq, our_iss + 1);
    Connection::Info info = connection.info();
    EXPECT_EQ(info.fast_retransmits, 1u);
    EXPECT_EQ(info.ssthresh, 5000u);
    EXPECT_EQ(info.cwnd, 8000u);
    harness.sent.clear();
    // A partial ACK (segment 5 was lost too): retransmitted at once.
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 4001), 50 * ms);
    ASSERT_FALSE(harness.sent.empty());
    EXPECT_EQ(harness.sent[0].header.seq, our_iss + 4001);
    EXPECT_EQ(connection.info().retransmissions, 2u);
    // The full ACK ends recovery with cwnd at most ssthresh.
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 10'001), 60 * ms);
    info = connection.info();
    EXPECT_LE(info.cwnd, 5000u);
    EXPECT_EQ(info.queued, 0u);
}

TEST_F(TcpConnectionTest, RstAndSynAreCheckedAgainstTheWindow) {
    establish();
    // Outside the window: ignored, silently.
    deliver(segment(flag::rst, peer_iss + 100'000, 0), 20 * ms);
    EXPECT_TRUE(harness.sent.empty());
    // In the window but not RCV.NXT: a challenge ACK, and nothing else.
    deliver(segment(flag::rst, peer_iss + 10, 0), 21 * ms);
    EXPECT_EQ(harness.take().header.ack, peer_iss + 1);
    EXPECT_EQ(connection.state(), State::established);
    // A SYN: a challenge ACK too.
    deliver(segment(flag::syn, peer_iss + 1, 0), 22 * ms);
    EXPECT_EQ(harness.take().header.flags, flag::ack);
    EXPECT_EQ(connection.info().challenge_acks, 2u);
    // Exactly RCV.NXT: reset.
    deliver(segment(flag::rst, peer_iss + 1, 0), 23 * ms);
    EXPECT_TRUE(connection.closed());
    EXPECT_EQ(harness.closed, CloseReason::reset);
}

TEST_F(TcpConnectionTest, AnAckForDataNeverSentIsNotTaken) {
    establish();
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 500, "data"), 20 * ms);
    EXPECT_EQ(harness.take().header.flags, flag::ack);  // challenge
    EXPECT_EQ(harness.received, "");
    EXPECT_EQ(connection.info().snd_una, our_iss + 1);
}

TEST_F(TcpConnectionTest, ActiveCloseThroughTimeWait) {
    establish();
    connection.shutdown(20 * ms);
    EXPECT_EQ(connection.state(), State::fin_wait_1);
    const Sent fin = harness.take();
    EXPECT_EQ(fin.header.flags, flag::fin | flag::ack);
    EXPECT_EQ(fin.header.seq, our_iss + 1);
    EXPECT_EQ(connection.send(reinterpret_cast<const uint8_t *>("late"), 4, 21 * ms), 0u);
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 2), 30 * ms);
    EXPECT_EQ(connection.state(), State::fin_wait_2);
    deliver(segment(flag::fin | flag::ack, peer_iss + 1, our_iss + 2, "bye"), 40 * ms);
    EXPECT_EQ(harness.received, "bye");
    EXPECT_TRUE(harness.peer_finished);
    EXPECT_EQ(connection.state(), State::time_wait);
    EXPECT_EQ(harness.take().header.ack, peer_iss + 5);
    EXPECT_EQ(connection.next_timer_us(), 40 * ms + 2'000 * ms);
    // The peer missed our ACK: its FIN again is acknowledged and the wait restarts.
    deliver(segment(flag::fin | flag::ack, peer_iss + 1, our_iss + 2, "bye"), 500 * ms);
    EXPECT_EQ(harness.take().header.ack, peer_iss + 5);
    EXPECT_EQ(connection.next_timer_us(), 500 * ms + 2'000 * ms);
    connection.on_timer(2'500 * ms);
    EXPECT_TRUE(connection.closed());
    EXPECT_EQ(harness.closed, CloseReason::normal);
}

TEST_F(TcpConnectionTest, PassiveCloseThroughLastAck) {
    establish();
    deliver(segment(flag::fin | flag::ack, peer_iss + 1, our_iss + 1), 20 * ms);
    EXPECT_EQ(connection.state(), State::close_wait);
    EXPECT_TRUE(harness.peer_finished);
    EXPECT_EQ(harness.take().header.ack, peer_iss + 2);
    // Still ours to send, then close.
    connection.send(reinterpret_cast<const uint8_t *>("last words"), 10, 21 * ms);
    connection.shutdown(21 * ms);
    EXPECT_EQ(connection.state(), State::last_ack);
    EXPECT_EQ(harness.take().payload, "last words");
    const Sent fin = harness.take();
    EXPECT_EQ(fin.header.flags, flag::fin | flag::ack);
    EXPECT_EQ(fin.header.seq, our_iss + 11);
    deliver(segment(flag::ack, peer_iss + 2, our_iss + 12), 30 * ms);
    EXPECT_TRUE(connection.closed());
    EXPECT_EQ(harness.closed, CloseReason::normal);
}

// The answer and its FIN went out, the ACK was late, the RTO sent the data
// again: the peer's ACK of data and FIN (it had both) takes the FIN, and no
// second FIN goes out at a new sequence number. (Seen in bench_proxy with
// 2048 connections in flight: the peer, closed, reset the stray FIN's ACKs.)
TEST_F(TcpConnectionTest, AnAckOfTheFinAfterATimeoutTakesTheFin) {
    establish();
    connection.send(reinterpret_cast<const uint8_t *>("answer"), 6, 20 * ms);
    connection.shutdown(20 * ms);
    EXPECT_EQ(harness.take().payload, "answer");
    EXPECT_EQ(harness.take().header.flags, flag::fin | flag::ack);
    connection.on_timer(connection.next_timer_us());
    const Sent again = harness.take();
    EXPECT_EQ(again.header.seq, our_iss + 1);
    EXPECT_EQ(again.payload, "answer");
    EXPECT_EQ(again.header.flags & flag::fin, flag::fin);
    harness.sent.clear();
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 8), 500 * ms);
    EXPECT_EQ(connection.state(), State::fin_wait_2);
    for (const Sent &sent : harness.sent)
        EXPECT_EQ(sent.header.flags & flag::fin, 0) << "a second FIN at " << sent.header.seq;
}

TEST_F(TcpConnectionTest, SimultaneousCloseThroughClosing) {
    establish();
    connection.shutdown(20 * ms);
    harness.take();
    deliver(segment(flag::fin | flag::ack, peer_iss + 1, our_iss + 1), 21 * ms);
    EXPECT_EQ(connection.state(), State::closing);
    harness.take();
    deliver(segment(flag::ack, peer_iss + 2, our_iss + 2), 22 * ms);
    EXPECT_EQ(connection.state(), State::time_wait);
}

TEST_F(TcpConnectionTest, AZeroWindowIsProbedAndNeverGivenUpOn) {
    establish();
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1, "", 0), 20 * ms);
    connection.send(reinterpret_cast<const uint8_t *>("wait"), 4, 21 * ms);
    EXPECT_TRUE(harness.sent.empty());
    ASSERT_NE(connection.next_timer_us(), 0u);
    for (int probe = 0; probe < 20; ++probe) {
        const uint64_t due = connection.next_timer_us();
        connection.on_timer(due);
        ASSERT_FALSE(connection.closed()) << probe;
        ASSERT_FALSE(harness.sent.empty());
        EXPECT_EQ(harness.sent.back().payload, "w");  // one byte past the window
        harness.sent.clear();
        // The peer answers: still no room.
        deliver(segment(flag::ack, peer_iss + 1, our_iss + 1, "", 0), due + 1 * ms);
    }
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1, "", 1000), 100'000 * ms);
    ASSERT_FALSE(harness.sent.empty());
    EXPECT_EQ(harness.sent.back().payload, "wait");
}

TEST_F(TcpConnectionTest, PawsDropsOldDuplicates) {
    Harness h;
    Settings s = settings();
    s.timestamps = true;
    Connection c(s, {40000, 80}, h, h);
    c.connect(our_iss, 0);
    EXPECT_TRUE(h.take().header.options.timestamp);
    Incoming syn_ack = segment(flag::syn | flag::ack, peer_iss, our_iss + 1);
    syn_ack.segment.header.options.timestamp = std::make_pair(700u, 0u);
    c.receive(syn_ack.segment, nullptr, 5 * ms);
    ASSERT_TRUE(c.info().timestamps);
    const Sent ack = h.take();
    ASSERT_TRUE(ack.header.options.timestamp);
    EXPECT_EQ(ack.header.options.timestamp->second, 700u);  // echoed

    Incoming fresh = segment(flag::ack, peer_iss + 1, our_iss + 1, "new");
    fresh.segment.header.options.timestamp = std::make_pair(800u, 5u);
    c.receive(fresh.segment, reinterpret_cast<const uint8_t *>(fresh.payload.data()), 6 * ms);
    EXPECT_EQ(h.received, "new");
    Incoming old = segment(flag::ack, peer_iss + 4, our_iss + 1, "old");
    old.segment.header.options.timestamp = std::make_pair(600u, 5u);
    c.receive(old.segment, reinterpret_cast<const uint8_t *>(old.payload.data()), 7 * ms);
    EXPECT_EQ(h.received, "new");
}

TEST_F(TcpConnectionTest, ThePeersWindowIsScaled) {
    connection.connect(our_iss, 0);
    harness.take();
    Incoming syn_ack = segment(flag::syn | flag::ack, peer_iss, our_iss + 1, "", 1000);
    syn_ack.segment.header.options.window_scale = 4;
    deliver(syn_ack, 1 * ms);
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1, "", 1000), 2 * ms);
    EXPECT_EQ(connection.info().snd_wnd, 16'000u);
}

TEST_F(TcpConnectionTest, AbortResets) {
    establish();
    connection.abort(20 * ms);
    const Sent rst = harness.take();
    EXPECT_EQ(rst.header.flags, flag::rst | flag::ack);
    EXPECT_EQ(rst.header.seq, our_iss + 1);
    EXPECT_EQ(harness.closed, CloseReason::aborted);
    // A closed connection takes nothing more.
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1, "x"), 21 * ms);
    EXPECT_TRUE(harness.sent.empty());
    EXPECT_EQ(harness.received, "");
}

TEST_F(TcpConnectionTest, AnUnansweredSynGivesUp) {
    connection.connect(our_iss, 0);
    harness.take();
    int syns = 0;
    while (!connection.closed() && syns < 20) {
        connection.on_timer(connection.next_timer_us());
        syns += !harness.sent.empty();
        harness.sent.clear();
    }
    EXPECT_EQ(syns, 6);
    EXPECT_EQ(harness.closed, CloseReason::timed_out);
}

// A connection with a small receive buffer, established like establish()
// does: no window scaling, so the window in the header is the window.
struct SmallReceiver {
    Harness harness;
    Connection connection;

    explicit SmallReceiver(uint32_t receive_buffer)
        : connection(make_settings(receive_buffer), {40000, 80}, harness, harness) {
        connection.connect(our_iss, 0);
        Incoming syn_ack = segment(flag::syn | flag::ack, peer_iss, our_iss + 1);
        syn_ack.segment.header.options.mss = 1000;
        syn_ack.segment.header.options.sack_permitted = true;
        deliver(syn_ack, 10 * ms);
        harness.sent.clear();
    }
    static Settings make_settings(uint32_t receive_buffer) {
        Settings s;
        s.mss = 1000;
        s.receive_buffer = receive_buffer;
        s.timestamps = false;
        return s;
    }
    void deliver(const Incoming &in, uint64_t now) {
        connection.receive(in.segment, reinterpret_cast<const uint8_t *>(in.payload.data()),
                           now);
    }
    void data(uint32_t offset, const std::string &bytes, uint64_t now) {
        deliver(segment(flag::ack, peer_iss + 1 + offset, our_iss + 1, bytes), now);
    }
};

TEST(TcpReceiveBackpressure, AZeroWindowIsProbedAndOpensAgainOnResume) {
    SmallReceiver r(4000);
    r.harness.reader_room = 0;  // the layer above is full
    const std::string a(1000, 'a'), b(1000, 'b'), c(1000, 'c'), d(1000, 'd');
    r.data(0, a, 20 * ms);
    r.data(1000, b, 21 * ms);
    Sent ack = r.harness.take();
    EXPECT_EQ(ack.header.ack, peer_iss + 2001);
    EXPECT_EQ(ack.header.window, 2000);  // what is held shrinks the window
    EXPECT_EQ(r.connection.unread(), 2000u);
    EXPECT_EQ(r.harness.offers, 1u);  // offered once; not again until resumed
    r.data(2000, c, 22 * ms);
    r.data(3000, d, 23 * ms);
    ack = r.harness.take();
    EXPECT_EQ(ack.header.ack, peer_iss + 4001);
    EXPECT_EQ(ack.header.window, 0);
    EXPECT_EQ(r.connection.info().rcv_wnd, 0u);

    // The peer's zero-window probes: one byte at RCV.NXT (dropped), or
    // Linux's, an empty segment just before it. Each gets the window, 0.
    r.data(4000, "e", 300 * ms);
    ack = r.harness.take();
    EXPECT_EQ(ack.header.ack, peer_iss + 4001);
    EXPECT_EQ(ack.header.window, 0);
    r.deliver(segment(flag::ack, peer_iss + 4000, our_iss + 1), 600 * ms);
    ack = r.harness.take();
    EXPECT_EQ(ack.header.ack, peer_iss + 4001);
    EXPECT_EQ(ack.header.window, 0);
    EXPECT_TRUE(r.harness.sent.empty());
    EXPECT_EQ(r.harness.received, "");
    EXPECT_EQ(r.harness.offers, 1u);
    EXPECT_FALSE(r.connection.closed());

    // Room for 1500 bytes: they go up, and a window of 1500 (more than
    // an MSS) is worth an update.
    r.harness.reader_room = 1500;
    r.connection.resume_receiving(700 * ms);
    EXPECT_EQ(r.harness.received, a + b.substr(0, 500));
    ack = r.harness.take();
    EXPECT_EQ(ack.header.ack, peer_iss + 4001);
    EXPECT_EQ(ack.header.window, 1500);
    // 100 bytes more would open it by less than an MSS: no update (receiver
    // silly window avoidance), and the window offered stays as it was.
    r.harness.reader_room = 100;
    r.connection.resume_receiving(701 * ms);
    EXPECT_TRUE(r.harness.sent.empty());
    EXPECT_EQ(r.connection.info().rcv_wnd, 1500u);
    // Everything: the whole window.
    r.harness.reader_room = SIZE_MAX;
    r.connection.resume_receiving(702 * ms);
    EXPECT_EQ(r.harness.received, a + b + c + d);
    EXPECT_EQ(r.connection.unread(), 0u);
    ack = r.harness.take();
    EXPECT_EQ(ack.header.window, 4000);
    // The byte the probe carried comes again, and goes up.
    r.data(4000, "e", 710 * ms);
    EXPECT_EQ(r.harness.received, a + b + c + d + "e");
}

TEST(TcpReceiveBackpressure, DataBeyondTheWindowIsDroppedAndAcked) {
    SmallReceiver r(4000);
    r.harness.reader_room = 0;
    // 3000 bytes of a 3500-byte segment fit: the rest is cut, and the peer
    // hears at once where the window ends.
    r.data(0, std::string(1000, 'a'), 20 * ms);
    r.data(1000, std::string(3500, 'b'), 21 * ms);
    const Sent ack = r.harness.take();
    EXPECT_EQ(ack.header.ack, peer_iss + 4001);
    EXPECT_EQ(ack.header.window, 0);
    EXPECT_EQ(r.connection.unread(), 4000u);
    // Past the window, out of order: not held.
    r.data(6000, "zz", 22 * ms);
    EXPECT_EQ(r.connection.info().held_out_of_order, 0u);
    EXPECT_EQ(r.harness.take().header.ack, peer_iss + 4001);
}

TEST(TcpReceiveBackpressure, BytesHeldOutOfOrderWaitBehindTheUnread) {
    SmallReceiver r(8000);
    r.harness.reader_room = 500;
    const std::string a(1000, 'a'), b(1000, 'b');
    r.data(1000, b, 20 * ms);  // held out of order
    r.data(0, a, 21 * ms);     // fills the hole; the reader takes 500 of it
    EXPECT_EQ(r.harness.received, a.substr(0, 500));
    EXPECT_EQ(r.connection.unread(), 1500u);
    EXPECT_EQ(r.connection.info().held_out_of_order, 0u);
    EXPECT_EQ(r.connection.info().rcv_nxt, peer_iss + 2001);
    r.harness.reader_room = SIZE_MAX;
    r.connection.resume_receiving(30 * ms);
    EXPECT_EQ(r.harness.received, a + b);
    // New data after the resume goes up in place again.
    r.data(2000, "c", 31 * ms);
    EXPECT_EQ(r.harness.received, a + b + "c");
}

TEST(TcpReceiveBackpressure, ThePeersFinWaitsForTheReader) {
    SmallReceiver r(8000);
    r.harness.reader_room = 0;
    r.deliver(segment(flag::ack | flag::fin, peer_iss + 1, our_iss + 1, "abc"), 20 * ms);
    EXPECT_EQ(r.connection.state(), State::close_wait);
    EXPECT_EQ(r.harness.take().header.ack, peer_iss + 5);
    EXPECT_FALSE(r.harness.peer_finished);
    r.harness.reader_room = SIZE_MAX;
    r.connection.resume_receiving(30 * ms);
    EXPECT_EQ(r.harness.received, "abc");
    EXPECT_TRUE(r.harness.peer_finished);
}

TEST_F(TcpConnectionTest, SendSpaceIsReportedWhenAcksFreeHalfTheBuffer) {
    establish();
    EXPECT_EQ(connection.send_space(), 64u * 1024);
    const std::string data = bytes(70'000, 's');
    EXPECT_EQ(connection.send(reinterpret_cast<const uint8_t *>(data.data()), data.size(),
                              20 * ms),
              64u * 1024);
    EXPECT_EQ(connection.send_space(), 0u);
    // The peer acknowledges all it has, ACK after ACK, as the window grows.
    uint64_t now = 30 * ms;
    size_t space_before_event = 0;
    for (int i = 0; i < 100 && harness.send_space_events.empty(); ++i) {
        space_before_event = connection.send_space();
        deliver(segment(flag::ack, peer_iss + 1, connection.info().snd_nxt), now += ms);
    }
    ASSERT_EQ(harness.send_space_events.size(), 1u);
    EXPECT_GE(harness.send_space_events[0], 32u * 1024);
    EXPECT_EQ(harness.send_space_events[0], connection.send_space());
    EXPECT_LT(space_before_event, 32u * 1024);  // not before half was free
    // Once said, not again until a send() falls short.
    deliver(segment(flag::ack, peer_iss + 1, connection.info().snd_nxt), now += ms);
    EXPECT_EQ(harness.send_space_events.size(), 1u);
}

TEST_F(TcpConnectionTest, TheUserTimerFiresOnceAndCanBeCancelled) {
    establish();
    connection.set_user_timer(500 * ms);
    EXPECT_EQ(connection.next_timer_us(), 500 * ms);
    connection.on_timer(499 * ms);
    EXPECT_EQ(harness.user_timers, 0);
    connection.on_timer(500 * ms);
    EXPECT_EQ(harness.user_timers, 1);
    EXPECT_EQ(connection.next_timer_us(), 0u);
    // With the delayed-ACK timer earlier, each fires at its time.
    connection.set_user_timer(900 * ms);
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1, "x"), 600 * ms);
    EXPECT_EQ(connection.next_timer_us(), 640 * ms);
    connection.on_timer(640 * ms);
    EXPECT_EQ(harness.user_timers, 1);
    EXPECT_EQ(connection.next_timer_us(), 900 * ms);
    connection.set_user_timer(0);
    EXPECT_EQ(connection.next_timer_us(), 0u);
    connection.on_timer(1000 * ms);
    EXPECT_EQ(harness.user_timers, 1);
    EXPECT_FALSE(connection.closed());
}

TEST_F(TcpConnectionTest, KeepalivesProbeAnIdleConnectionAndGiveUp) {
    Harness h;
    Settings s = settings();
    s.keepalive_idle_us = 10'000 * ms;
    s.keepalive_interval_us = 1'000 * ms;
    s.keepalive_probes = 3;
    Connection c(s, {40000, 80}, h, h);
    c.connect(our_iss, 0);
    Incoming syn_ack = segment(flag::syn | flag::ack, peer_iss, our_iss + 1);
    c.receive(syn_ack.segment, nullptr, 10 * ms);
    h.sent.clear();
    // Idle from the SYN-ACK on: the first probe after keepalive_idle_us.
    EXPECT_EQ(c.next_timer_us(), 10'010 * ms);
    c.on_timer(10'010 * ms);
    Sent probe = h.take();
    EXPECT_EQ(probe.header.flags, flag::ack);
    EXPECT_EQ(probe.header.seq, our_iss);  // SND.NXT - 1: a byte the peer has had
    EXPECT_EQ(probe.header.ack, peer_iss + 1);
    EXPECT_EQ(probe.payload, "");
    // The peer answers: idle again from then.
    Incoming answer = segment(flag::ack, peer_iss + 1, our_iss + 1);
    c.receive(answer.segment, nullptr, 10'020 * ms);
    EXPECT_EQ(c.next_timer_us(), 20'020 * ms);
    // Now it is gone: a probe every interval, then a RST.
    uint64_t now = 20'020 * ms;
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(c.next_timer_us(), now + uint64_t(i) * 1'000 * ms);
        c.on_timer(c.next_timer_us());
        EXPECT_EQ(h.take().header.seq, our_iss) << i;
        EXPECT_FALSE(c.closed());
    }
    c.on_timer(c.next_timer_us());
    EXPECT_TRUE(c.closed());
    EXPECT_EQ(h.closed, CloseReason::timed_out);
    EXPECT_EQ(h.take().header.flags, flag::rst | flag::ack);
    EXPECT_EQ(c.info().keepalives, 4u);
}

TEST_F(TcpConnectionTest, KeepalivesAreOffByDefaultAndWaitForDataInFlight) {
    establish();
    EXPECT_EQ(connection.next_timer_us(), 0u);  // off
    Harness h;
    Settings s = settings();
    s.keepalive_idle_us = 1'000 * ms;
    Connection c(s, {40000, 80}, h, h);
    c.connect(our_iss, 0);
    Incoming syn_ack = segment(flag::syn | flag::ack, peer_iss, our_iss + 1);
    c.receive(syn_ack.segment, nullptr, 10 * ms);
    c.send(reinterpret_cast<const uint8_t *>("x"), 1, 20 * ms);
    h.sent.clear();
    // Data out: the retransmission timer is the one that runs.
    for (int i = 0; i < 5; ++i) {
        c.on_timer(c.next_timer_us());
        ASSERT_FALSE(h.sent.empty());
        EXPECT_EQ(h.sent.back().payload, "x");  // retransmitted, never a keepalive
        h.sent.clear();
    }
    EXPECT_EQ(c.info().keepalives, 0u);
}

// CUBIC in the connection: a loss takes the window to 0.7 of what was in
// flight and sets W_max; growth after recovery follows the curve.
TEST(TcpConnectionCubic, ALossReducesByBetaAndTheWindowRegrowsTowardsWMax) {
    Harness h;
    Settings s;
    s.mss = 1000;
    s.send_buffer = 1 << 20;
    s.timestamps = false;
    ASSERT_EQ(s.congestion, Congestion::cubic);  // the default
    Connection c(s, {40000, 80}, h, h);
    c.connect(our_iss, 0);
    Incoming syn_ack = segment(flag::syn | flag::ack, peer_iss, our_iss + 1, "", 65535);
    syn_ack.segment.header.options.mss = 1000;
    syn_ack.segment.header.options.window_scale = 6;
    c.receive(syn_ack.segment, nullptr, 100 * ms);  // SRTT 100 ms
    const std::string data(1 << 20, 'c');
    c.send(reinterpret_cast<const uint8_t *>(data.data()), data.size(), 100 * ms);
    h.sent.clear();
    const auto ack = [&](uint32_t ack_seq, uint64_t now) {
        Incoming in = segment(flag::ack, peer_iss + 1, ack_seq, "", 65535);
        c.receive(in.segment, nullptr, now);
    };
    // One round of slow start.
    uint64_t now = 200 * ms;
    ack(our_iss + 1 + 10'000, now);
    EXPECT_EQ(c.info().cwnd, 11'000u);
    // Three duplicate ACKs: ssthresh = 0.7 x flight (RFC 9438 4.6).
    const uint32_t una = c.info().snd_una;
    const uint32_t flight = c.info().snd_nxt - una;
    for (int i = 0; i < 3; ++i)
        ack(una, now + ms);
    EXPECT_EQ(c.info().fast_retransmits, 1u);
    EXPECT_EQ(c.info().ssthresh, uint32_t(flight * 0.7));
    EXPECT_EQ(c.info().cwnd, uint32_t(flight * 0.7) + 3000);
    // The full ACK ends recovery at ssthresh; avoidance then follows
    // CUBIC, never below the window it started from.
    ack(c.info().snd_nxt, now + 100 * ms);
    const uint32_t start = c.info().cwnd;
    EXPECT_LE(start, uint32_t(flight * 0.7));
    now += 100 * ms;
    for (int rtt = 0; rtt < 20; ++rtt) {
        now += 100 * ms;
        ack(c.info().snd_nxt, now);
    }
    EXPECT_GT(c.info().cwnd, start);
}

TEST_F(TcpConnectionTest, ALostFinAloneIsSentAgain) {
    establish();
    connection.shutdown(20 * ms);
    EXPECT_EQ(harness.take().header.flags, flag::fin | flag::ack);
    connection.on_timer(connection.next_timer_us());
    const Sent again = harness.take();
    EXPECT_EQ(again.header.flags, flag::fin | flag::ack);
    EXPECT_EQ(again.header.seq, our_iss + 1);
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 2), 800 * ms);
    EXPECT_EQ(connection.state(), State::fin_wait_2);
}

// RFC 6675: the holes the peer's SACK blocks show are sent again as the
// pipe allows, not only the first unacknowledged segment.
TEST_F(TcpConnectionTest, SackedHolesAreRetransmittedNotOnlyTheFirst) {
    establish();
    const std::string data = bytes(10'000, 'h');
    connection.send(reinterpret_cast<const uint8_t *>(data.data()), data.size(), 20 * ms);
    ASSERT_EQ(harness.sent.size(), 10u);
    harness.sent.clear();
    // Segments 0, 3 and 6 were lost; the peer SACKs the rest as it comes.
    const auto sack_ack = [&](std::initializer_list<std::pair<uint32_t, uint32_t>> blocks,
                              uint64_t now, uint16_t window = 65535) {
        Incoming in = segment(flag::ack, peer_iss + 1, our_iss + 1, "", window);
        for (const auto &[left, right] : blocks)
            in.segment.header.options.sack[in.segment.header.options.sack_count++] = {
                our_iss + 1 + left, our_iss + 1 + right};
        deliver(in, now);
    };
    sack_ack({{1000, 2000}}, 40 * ms);
    sack_ack({{1000, 3000}}, 41 * ms);
    EXPECT_TRUE(harness.sent.empty());
    // Three segments SACKed above the first: it is lost (RFC 6675 4), and
    // goes at once; the window falls to ssthresh with no inflation.
    sack_ack({{4000, 5000}, {1000, 3000}}, 42 * ms);
    ASSERT_EQ(harness.sent.size(), 1u);
    EXPECT_EQ(harness.sent[0].header.seq, our_iss + 1);
    EXPECT_EQ(harness.sent[0].payload.size(), 1000u);
    Connection::Info info = connection.info();
    EXPECT_EQ(info.fast_retransmits, 1u);
    EXPECT_EQ(info.ssthresh, 5000u);
    EXPECT_EQ(info.cwnd, 5000u);
    EXPECT_EQ(info.sacked, 3000u);
    harness.sent.clear();
    // More SACKs: the pipe (4000 above the highest block + 1000 resent)
    // leaves no room yet.
    sack_ack({{4000, 6000}, {1000, 3000}}, 43 * ms);
    EXPECT_TRUE(harness.sent.empty());
    // Segment 7 arrives: the pipe drops to 3000, and both holes below the
    // highest block go, in order. (Its ACK opens the window a little, as
    // Linux's do: no duplicate ACK then, but an ACK in recovery all the same.)
    sack_ack({{7000, 8000}, {4000, 6000}, {1000, 3000}}, 44 * ms, 65000);
    ASSERT_EQ(harness.sent.size(), 2u);
    EXPECT_EQ(harness.sent[0].header.seq, our_iss + 1 + 3000);
    EXPECT_EQ(harness.sent[1].header.seq, our_iss + 1 + 6000);
    EXPECT_EQ(connection.info().retransmissions, 3u);
    harness.sent.clear();
    // A partial ACK up to the second hole: nothing is sent twice.
    sack_ack({{7000, 8000}, {4000, 6000}}, 60 * ms);
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1 + 3000), 61 * ms);
    EXPECT_TRUE(harness.sent.empty());
    // The full ACK ends recovery.
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 1 + 10'000), 62 * ms);
    info = connection.info();
    EXPECT_EQ(info.queued, 0u);
    EXPECT_EQ(info.sacked, 0u);
    EXPECT_LE(info.cwnd, 5000u);
    EXPECT_EQ(info.retransmissions, 3u);
}

TEST_F(TcpConnectionTest, NoFastRecoveryForWhatATimeoutSentAgain) {
    establish();
    const std::string data = bytes(10'000, 'g');
    connection.send(reinterpret_cast<const uint8_t *>(data.data()), data.size(), 20 * ms);
    harness.sent.clear();
    connection.on_timer(connection.next_timer_us());  // everything goes again from the first
    EXPECT_EQ(connection.info().timeouts, 1u);
    const uint32_t ssthresh = connection.info().ssthresh;
    harness.sent.clear();
    // The peer still holds segments 1 to 4 and says so, again and again:
    // duplicates of what the timeout resends, not a new loss.
    Incoming dup = segment(flag::ack, peer_iss + 1, our_iss + 1);
    dup.segment.header.options.sack_count = 1;
    dup.segment.header.options.sack[0] = {our_iss + 1001, our_iss + 5001};
    for (int i = 0; i < 4; ++i)
        deliver(dup, 300 * ms);
    EXPECT_EQ(connection.info().fast_retransmits, 0u);
    EXPECT_EQ(connection.info().ssthresh, ssthresh);
    // Once all of it is acknowledged, losses count again.
    deliver(segment(flag::ack, peer_iss + 1, our_iss + 10'001), 400 * ms);
    EXPECT_EQ(connection.info().queued, 0u);
}

} // namespace
} // namespace sluice::tcp

namespace sluice::tcp {
namespace {

// The sets of ranges both the receiver's held data and the SACK scoreboard
// keep: merged as they come, bounded, trimmed from below, across the
// wrap of sequence space.
TEST(SequenceRanges, MergeRefuseTrimAndWrap) {
    SequenceRanges<3> ranges;
    uint32_t joined = 0;
    EXPECT_TRUE(ranges.insert(100, 200, &joined));
    EXPECT_EQ(joined, 100u);
    EXPECT_TRUE(ranges.insert(300, 400));
    EXPECT_TRUE(ranges.insert(500, 600));
    EXPECT_FALSE(ranges.insert(700, 800));  // a fourth range: no room
    EXPECT_EQ(ranges.size(), 3u);
    EXPECT_TRUE(ranges.insert(150, 350, &joined));  // joins the first two
    EXPECT_EQ(joined, 100u);
    ASSERT_EQ(ranges.size(), 2u);
    EXPECT_EQ(ranges[0].left, 100u);
    EXPECT_EQ(ranges[0].right, 400u);
    EXPECT_EQ(ranges.bytes(), 400u);
    ranges.trim_below(250);
    EXPECT_EQ(ranges[0].left, 250u);
    EXPECT_EQ(ranges.bytes(), 250u);
    EXPECT_EQ(ranges.pop_front().right, 400u);
    EXPECT_EQ(ranges.size(), 1u);

    SequenceRanges<4> wrapping;
    EXPECT_TRUE(wrapping.insert(0xffffff00u, 0xffffff80u));
    EXPECT_TRUE(wrapping.insert(0x10, 0x20));
    EXPECT_TRUE(wrapping.insert(0xffffff80u, 0x10));  // fills the gap across zero
    ASSERT_EQ(wrapping.size(), 1u);
    EXPECT_EQ(wrapping[0].left, 0xffffff00u);
    EXPECT_EQ(wrapping[0].right, 0x20u);
    EXPECT_EQ(wrapping.bytes(), 0x120u);
}

} // namespace
} // namespace sluice::tcp
