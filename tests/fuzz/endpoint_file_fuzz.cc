// libFuzzer target for the file feed's parser (ctrl/file_feed.h). Any input
// must either be read or be refused with a positioned message; anything else
// escaping (a yaml-cpp or nlohmann exception, a crash, a hang) is a bug. What
// it reads keeps the parser's promises: ids present and unique per service,
// addresses that parse_endpoint_json() takes, terminating never ready.
#include "ctrl/file_feed.h"

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace sluice::ctrl;
    const std::string_view text(reinterpret_cast<const char *>(data), size);
    EndpointSet out;
    const std::string error = parse_endpoint_file(text, "fuzz", out);
    if (!error.empty()) {
        if (error.rfind("fuzz:", 0) != 0 || !out.empty())
            __builtin_trap();
        return 0;
    }
    for (const auto &[service, endpoints] : out) {
        std::set<std::string> ids;
        for (const Endpoint &e : endpoints) {
            if (e.id.empty() || !ids.insert(e.id).second)
                __builtin_trap();
            if (e.address.is_unspecified() || e.address.is_multicast() || e.address.is_loopback())
                __builtin_trap();
            if (e.terminating && e.ready)
                __builtin_trap();
        }
    }
    return 0;
}
