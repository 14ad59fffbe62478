#include "dataplane/tcp_cubic.h"

#include <algorithm>
#include <cmath>

namespace sluice::tcp {

namespace {

// RFC 9438 4.3: Reno's additive increase that gives the same average
// window as Reno under the same loss rate, with beta 0.7.
constexpr double alpha_reno_friendly = 3 * (1 - Cubic::beta) / (1 + Cubic::beta);

} // namespace

uint32_t Cubic::on_loss(uint32_t cwnd, uint32_t flight_size, uint32_t mss) {
    const double cwnd_segments = double(cwnd) / mss;
    // Fast convergence (RFC 9438 4.7): a loss below the last W_max means
    // another flow took bandwidth; give some of it up at once.
    w_max_ = cwnd_segments < w_max_ ? cwnd_segments * (1 + beta) / 2 : cwnd_segments;
    cwnd_prior_ = cwnd_segments;
    in_epoch_ = false;
    after_timeout_ = false;
    carry_bytes_ = 0;
    // RFC 9438 4.6: from the bytes in flight, so that a window the
    // application left unused does not set the threshold.
    return std::max(uint32_t(flight_size * beta), 2 * mss);
}

uint32_t Cubic::on_timeout(uint32_t cwnd, uint32_t flight_size, uint32_t mss) {
    const uint32_t ssthresh = on_loss(cwnd, flight_size, mss);
    after_timeout_ = true;
    return ssthresh;
}

void Cubic::start_epoch(double cwnd_segments, uint64_t now_us) {
    in_epoch_ = true;
    epoch_start_us_ = now_us;
    w_est_ = cwnd_segments;
    // RFC 9438 4.2: K from the window the avoidance starts at; after a
    // timeout (4.8), or above the last W_max, the curve starts at its
    // plateau and only probes up.
    plateau_ = after_timeout_ ? cwnd_segments : std::max(w_max_, cwnd_segments);
    k_s_ = std::cbrt((plateau_ - cwnd_segments) / c);
    after_timeout_ = false;
}

double Cubic::w_cubic(double t_s) const {
    const double d = t_s - k_s_;
    return c * d * d * d + plateau_;
}

uint32_t Cubic::on_ack(uint32_t cwnd, uint32_t acked, uint32_t mss, uint64_t now_us,
                       uint32_t srtt_us) {
    const double cwnd_segments = double(cwnd) / mss;
    if (!in_epoch_)
        start_epoch(cwnd_segments, now_us);
    const double acked_segments = double(acked) / mss;
    const double t_s = double(now_us - epoch_start_us_) / 1e6;

    // Reno's window over the same ACKs (RFC 9438 4.3); alpha becomes 1
    // once it passes the window of the last loss.
    const double alpha = w_est_ >= cwnd_prior_ ? 1.0 : alpha_reno_friendly;
    w_est_ += alpha * acked_segments / cwnd_segments;

    double next_segments;
    if (w_cubic(t_s) < w_est_) {
        // The Reno-friendly region: at least as fast as Reno would be.
        next_segments = std::max(cwnd_segments, w_est_);
    } else {
        // Concave or convex region (RFC 9438 4.4, 4.5): towards where the
        // curve will be one RTT from now, by at most half a window per RTT.
        const double target = std::clamp(w_cubic(t_s + srtt_us / 1e6), cwnd_segments,
                                         1.5 * cwnd_segments);
        next_segments = cwnd_segments + (target - cwnd_segments) / cwnd_segments * acked_segments;
    }
    const double grown = (next_segments - cwnd_segments) * mss + carry_bytes_;
    const double whole = std::floor(grown);
    carry_bytes_ = grown - whole;
    const double next = double(cwnd) + whole;
    return next >= double(UINT32_MAX) ? UINT32_MAX : uint32_t(next);
}

void Cubic::on_idle(uint64_t idle_us) {
    if (in_epoch_)
        epoch_start_us_ += idle_us;
}

} // namespace sluice::tcp
