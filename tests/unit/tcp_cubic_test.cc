// CUBIC (RFC 9438) on its promises: after a loss the window follows
// W_cubic(t) = C (t - K)^3 + W_max, with K = cbrt((W_max - cwnd_epoch) / C),
// back to W_max at t = K and beyond it after; where Reno would be faster
// it is Reno (the Reno-friendly region); a loss below the last W_max
// gives some of it up (fast convergence); after a timeout the curve
// starts flat from where slow start left off.
#include "dataplane/tcp_cubic.h"

#include <gtest/gtest.h>

#include <cmath>

namespace sluice::tcp {
namespace {

constexpr uint32_t mss = 1000;
constexpr uint64_t second = 1'000'000;

// An ACK clock: every RTT, one ACK per segment of the window, evenly
// spread. Calls `check(t_seconds, cwnd_in_segments)` at each RTT's start.
template <typename Check>
uint32_t run_avoidance(Cubic &cubic, uint32_t cwnd, uint64_t start_us, uint32_t rtt_us,
                       double seconds, Check check) {
    uint64_t now = start_us;
    while (now - start_us < uint64_t(seconds * second)) {
        check(double(now - start_us) / second, double(cwnd) / mss);
        const uint32_t acks = cwnd / mss;
        for (uint32_t i = 0; i < acks; ++i)
            cwnd = cubic.on_ack(cwnd, mss, mss, now + uint64_t(rtt_us) * i / acks, rtt_us);
        now += rtt_us;
    }
    return cwnd;
}

TEST(TcpCubic, ALossSetsWMaxAndSsthreshByBeta) {
    Cubic cubic;
    EXPECT_EQ(cubic.on_loss(100 * mss, 100 * mss, mss), 70 * mss);
    EXPECT_DOUBLE_EQ(cubic.w_max(), 100);
    // ssthresh from what was in flight; never under two segments.
    EXPECT_EQ(cubic.on_loss(100 * mss, 40 * mss, mss), 28 * mss);
    EXPECT_EQ(cubic.on_loss(100 * mss, 1 * mss, mss), 2 * mss);
}

TEST(TcpCubic, TheWindowFollowsTheCubicCurve) {
    Cubic cubic;
    const uint32_t ssthresh = cubic.on_loss(100 * mss, 100 * mss, mss);
    const uint32_t rtt = 200'000;  // long enough that Reno stays behind the curve
    const double k = std::cbrt((100.0 - 70.0) / 0.4);  // RFC 9438 (2)
    const auto w_cubic = [k](double t) { return 0.4 * std::pow(t - k, 3) + 100; };
    int checked = 0;
    const uint32_t end = run_avoidance(cubic, ssthresh, 5 * second, rtt, 10, [&](double t, double w) {
        if (t == 0)
            return;
        // cwnd aims one RTT ahead (RFC 9438 4.2's target): between the
        // curve now and the curve an RTT from now, give or take a segment.
        EXPECT_GE(w, w_cubic(t) - 1) << t;
        EXPECT_LE(w, w_cubic(t + rtt / 1e6) + 1) << t;
        ++checked;
    });
    EXPECT_NEAR(cubic.k_s(), k, 1e-9);
    EXPECT_GE(checked, 45);
    // Well past W_max at 10 s (the convex region), where the curve is.
    EXPECT_GT(w_cubic(10), 170);
    EXPECT_NEAR(double(end) / mss, w_cubic(10), 8);
}

TEST(TcpCubic, ThePlateauIsReachedAtK) {
    Cubic cubic;
    cubic.on_loss(100 * mss, 100 * mss, mss);
    const uint32_t rtt = 200'000;
    double at_k = 0;
    run_avoidance(cubic, 70 * mss, 0, rtt, 6, [&](double t, double w) {
        if (std::fabs(t - cubic.k_s()) <= 0.1)
            at_k = w;
    });
    EXPECT_NEAR(at_k, 100, 1.5);
}

TEST(TcpCubic, WhereRenoIsFasterTheWindowIsRenos) {
    // A short RTT: Reno's one segment per RTT (alpha 0.53 until the old
    // window, then 1, RFC 9438 4.3) outruns the curve's first second.
    Cubic cubic;
    cubic.on_loss(100 * mss, 100 * mss, mss);
    const uint32_t rtt = 10'000;
    const uint32_t end = run_avoidance(cubic, 70 * mss, 0, rtt, 1, [](double, double) {});
    const double alpha = 3 * (1 - 0.7) / (1 + 0.7);
    const double rtts_to_prior = 30 / alpha;
    const double reno = 100 + (100 - rtts_to_prior);
    EXPECT_LT(cubic.w_cubic(1.0), 90);
    EXPECT_NEAR(double(end) / mss, reno, 3);
}

TEST(TcpCubic, FastConvergenceGivesUpPartOfTheLastWMax) {
    Cubic cubic;
    cubic.on_loss(100 * mss, 100 * mss, mss);
    // The next loss comes below W_max: another flow is taking bandwidth.
    cubic.on_loss(80 * mss, 80 * mss, mss);
    EXPECT_DOUBLE_EQ(cubic.w_max(), 80 * (1 + 0.7) / 2);
    // Above it: W_max is the window.
    cubic.on_loss(90 * mss, 90 * mss, mss);
    EXPECT_DOUBLE_EQ(cubic.w_max(), 90);
}

TEST(TcpCubic, AfterATimeoutTheCurveStartsFlatWhereSlowStartEnded) {
    Cubic cubic;
    cubic.on_loss(100 * mss, 100 * mss, mss);
    EXPECT_EQ(cubic.on_timeout(100 * mss, 60 * mss, mss), 42 * mss);
    // Slow start (the connection's) brought the window to 42 segments.
    cubic.on_ack(42 * mss, mss, mss, 1 * second, 100'000);
    EXPECT_DOUBLE_EQ(cubic.k_s(), 0);  // RFC 9438 4.8
    EXPECT_DOUBLE_EQ(cubic.plateau(), 42);
    EXPECT_DOUBLE_EQ(cubic.w_cubic(2.0), 0.4 * 8 + 42);
}

TEST(TcpCubic, IdleTimeDoesNotMoveTheCurve) {
    Cubic a, b;
    a.on_loss(100 * mss, 100 * mss, mss);
    b.on_loss(100 * mss, 100 * mss, mss);
    uint32_t wa = a.on_ack(70 * mss, mss, mss, 0, 100'000);
    uint32_t wb = b.on_ack(70 * mss, mss, mss, 0, 100'000);
    b.on_idle(30 * second);
    wa = a.on_ack(wa, mss, mss, 1 * second, 100'000);
    wb = b.on_ack(wb, mss, mss, 31 * second, 100'000);
    EXPECT_EQ(wa, wb);
}

} // namespace
} // namespace sluice::tcp
