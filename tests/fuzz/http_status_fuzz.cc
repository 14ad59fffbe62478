// libFuzzer target for the status-line parser
// (parse_status_line in ctrl/http_syntax.h). The line is given in a
// buffer exactly as long as the input, so ASan catches a read past it; a
// status it returns must be the three digits after "HTTP/1.x ", in range.
#include "ctrl/http_syntax.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view line(reinterpret_cast<const char *>(data), size);
    const std::optional<uint16_t> status = sluice::ctrl::parse_status_line(line);
    if (!status)
        return 0;
    // RFC 9112 4: HTTP-version SP 3DIGIT [ SP reason-phrase ].
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[7] < '0' || line[7] > '9' ||
        line[8] != ' ' || (line.size() > 12 && line[12] != ' '))
        __builtin_trap();
    const int digits = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (*status != digits || *status < 100 || *status > 599)
        __builtin_trap();
    return 0;
}
