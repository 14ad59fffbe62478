// libFuzzer target for the management API's request handling (ctrl/api.h):
// the first line of the input is "METHOD PATH", the rest is the body, and
// the token is always right, so that bodies reach validation. Whatever
// comes in, handle() must answer with a known status and a JSON body, and
// whatever it publishes must be a config that the loader takes back as it is.
#include "ctrl/api.h"
#include "ctrl/config_emit.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

using namespace sluice::ctrl;

constexpr const char *gateway_yaml = R"(
ports:
  - {name: back, device: net_null0, addresses: [198.18.1.1/24, "2001:db8:0:2::1/64"],
     exception_path: {tap: tb}}
services:
  - {name: web, vip: 198.18.10.1, protocol: tcp, port: 80, local_addresses: [198.18.1.100],
     backends: [{address: 198.18.1.11}, {address: 198.18.1.12, weight: 2}]}
  - {name: dns, vip: 198.18.10.2, protocol: udp, port: 53, mode: nat,
     health_check: {type: http, path: /}, backends: [{address: 198.18.1.11, port: 5353},
     {address: 198.18.1.11, port: 5354}]}
  - {name: web6, vip: "2001:db8:10::1", protocol: tcp, mode: dsr, encapsulation: gue,
     backends: [{address: "2001:db8:0:2::11"}, {address: 198.18.1.13}]}
api: {token: fuzz-token-0123456789}
)";

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const Config base = load_config_text(gateway_yaml, "fuzz", 4);
    Config config = base;
    ApiHooks hooks;
    hooks.config = [&]() -> const Config & { return config; };
    hooks.apply = [&](Config next) {
        // What the API publishes is a config the loader takes as it is.
        const Config back = load_config_text(emit_config(next), "fuzz", 8);
        if (!(back == next))
            __builtin_trap();
        config = std::move(next);
        return std::string();
    };
    const ManagementApi api(hooks);

    const std::string input(reinterpret_cast<const char *>(data), size);
    const size_t line_end = std::min(input.find('\n'), input.size());
    const std::string line = input.substr(0, line_end);
    const size_t space = std::min(line.find(' '), line.size());
    ApiRequest request;
    request.method = line.substr(0, space);
    request.path = space < line.size() ? line.substr(space + 1) : "";
    request.body = line_end < input.size() ? input.substr(line_end + 1) : "";
    request.authorization = "Bearer fuzz-token-0123456789";

    const ApiResponse response = api.handle(request);
    if (response.status < 200 || response.status == 500 || response.status > 503)
        __builtin_trap();
    if (response.content_type == "application/json") {
        const Json body = Json::parse(response.body, nullptr, false);
        if (body.is_discarded())
            __builtin_trap();
        if (response.status >= 400 && (!body.contains("error") || !body.contains("field")))
            __builtin_trap();
    }
    return 0;
}
