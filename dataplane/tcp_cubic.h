// CUBIC's congestion window (RFC 9438), for one connection: how far the
// window falls on a loss and how it grows between losses. The connection
// keeps NewReno's loss recovery around it (RFC 5681, 6582: fast retransmit,
// fast recovery, partial ACKs, the timeout's slow start); CUBIC only
// replaces the halving with beta and the linear growth of congestion
// avoidance with the cubic curve, or Reno's where that is faster.
//
// Windows are in bytes outside and in segments inside, where the RFC's
// constants (C in segments per second cubed) apply.
#pragma once

#include <cstdint>

namespace sluice::tcp {

class Cubic {
public:
    static constexpr double beta = 0.7;  // RFC 9438 4.6
    static constexpr double c = 0.4;     // RFC 9438 5.1

    // A loss detected by duplicate ACKs or a timeout (RFC 9438 4.6, 4.7):
    // remembers the window it happened at, with fast convergence, and
    // returns the new ssthresh in bytes.
    uint32_t on_loss(uint32_t cwnd, uint32_t flight_size, uint32_t mss);
    // A timeout (RFC 9438 4.8): as on_loss(), and the next avoidance starts
    // with K = 0 from wherever slow start left the window.
    uint32_t on_timeout(uint32_t cwnd, uint32_t flight_size, uint32_t mss);
    // An ACK of `acked` bytes in congestion avoidance at `now_us`: the new
    // window (RFC 9438 4.2-4.5). `srtt_us` is the smoothed RTT.
    uint32_t on_ack(uint32_t cwnd, uint32_t acked, uint32_t mss, uint64_t now_us,
                    uint32_t srtt_us);
    // Sending resumes after `idle_us` with nothing in flight: the curve's
    // time stands still meanwhile, as the window did not grow by use.
    void on_idle(uint64_t idle_us);

    // W_cubic(t) of RFC 9438 4.2 in segments, t seconds into the epoch.
    double w_cubic(double t_s) const;
    double w_max() const { return w_max_; }
    double plateau() const { return plateau_; }
    double k_s() const { return k_s_; }
    bool in_epoch() const { return in_epoch_; }

private:
    void start_epoch(double cwnd_segments, uint64_t now_us);

    double w_max_ = 0;       // segments: the window at the last loss (after fast convergence)
    double plateau_ = 0;     // segments: the curve's W_max this epoch
    double cwnd_prior_ = 0;  // segments: the window when ssthresh was last set
    double k_s_ = 0;         // seconds the curve takes back to w_max_
    double w_est_ = 0;       // segments: Reno's window, for the Reno-friendly region (4.3)
    double carry_bytes_ = 0;  // the growth below a byte, kept for the next ACK
    uint64_t epoch_start_us_ = 0;
    bool in_epoch_ = false;
    bool after_timeout_ = false;
};

} // namespace sluice::tcp
