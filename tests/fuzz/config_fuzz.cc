// libFuzzer target for the configuration loader. Any input must either load or
// be rejected with a ConfigError: anything else escaping (a yaml-cpp exception,
// std::out_of_range, a crash) is a bug.
#include "ctrl/config.h"
#include "ctrl/route_table.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view text(reinterpret_cast<const char *>(data), size);
    try {
        const sluice::ctrl::Config config = sluice::ctrl::load_config_text(text, "fuzz", 4);
        // What the loader promises about a config it returns.
        if (config.ports.empty() || config.cores.workers.empty() ||
            config.cores.workers.size() + 1 > 4)
            __builtin_trap();
        // Every backend has a route: on-link, or through a gateway.
        const sluice::ctrl::RouteTable routes = sluice::ctrl::route_table(config);
        for (const auto &service : config.services)
            for (const auto &backend : service.backends)
                if (!routes.lookup(backend.address))
                    __builtin_trap();
    } catch (const sluice::ctrl::ConfigError &) {
    }
    return 0;
}
