// libFuzzer target: the parser, then the local-reply builder on whatever the
// parser accepts, over a buffer exactly as long as the input so ASan catches
// any read or write past it.
#include <cstdint>
#include <cstring>
#include <memory>

#include "dataplane/local_reply.h"
#include "dataplane/packet_parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace sluice;
    static const LocalAddresses local = [] {
        LocalAddresses l;
        l.mac = *parse_mac_address("02:00:00:00:00:01");
        l.add(*parse_ip_address("198.18.0.1"));
        l.add(*parse_ip_address("2001:db8:0:1::1"));
        return l;
    }();

    ParsedPacket parsed;
    const uint32_t length = uint32_t(size > 0xffff ? 0xffff : size);
    std::unique_ptr<uint8_t[]> frame(new uint8_t[length ? length : 1]);
    std::memcpy(frame.get(), data, length);
    if (parse_packet(frame.get(), length, parsed) != DropReason::none)
        return 0;
    if (parsed.l3_end > length || parsed.l4_offset > length)
        __builtin_trap();

    // The answer may grow the frame up to the buffer's capacity, no further.
    uint32_t reply_length = length;
    DropReason reason = DropReason::none;
    answer_local(frame.get(), reply_length, length, parsed, local, reason);
    if (reply_length > length)
        __builtin_trap();
    return 0;
}
