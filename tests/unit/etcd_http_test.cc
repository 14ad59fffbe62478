// The etcd client's pieces that need no server: HTTP/1.1 responses read in
// any split (the same result however the bytes arrive), refusals and limits;
// base64 as Go writes it; prefix range ends; endpoints and settings.
#include "ctrl/etcd_client.h"
#include "ctrl/etcd_http.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace sluice::ctrl {
namespace {

struct Read {
    bool ok = false;
    bool complete = false;
    int status = 0;
    std::string body, error;
};

// Feeds `bytes` in pieces of `step` (0: whole), then the end of input when
// `close` is set.
Read read_response(const std::string &bytes, size_t step = 0, bool close = false,
                   HttpClientLimits limits = {}) {
    HttpResponseReader reader(limits);
    Read read;
    read.ok = true;
    for (size_t at = 0; at < bytes.size() && read.ok;) {
        const size_t n = step == 0 ? bytes.size() : std::min(step, bytes.size() - at);
        read.ok = reader.take(std::string_view(bytes).substr(at, n));
        at += n;
    }
    if (close && read.ok) {
        reader.take_end_of_input();
        read.ok = !reader.failed();
    }
    read.complete = reader.complete();
    read.status = reader.status();
    read.body = reader.body();
    read.error = reader.error();
    return read;
}

TEST(EtcdHttp, RequestIsWrittenWhole) {
    std::string out;
    append_http_post(out, "127.0.0.1:2379", "/v3/kv/range", {{"Authorization", "abc.1"}},
                     R"({"key":"YQ=="})");
    EXPECT_EQ(out,
              "POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n"
              "Content-Type: application/json\r\nContent-Length: 14\r\n"
              "Authorization: abc.1\r\n\r\n{\"key\":\"YQ==\"}");
}

TEST(EtcdHttp, SizedChunkedAndCloseDelimitedBodiesInEverySplit) {
    const std::string sized =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
        "{\"a\": \"b\"}\n";
    const std::string chunked =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5;ext=1\r\n{\"a\":\r\n6\r\n \"b\"}\n\r\n0\r\nGrpc-Trailer: x\r\n\r\n";
    const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n" + sized;
    for (size_t step = 0; step <= 7; ++step) {
        for (const std::string *bytes : {&sized, &chunked, &interim}) {
            const Read read = read_response(*bytes, step);
            ASSERT_TRUE(read.ok) << step << ": " << read.error;
            EXPECT_TRUE(read.complete) << step;
            EXPECT_EQ(read.status, 200);
            EXPECT_EQ(read.body, "{\"a\": \"b\"}\n") << step;
        }
        const Read closed = read_response("HTTP/1.1 200 OK\r\n\r\nuntil the end", step, true);
        ASSERT_TRUE(closed.ok) << closed.error;
        EXPECT_TRUE(closed.complete);
        EXPECT_EQ(closed.body, "until the end");
    }
}

TEST(EtcdHttp, KeepAliveAndTheNextResponse) {
    HttpResponseReader reader;
    ASSERT_TRUE(reader.take("HTTP/1.1 204 No Content\r\n\r\n"
                            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"));
    EXPECT_TRUE(reader.complete());
    EXPECT_TRUE(reader.keep_alive());
    EXPECT_EQ(reader.status(), 204);
    reader.next();
    EXPECT_TRUE(reader.complete());
    EXPECT_EQ(reader.status(), 200);
    EXPECT_EQ(reader.body(), "ok");
    EXPECT_FALSE(reader.keep_alive());
    EXPECT_EQ(*reader.header("connection"), "close");
}

TEST(EtcdHttp, StreamIsDrainedAsItComes) {
    HttpResponseReader reader;
    ASSERT_TRUE(
        reader.take("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab\ncd\r\n"));
    EXPECT_TRUE(reader.head_done());
    EXPECT_FALSE(reader.complete());
    EXPECT_EQ(reader.body(), "ab\ncd");
    reader.body().erase(0, 3);
    ASSERT_TRUE(reader.take("2\r\ne\n\r\n"));
    EXPECT_EQ(reader.body(), "cde\n");
}

TEST(EtcdHttp, RefusalsTheSameInEverySplit) {
    const std::pair<std::string, const char *> cases[] = {
        {"HTTP/2 200 OK\r\n\r\n", "status line"},
        {"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "bare CR or LF"},
        {"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", "header line"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
         "both Content-Length and Transfer-Encoding"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting"},
        {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "transfer coding"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk-size"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab", "not followed by CRLF"},
        {"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"},
    };
    for (const auto &[bytes, error] : cases)
        for (size_t step : {size_t(0), size_t(1), size_t(3)}) {
            const Read read = read_response(bytes, step);
            EXPECT_FALSE(read.ok) << bytes;
            EXPECT_NE(read.error.find(error), std::string::npos) << bytes << " -> " << read.error;
        }
}

TEST(EtcdHttp, LimitsBoundWhatIsHeld) {
    const HttpClientLimits limits{64, 10};
    Read read = read_response("HTTP/1.1 200 OK\r\nX: " + std::string(100, 'a'), 7, false, limits);
    EXPECT_NE(read.error.find("head longer than 64"), std::string::npos) << read.error;
    read = read_response("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 0, false, limits);
    EXPECT_NE(read.error.find("more than 10 bytes"), std::string::npos) << read.error;
    read = read_response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n", 0, false,
        limits);
    EXPECT_NE(read.error.find("more than 10 bytes"), std::string::npos) << read.error;
    read = read_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
                             std::string(2000, '0'),
                         100);
    EXPECT_NE(read.error.find("chunk-size line longer"), std::string::npos) << read.error;
    read = read_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", 0, true);
    EXPECT_NE(read.error.find("closed within the response's body"), std::string::npos);
}

// The fuzz target's promise on its seeds: every response read and every
// refusal made the same whole, byte by byte and in pieces of 7.
TEST(EtcdHttp, FuzzSeedsReadTheSameInEverySplit) {
    const auto outcome = [](const std::string &bytes, size_t step) {
        HttpResponseReader reader({256, 512});
        std::vector<std::string> seen;
        const auto collect = [&] {
            while (reader.complete()) {
                seen.push_back(std::to_string(reader.status()) + " " + reader.body());
                reader.next();
            }
        };
        for (size_t at = 0; at < bytes.size() && !reader.failed(); at += step) {
            reader.take(std::string_view(bytes).substr(at, step));
            collect();
        }
        reader.take_end_of_input();
        collect();
        seen.push_back("error: " + reader.error());
        return seen;
    };
    const std::filesystem::path corpus =
        std::filesystem::path(SLUICE_SOURCE_DIR) / "tests/fuzz/corpus/etcd_http";
    size_t seeds = 0, refused = 0;
    for (const auto &entry : std::filesystem::directory_iterator(corpus)) {
        std::ifstream file(entry.path(), std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(file)),
                                std::istreambuf_iterator<char>());
        const std::vector<std::string> whole = outcome(bytes, bytes.size() + 1);
        EXPECT_EQ(outcome(bytes, 1), whole) << entry.path();
        EXPECT_EQ(outcome(bytes, 7), whole) << entry.path();
        ++seeds;
        refused += whole.back() != "error: ";
    }
    EXPECT_GE(seeds, 6u);
    EXPECT_GE(refused, 2u);  // bare-lf, both-framings
}

TEST(EtcdHttp, Base64AsGoWritesIt) {
    const std::pair<const char *, const char *> cases[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"/sluice/", "L3NsdWljZS8="}};
    for (const auto &[plain, encoded] : cases) {
        EXPECT_EQ(base64_encode(plain), encoded);
        EXPECT_EQ(base64_decode(encoded), plain);
    }
    EXPECT_EQ(base64_decode(base64_encode(std::string("\0\xff\x80z", 4))),
              std::string("\0\xff\x80z", 4));
    for (const char *bad : {"Zg", "Zg=", "Z===", "Zh==", "Zm9v!A==", "Zg==Zg=="})
        EXPECT_FALSE(base64_decode(bad)) << bad;
}

TEST(EtcdHttp, PrefixRangeEnd) {
    EXPECT_EQ(prefix_range_end("/sluice/"), "/sluice0");
    EXPECT_EQ(prefix_range_end(std::string("a\xff", 2)), "b");
    EXPECT_EQ(prefix_range_end(std::string("\xff", 1)), std::string(1, '\0'));
}

TEST(EtcdHttp, EndpointsAndSettings) {
    const auto v4 = parse_etcd_endpoint("127.0.0.1:2379");
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->host, "127.0.0.1:2379");
    EXPECT_FALSE(v4->tls);
    const auto v6 = parse_etcd_endpoint("https://[2001:db8::1]:2379");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "[2001:db8::1]:2379");
    EXPECT_TRUE(v6->tls);
    for (const char *bad : {"etcd:2379", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536",
                            "2001:db8::1:2379", "[127.0.0.1]:2379", "0.0.0.0:2379",
                            "ftp://1.2.3.4:1"})
        EXPECT_FALSE(parse_etcd_endpoint(bad)) << bad;

    EtcdSettings settings;
    EXPECT_EQ(validate(settings), "");
    settings.endpoints = {"127.0.0.1:2379", "etcd-1:2379"};
    EXPECT_NE(validate(settings).find("endpoints[1]"), std::string::npos);
    settings = {};
    settings.prefix = "/sluice/";
    EXPECT_NE(validate(settings).find("prefix"), std::string::npos);
    settings = {};
    settings.username = "sluice";
    EXPECT_NE(validate(settings).find("password"), std::string::npos);
    settings = {};
    settings.tls_ca = "/etc/ssl/ca.pem";
    EXPECT_NE(validate(settings).find("https"), std::string::npos);
    settings.endpoints = {"https://127.0.0.1:2379"};
    settings.tls_cert = "/etc/ssl/cert.pem";
    EXPECT_NE(validate(settings).find("tls_key"), std::string::npos);
}

TEST(EtcdHttp, GatewayIntegersAndErrors) {
    const EtcdJson object = EtcdJson::parse(R"({"a": "42", "b": 7, "c": "x", "d": "-3"})");
    EXPECT_EQ(etcd_int(object, "a"), 42);
    EXPECT_EQ(etcd_int(object, "b"), 7);
    EXPECT_FALSE(etcd_int(object, "c"));
    EXPECT_EQ(etcd_int(object, "d"), -3);
    EXPECT_EQ(etcd_int(object, "absent"), 0);
    EXPECT_EQ(etcd_error_text(401, R"({"error":"etcdserver: invalid auth token","code":16})"),
              "etcdserver: invalid auth token");
    EXPECT_EQ(etcd_error_text(200,
                              R"({"error":{"grpc_code":14,"message":"etcdserver: no leader"}})"),
              "etcdserver: no leader");
    EXPECT_EQ(etcd_error_text(502, "<html>"), "HTTP 502");
}

} // namespace
} // namespace sluice::ctrl
