// The DNS SRV feed's reading of DNS messages, on crafted bytes.
#include "ctrl/dns_message.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::ctrl {
namespace {

IpAddress ip(const char *text) { return *parse_ip_address(text); }

// ---- DNS messages, byte by byte ----------------------------------------

// A DNS message written by hand (RFC 1035 4.1).
struct Message {
    std::vector<uint8_t> bytes;

    Message &u8(uint8_t value) {
        bytes.push_back(value);
        return *this;
    }
    Message &u16(uint16_t value) { return u8(uint8_t(value >> 8)).u8(uint8_t(value)); }
    Message &u32(uint32_t value) { return u16(uint16_t(value >> 16)).u16(uint16_t(value)); }
    // "a.b" as labels, then the root unless a pointer follows.
    Message &labels(const std::string &dotted, bool root = true) {
        size_t start = 0;
        while (start < dotted.size()) {
            size_t dot = dotted.find('.', start);
            if (dot == std::string::npos)
                dot = dotted.size();
            u8(uint8_t(dot - start));
            for (size_t i = start; i < dot; ++i)
                u8(uint8_t(dotted[i]));
            start = dot + 1;
        }
        return root ? u8(0) : *this;
    }
    Message &pointer(uint16_t offset) { return u16(uint16_t(0xc000 | offset)); }
    Message &header(uint8_t rcode, uint16_t answers, uint16_t authorities = 0) {
        return u16(0x1234).u16(uint16_t(0x8400 | rcode)).u16(1).u16(answers).u16(authorities).u16(0);
    }
    // A record header after its owner name; the caller writes rdlength bytes.
    Message &record(uint16_t type, uint32_t ttl, uint16_t rdlength) {
        return u16(type).u16(1).u32(ttl).u16(rdlength);
    }
};

constexpr uint16_t question_offset = 12;

TEST(DnsMessage, ReadsSrvRecordsWithCompressedTargetsAndTtls) {
    Message m;
    m.header(0, 3).labels("_http._tcp.web.mesh.test").u16(33).u16(1);
    // "mesh.test" inside the question: after the header, "_http", "_tcp", "web".
    const uint16_t mesh_test = question_offset + 6 + 5 + 4;
    m.pointer(question_offset).record(33, 30, 6 + 6 + 2);
    m.u16(10).u16(5).u16(8080).labels("web-1", false).pointer(mesh_test);
    // Uppercase comes back lowercase; a TTL with the top bit set counts as 0.
    m.pointer(question_offset).record(33, 0x80000001u, 6 + 17);
    m.u16(20).u16(0).u16(8081).labels("WEB-2.Mesh.Test");
    // A record of another type is skipped.
    m.pointer(question_offset).record(16, 30, 3).u8(2).u8('h').u8('i');

    DnsAnswer answer;
    ASSERT_EQ(parse_dns_answer(m.bytes, answer), "");
    EXPECT_EQ(answer.rcode, 0);
    ASSERT_EQ(answer.srv.size(), 2u);
    EXPECT_EQ(answer.srv[0], (DnsSrvRecord{10, 5, 8080, "web-1.mesh.test", 30}));
    EXPECT_EQ(answer.srv[1], (DnsSrvRecord{20, 0, 8081, "web-2.mesh.test", 0}));
    EXPECT_FALSE(answer.negative_ttl);

    // Every proper prefix of the message is refused, not read past its end.
    for (size_t length = 0; length < m.bytes.size(); ++length) {
        const std::vector<uint8_t> cut(m.bytes.begin(), m.bytes.begin() + long(length));
        EXPECT_NE(parse_dns_answer(cut, answer), "") << "a prefix of " << length << " bytes";
    }
}

TEST(DnsMessage, ReadsAddressesAndTheSoaNegativeTtl) {
    Message m;
    m.header(0, 2).labels("web-1.mesh.test").u16(1).u16(1);
    m.pointer(question_offset).record(1, 7, 4).u8(198).u8(18).u8(1).u8(11);
    m.pointer(question_offset).record(28, 9, 16).u32(0x20010db8).u32(0).u32(0).u32(0x11);
    DnsAnswer answer;
    ASSERT_EQ(parse_dns_answer(m.bytes, answer), "");
    ASSERT_EQ(answer.addresses.size(), 2u);
    EXPECT_EQ(answer.addresses[0], (DnsAddressRecord{ip("198.18.1.11"), 7}));
    EXPECT_EQ(answer.addresses[1], (DnsAddressRecord{ip("2001:db8::11"), 9}));

    // NXDOMAIN with an SOA: RFC 2308's negative TTL is min(TTL, MINIMUM).
    Message nx;
    nx.header(3, 0, 1).labels("_http._tcp.gone.mesh.test").u16(33).u16(1);
    nx.labels("mesh.test").record(6, 60, 0);
    const size_t rdata = nx.bytes.size();
    nx.labels("ns.mesh.test").labels("hostmaster.mesh.test");
    nx.u32(2024).u32(3600).u32(600).u32(86400).u32(10);
    const uint16_t rdlength = uint16_t(nx.bytes.size() - rdata);
    nx.bytes[rdata - 2] = uint8_t(rdlength >> 8);
    nx.bytes[rdata - 1] = uint8_t(rdlength);
    ASSERT_EQ(parse_dns_answer(nx.bytes, answer), "");
    EXPECT_EQ(answer.rcode, 3);
    EXPECT_TRUE(answer.srv.empty());
    EXPECT_EQ(answer.negative_ttl, 10u);
}

TEST(DnsMessage, RefusesPointerLoopsAndBadLengths) {
    // A question name that points at itself, then one that points forward.
    Message self;
    self.header(0, 0).pointer(question_offset).u16(33).u16(1);
    DnsAnswer answer;
    EXPECT_NE(parse_dns_answer(self.bytes, answer), "");
    Message forward;
    forward.header(0, 0).pointer(question_offset + 2).labels("x").u16(33).u16(1);
    EXPECT_NE(parse_dns_answer(forward.bytes, answer), "");
    // Two names pointing at each other.
    Message pair;
    pair.header(0, 1).labels("a", false).pointer(question_offset + 4).u16(1).u16(1);
    pair.pointer(question_offset).record(1, 1, 4).u32(0);
    pair.bytes[question_offset + 2] = 0xc0;  // "a" now ends in a pointer to the answer...
    pair.bytes[question_offset + 3] = uint8_t(question_offset + 8);
    EXPECT_NE(parse_dns_answer(pair.bytes, answer), "");
    // An A record of 5 bytes.
    Message a;
    a.header(0, 1).labels("web.test").u16(1).u16(1);
    a.pointer(question_offset).record(1, 1, 5).u32(0).u8(0);
    EXPECT_EQ(parse_dns_answer(a.bytes, answer), "an A record is not 4 bytes long");
    // An SRV whose target runs past its rdata.
    Message srv;
    srv.header(0, 1).labels("_x._tcp.test").u16(33).u16(1);
    srv.pointer(question_offset).record(33, 1, 8).u16(0).u16(0).u16(1).labels("web.test");
    EXPECT_EQ(parse_dns_answer(srv.bytes, answer), "an SRV record is malformed");
}

TEST(DnsMessage, SkipsTargetsThatAreNotHostNames) {
    Message m;
    m.header(0, 2).labels("_x._tcp.test").u16(33).u16(1);
    m.pointer(question_offset).record(33, 5, 6 + 10).u16(1).u16(1).u16(80);
    m.u8(3).u8('a').u8('.').u8('b').labels("test");  // a label "a.b"
    m.pointer(question_offset).record(33, 5, 6 + 1).u16(1).u16(1).u16(80).u8(0);  // "."
    DnsAnswer answer;
    ASSERT_EQ(parse_dns_answer(m.bytes, answer), "");
    EXPECT_EQ(answer.unusable_targets, 1u);
    ASSERT_EQ(answer.srv.size(), 1u);
    EXPECT_EQ(answer.srv[0].target, ".");
}

} // namespace
} // namespace sluice::ctrl
