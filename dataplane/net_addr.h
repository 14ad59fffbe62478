// Addresses as the data plane stores them: network byte order, fixed size,
// no EAL types, so lb/ and ctrl/ code and unit tests can use them freely.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

struct MacAddress {
    std::array<uint8_t, 6> bytes{};

    bool operator==(const MacAddress &) const = default;
    bool is_multicast() const { return bytes[0] & 0x01; }
    std::string to_string() const;
};

enum class AddressFamily : uint8_t { ipv4 = 4, ipv6 = 6 };

// An IPv4 or IPv6 address. IPv4 uses the first four bytes.
struct IpAddress {
    AddressFamily family = AddressFamily::ipv4;
    std::array<uint8_t, 16> bytes{};

    bool operator==(const IpAddress &) const = default;
    bool is_v4() const { return family == AddressFamily::ipv4; }
    // IPv4 address in network byte order, as it sits in a header.
    uint32_t v4_be() const;
    bool is_unspecified() const;
    bool is_multicast() const;
    bool is_loopback() const;
    std::string to_string() const;

    static IpAddress from_v4_be(uint32_t be);
    static IpAddress from_v6(const uint8_t bytes16[16]);
};

// `address` with every bit after the first `length` cleared.
IpAddress masked(const IpAddress &address, uint8_t length);

// A network: an address whose bits after the first `length` are zero.
struct IpPrefix {
    IpAddress network;
    uint8_t length = 0;

    bool operator==(const IpPrefix &) const = default;
    std::string to_string() const;
    bool contains(const IpAddress &address) const;
};

// An address assigned to an interface, with the length of its on-link prefix.
struct InterfaceAddress {
    IpAddress address;
    uint8_t prefix_length = 0;

    bool operator==(const InterfaceAddress &) const = default;
    std::string to_string() const;
    // The on-link prefix: 198.18.1.0/24 for 198.18.1.1/24.
    IpPrefix prefix() const { return {masked(address, prefix_length), prefix_length}; }
    // True when `other` lies in this address's on-link prefix.
    bool on_link(const IpAddress &other) const { return prefix().contains(other); }
};

std::optional<IpAddress> parse_ip_address(std::string_view text);
// "198.18.0.1/24" or "2001:db8::1/64"; the prefix length is required.
std::optional<InterfaceAddress> parse_interface_address(std::string_view text);
std::optional<MacAddress> parse_mac_address(std::string_view text);

} // namespace sluice
