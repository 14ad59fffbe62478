#include "ctrl/dns_message.h"

#include <algorithm>

namespace sluice::ctrl {

namespace {

constexpr size_t header_size = 12;
constexpr size_t max_name_length = 255;  // RFC 1035 2.3.4, in wire form
constexpr uint16_t type_a = 1, type_soa = 6, type_aaaa = 28, type_srv = 33;
constexpr uint16_t class_in = 1;

uint16_t read16(std::span<const uint8_t> m, size_t at) { return uint16_t(m[at] << 8 | m[at + 1]); }
uint32_t read32(std::span<const uint8_t> m, size_t at) {
    return uint32_t(m[at]) << 24 | uint32_t(m[at + 1]) << 16 | uint32_t(m[at + 2]) << 8 | m[at + 3];
}

// RFC 2181 section 8: a TTL is 31 bits; one with the top bit set is zero.
uint32_t ttl_of(uint32_t wire) { return wire > 0x7fffffff ? 0 : wire; }

bool host_name_byte(uint8_t c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

struct Name {
    size_t end = 0;           // the byte after the name where it starts (after its first pointer)
    std::string text;         // lowercase, dot-separated, "" for the root
    bool host_name = true;    // every label is made of host_name_byte()s
};

// RFC 1035 4.1.4. Every pointer must point before the labels that led to it,
// so each jump goes strictly backwards and the walk ends.
bool read_name(std::span<const uint8_t> m, size_t at, Name &name) {
    name = {};
    size_t position = at;
    size_t lowest_start = at;  // where the labels being read began
    size_t wire_length = 1;    // the root's zero byte
    bool jumped = false;
    for (;;) {
        if (position >= m.size())
            return false;
        const uint8_t length = m[position];
        if (length == 0) {
            if (!jumped)
                name.end = position + 1;
            return true;
        }
        if ((length & 0xc0) == 0xc0) {
            if (position + 1 >= m.size())
                return false;
            const size_t target = size_t(length & 0x3f) << 8 | m[position + 1];
            if (!jumped)
                name.end = position + 2;
            jumped = true;
            if (target >= lowest_start)
                return false;
            lowest_start = target;
            position = target;
            continue;
        }
        if (length & 0xc0)  // 0x40 and 0x80: extended label types (RFC 6891), not in use
            return false;
        wire_length += 1 + length;
        if (wire_length > max_name_length || position + 1 + length > m.size())
            return false;
        if (!name.text.empty())
            name.text += '.';
        for (size_t i = position + 1; i <= position + length; ++i) {
            const uint8_t c = m[i];
            name.host_name = name.host_name && host_name_byte(c);
            name.text += char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        position += 1 + length;
    }
}

} // namespace

std::string parse_dns_answer(std::span<const uint8_t> m, DnsAnswer &answer) {
    answer = {};
    if (m.size() < header_size)
        return "shorter than a DNS header";
    answer.rcode = m[3] & 0x0f;
    const uint16_t questions = read16(m, 4);
    const uint16_t answers = read16(m, 6);
    const uint16_t authorities = read16(m, 8);

    size_t position = header_size;
    Name name;
    for (uint16_t i = 0; i < questions; ++i) {
        if (!read_name(m, position, name) || name.end + 4 > m.size())
            return "the question section runs past the end or has a bad name";
        position = name.end + 4;
    }
    for (uint32_t i = 0; i < uint32_t(answers) + authorities; ++i) {
        const bool in_answer = i < answers;
        const char *section = in_answer ? "answer" : "authority";
        if (!read_name(m, position, name) || name.end + 10 > m.size())
            return std::string("the ") + section + " section runs past the end or has a bad name";
        const size_t fixed = name.end;
        const uint16_t type = read16(m, fixed);
        const uint16_t klass = read16(m, fixed + 2);
        const uint32_t ttl = ttl_of(read32(m, fixed + 4));
        const size_t data = fixed + 10;
        const size_t data_end = data + read16(m, fixed + 8);
        if (data_end > m.size())
            return std::string("a record of the ") + section + " section runs past the end";
        position = data_end;
        if (klass != class_in)
            continue;
        const size_t data_length = data_end - data;
        if (in_answer && type == type_srv) {
            // RFC 2782: priority, weight, port, then the target, uncompressed
            // by the standard but compressed by some servers anyway.
            if (data_length < 7 || !read_name(m, data + 6, name) || name.end != data_end)
                return "an SRV record is malformed";
            if (!name.host_name) {
                ++answer.unusable_targets;
                continue;
            }
            answer.srv.push_back({read16(m, data), read16(m, data + 2), read16(m, data + 4),
                                  name.text.empty() ? "." : name.text, ttl});
        } else if (in_answer && (type == type_a || type == type_aaaa)) {
            if (data_length != (type == type_a ? 4u : 16u))
                return type == type_a ? "an A record is not 4 bytes long"
                                      : "an AAAA record is not 16 bytes long";
            IpAddress address;
            if (type == type_a) {
                address.family = AddressFamily::ipv4;
                std::copy_n(&m[data], 4, address.bytes.begin());
            } else {
                address = IpAddress::from_v6(&m[data]);
            }
            answer.addresses.push_back({address, ttl});
        } else if (!in_answer && type == type_soa) {
            // MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM.
            if (!read_name(m, data, name) || !read_name(m, name.end, name) ||
                name.end + 20 != data_end)
                return "an SOA record is malformed";
            const uint32_t negative = std::min(ttl, ttl_of(read32(m, name.end + 16)));
            answer.negative_ttl = std::min(answer.negative_ttl.value_or(negative), negative);
        }
    }
    return "";
}

} // namespace sluice::ctrl
