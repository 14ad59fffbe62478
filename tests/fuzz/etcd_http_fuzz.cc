// libFuzzer target for the etcd client's HTTP/1.1 response reader
// (ctrl/etcd_http.h). The input is what etcd sends on one connection. It is
// read whole, byte by byte, and in pieces of sizes drawn from the input's
// hash, from buffers exactly as long as each piece, so ASan catches a read
// past what has arrived; after each complete response the reader moves on
// to the next (next()), and the end of input comes last. Each run must give
// the same responses (status, body, keep-alive) and the same refusal, and
// the reader never holds more body than its limit.
#include "ctrl/etcd_http.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace sluice::ctrl;

// Small, so that every limit is within reach of short inputs.
constexpr HttpClientLimits kLimits{256, 512};

void check(bool promise) {
    if (!promise)
        __builtin_trap();
}

struct Outcome {
    std::vector<std::string> responses;  // "status keep-alive body"
    std::string error;

    bool operator==(const Outcome &) const = default;
};

Outcome run(std::string_view input, const std::function<size_t(size_t)> &piece) {
    HttpResponseReader reader(kLimits);
    Outcome outcome;
    const auto collect = [&] {
        while (reader.complete()) {
            outcome.responses.push_back(std::to_string(reader.status()) +
                                        (reader.keep_alive() ? " keep " : " close ") +
                                        reader.body());
            reader.next();
        }
        check(reader.body().size() <= kLimits.max_body_bytes);
    };
    for (size_t at = 0; at < input.size() && !reader.failed();) {
        const size_t n = std::min(piece(at), input.size() - at);
        std::unique_ptr<char[]> exact(new char[n]);
        std::memcpy(exact.get(), input.data() + at, n);
        reader.take(std::string_view(exact.get(), n));
        at += n;
        collect();
    }
    if (!reader.failed()) {
        reader.take_end_of_input();
        collect();
    }
    outcome.error = reader.error();
    check(reader.failed() == !outcome.error.empty());
    return outcome;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view input(reinterpret_cast<const char *>(data), size);
    const Outcome whole = run(input, [&](size_t) { return size == 0 ? 1 : size; });
    check(run(input, [](size_t) { return size_t(1); }) == whole);
    const uint64_t hash = std::hash<std::string_view>{}(input);
    check(run(input, [&](size_t at) { return size_t(1 + ((hash >> (at % 57)) % 23)); }) == whole);
    return 0;
}
