// libFuzzer target for the DNS feed's reading of answers (parse_dns_answer
// in ctrl/dns_message.h), which reads bytes from the network. The message is
// given in a buffer exactly as long as the input, so ASan catches a read past
// it, and a compression loop would show as a timeout. What it returns must
// be what the feed relies on: SRV targets that are host names (or "."), in
// lowercase and of at most 253 characters, and addresses of either family.
#include "ctrl/dns_message.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sluice::ctrl::DnsAnswer answer;
    if (!sluice::ctrl::parse_dns_answer(std::span<const uint8_t>(data, size), answer).empty())
        return 0;
    if (answer.rcode > 15)
        __builtin_trap();
    for (const sluice::ctrl::DnsSrvRecord &record : answer.srv) {
        const std::string &target = record.target;
        if (target.empty() || target.size() > 253 || record.ttl > 0x7fffffff)
            __builtin_trap();
        if (target == ".")
            continue;
        if (target.front() == '.' || target.back() == '.' ||
            target.find("..") != std::string::npos)
            __builtin_trap();
        for (const char c : target)
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                  c == '.'))
                __builtin_trap();
    }
    for (const sluice::ctrl::DnsAddressRecord &record : answer.addresses)
        if (record.ttl > 0x7fffffff)
            __builtin_trap();
    if (answer.negative_ttl && *answer.negative_ttl > 0x7fffffff)
        __builtin_trap();
    return 0;
}
