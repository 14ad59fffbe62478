#include "dataplane/net_addr.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

namespace sluice {

std::string MacAddress::to_string() const {
    char text[18];
    std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1],
                  bytes[2], bytes[3], bytes[4], bytes[5]);
    return text;
}

uint32_t IpAddress::v4_be() const {
    uint32_t be;
    std::memcpy(&be, bytes.data(), 4);
    return be;
}

bool IpAddress::is_unspecified() const {
    const size_t n = is_v4() ? 4 : 16;
    for (size_t i = 0; i < n; ++i)
        if (bytes[i] != 0)
            return false;
    return true;
}

bool IpAddress::is_multicast() const {
    return is_v4() ? (bytes[0] & 0xf0) == 0xe0 : bytes[0] == 0xff;
}

bool IpAddress::is_loopback() const {
    if (is_v4())
        return bytes[0] == 127;
    for (size_t i = 0; i < 15; ++i)
        if (bytes[i] != 0)
            return false;
    return bytes[15] == 1;
}

std::string IpAddress::to_string() const {
    char text[INET6_ADDRSTRLEN];
    inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes.data(), text, sizeof text);
    return text;
}

IpAddress IpAddress::from_v4_be(uint32_t be) {
    IpAddress a;
    a.family = AddressFamily::ipv4;
    std::memcpy(a.bytes.data(), &be, 4);
    return a;
}

IpAddress IpAddress::from_v6(const uint8_t bytes16[16]) {
    IpAddress a;
    a.family = AddressFamily::ipv6;
    std::memcpy(a.bytes.data(), bytes16, 16);
    return a;
}

std::string InterfaceAddress::to_string() const {
    return address.to_string() + "/" + std::to_string(prefix_length);
}

IpAddress masked(const IpAddress &address, uint8_t length) {
    IpAddress network = address;
    const unsigned size = address.is_v4() ? 4 : 16;
    for (unsigned i = 0; i < size; ++i) {
        const unsigned kept = length > i * 8 ? length - i * 8 : 0;  // bits of byte i to keep
        if (kept < 8)
            network.bytes[i] &= uint8_t(0xff00 >> kept);
    }
    return network;
}

std::string IpPrefix::to_string() const {
    return network.to_string() + "/" + std::to_string(length);
}

bool IpPrefix::contains(const IpAddress &address) const {
    return address.family == network.family && masked(address, length) == network;
}

std::optional<IpAddress> parse_ip_address(std::string_view text) {
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN)
        return std::nullopt;
    char buf[INET6_ADDRSTRLEN];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    IpAddress a;
    if (inet_pton(AF_INET, buf, a.bytes.data()) == 1) {
        a.family = AddressFamily::ipv4;
        return a;
    }
    if (inet_pton(AF_INET6, buf, a.bytes.data()) == 1) {
        a.family = AddressFamily::ipv6;
        return a;
    }
    return std::nullopt;
}

std::optional<InterfaceAddress> parse_interface_address(std::string_view text) {
    const size_t slash = text.find('/');
    if (slash == std::string_view::npos)
        return std::nullopt;
    auto address = parse_ip_address(text.substr(0, slash));
    if (!address)
        return std::nullopt;
    std::string_view length_text = text.substr(slash + 1);
    if (length_text.empty() || length_text.size() > 3)
        return std::nullopt;
    unsigned length = 0;
    for (char c : length_text) {
        if (c < '0' || c > '9')
            return std::nullopt;
        length = length * 10 + unsigned(c - '0');
    }
    if (length > (address->is_v4() ? 32u : 128u))
        return std::nullopt;
    return InterfaceAddress{*address, uint8_t(length)};
}

std::optional<MacAddress> parse_mac_address(std::string_view text) {
    MacAddress mac;
    if (text.size() != 17)
        return std::nullopt;
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (size_t i = 0; i < 6; ++i) {
        const int hi = hex(text[i * 3]), lo = hex(text[i * 3 + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':'))
            return std::nullopt;
        mac.bytes[i] = uint8_t(hi << 4 | lo);
    }
    return mac;
}

} // namespace sluice
