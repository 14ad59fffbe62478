// HTTP/1.1 messages without sockets: what the parser makes of valid requests,
// the status of every malformed one, the limits at their boundaries, the same
// outcome however the bytes are split, and answers written byte for byte.
// The server's own tests (http_server_test) send a few of these over loopback.
#include "ctrl/http_message.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace sluice::ctrl {
namespace {

using namespace std::string_literals;

// Everything a parse produced, in order.
struct Outcome {
    std::vector<HttpRequest> requests;
    std::vector<HttpFraming> framings;
    std::vector<size_t> heads_before_body;  // bytes of body buffered when each head ended
    int error_status = 0;  // 0 = no error
    std::string error_message;
    size_t unconsumed = 0;  // left waiting when the input ran out
    bool receiving = false;
};

// Feeds `input` in pieces of `piece` bytes (0 = all at once) as the server
// does: what is not consumed is kept and given again with the next piece.
Outcome feed(std::string_view input, size_t piece, const HttpLimits &limits = {}) {
    HttpRequestParser parser(limits);
    Outcome outcome;
    std::string held;
    size_t at = 0;
    do {
        const size_t take = piece ? std::min(piece, input.size() - at) : input.size();
        held.append(input.substr(at, take));
        at += take;
        while (true) {
            const HttpParseStep step = parser.parse(held);
            EXPECT_LE(step.consumed, held.size());
            held.erase(0, std::min(step.consumed, held.size()));
            if (step.event == HttpParseEvent::need_more)
                break;
            if (step.event == HttpParseEvent::error) {
                outcome.error_status = parser.error().status;
                outcome.error_message = parser.error().message;
                // Refused for good: nothing more is parsed.
                EXPECT_EQ(parser.parse(held).event, HttpParseEvent::error);
                EXPECT_FALSE(parser.receiving());
                return outcome;
            }
            if (step.event == HttpParseEvent::head) {
                EXPECT_TRUE(parser.receiving());
                continue;
            }
            outcome.requests.push_back(parser.request());
            outcome.framings.push_back(parser.framing());
        }
    } while (at < input.size());
    outcome.unconsumed = held.size();
    outcome.receiving = parser.receiving();
    return outcome;
}

// One line per request and the error, for comparisons that say what differs.
std::string describe(const Outcome &outcome) {
    std::string text;
    for (size_t i = 0; i < outcome.requests.size(); ++i) {
        const HttpRequest &request = outcome.requests[i];
        const HttpFraming &framing = outcome.framings[i];
        text += request.method + " " + request.target + " path=" + request.path + " query=" +
                request.query + " 1." + std::to_string(framing.minor_version) +
                (framing.keep_alive ? " keep-alive" : " close") +
                (framing.chunked ? " chunked" : " length=" + std::to_string(framing.content_length)) +
                (framing.expect_continue ? " expect-100" : "") + " headers=";
        for (const auto &[name, value] : request.headers)
            text += name + ":" + value + ";";
        text += " body=" + request.body + "\n";
    }
    if (outcome.error_status)
        text += "error " + std::to_string(outcome.error_status) + " " + outcome.error_message + "\n";
    else
        text += "unconsumed " + std::to_string(outcome.unconsumed) +
                (outcome.receiving ? " receiving\n" : "\n");
    return text;
}

// The outcome of `input` whole, after checking that every way of cutting it
// into equal pieces gives the same.
Outcome parse_whole_and_split(std::string_view input, const HttpLimits &limits = {}) {
    const Outcome whole = feed(input, 0, limits);
    const std::string expected = describe(whole);
    for (const size_t piece : {1, 2, 3, 5, 7, 64, 1000}) {
        if (piece >= input.size())
            break;
        EXPECT_EQ(describe(feed(input, piece, limits)), expected) << "in pieces of " << piece;
    }
    return whole;
}

std::string get(const std::string &target, const std::string &extra = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: sluice\r\n" + extra + "\r\n";
}

std::string post(const std::string &target, const std::string &body, const std::string &extra = "") {
    return "POST " + target + " HTTP/1.1\r\nHost: sluice\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

std::string chunked(const std::string &chunks_and_trailers) {
    return "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks_and_trailers;
}

// ---------------------------------------------------------------- requests

TEST(HttpRequestParser, SplitsTheTargetAndDecodesOnlyThePath) {
    const Outcome outcome = parse_whole_and_split(get("/api/v1/a%20b%2F?x=1&y=%20"));
    ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
    const HttpRequest &request = outcome.requests[0];
    EXPECT_EQ(request.method, "GET");
    EXPECT_EQ(request.target, "/api/v1/a%20b%2F?x=1&y=%20");
    EXPECT_EQ(request.path, "/api/v1/a b/");
    EXPECT_EQ(request.query, "x=1&y=%20");
    EXPECT_EQ(request.body, "");
    EXPECT_EQ(outcome.unconsumed, 0u);
    EXPECT_FALSE(outcome.receiving);
}

TEST(HttpRequestParser, AcceptsTheAbsoluteAndAsteriskForms) {
    struct Case {
        std::string target, path, query;
    };
    // RFC 9112 3.2.2 and 3.2.4.
    for (const Case &c : std::vector<Case>{{"http://sluice:8480/metrics?z", "/metrics", "z"},
                                           {"HTTPS://sluice", "/", ""},
                                           {"http://sluice?q", "/", "q"},
                                           {"/?", "/", ""}}) {
        SCOPED_TRACE(c.target);
        const Outcome outcome = feed(get(c.target), 0);
        ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
        EXPECT_EQ(outcome.requests[0].path, c.path);
        EXPECT_EQ(outcome.requests[0].query, c.query);
    }
    const Outcome star = feed("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    ASSERT_EQ(star.requests.size(), 1u) << describe(star);
    EXPECT_EQ(star.requests[0].path, "*");
    EXPECT_EQ(feed("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 0).error_status, 400);
}

TEST(HttpRequestParser, HeadersAreLowerCasedTrimmedAndFoundInAnyCase) {
    const Outcome outcome =
        parse_whole_and_split(get("/", "X-Thing:  a b \t\r\nX-Empty:\r\nx-thing: second\r\n"));
    ASSERT_EQ(outcome.requests.size(), 1u) << describe(outcome);
    const HttpRequest &request = outcome.requests[0];
    ASSERT_EQ(request.headers.size(), 4u);
    EXPECT_EQ(request.headers[0], (std::pair<std::string, std::string>{"host", "sluice"}));
    EXPECT_EQ(request.headers[1], (std::pair<std::string, std::string>{"x-thing", "a b"}));
    EXPECT_EQ(request.headers[2], (std::pair<std::string, std::string>{"x-empty", ""}));
    ASSERT_NE(request.header("X-THING"), nullptr);
    EXPECT_EQ(*request.header("X-THING"), "a b");  // the first of two
    EXPECT_EQ(request.header("X-Missing"), nullptr);
}

TEST(HttpRequestParser, ASizedBodyIsTakenByItsLengthWhateverItHolds) {
    const std::string body = "{\"weight\": 3}\r\n\r\nGET / HTTP/1.1\r\n";
    const Outcome outcome = parse_whole_and_split(post("/s", body) + get("/next"));
    ASSERT_EQ(outcome.requests.size(), 2u) << describe(outcome);
    EXPECT_EQ(outcome.requests[0].body, body);
    EXPECT_EQ(outcome.framings[0].content_length, body.size());
    EXPECT_EQ(outcome.requests[1].path, "/next");
    // Repeated identical lengths are one length (RFC 9110 8.6).
    const Outcome twice = feed(post("/s", "abc", "Content-Length: 3\r\n"), 0);
    ASSERT_EQ(twice.requests.size(), 1u) << describe(twice);
    EXPECT_EQ(twice.requests[0].body, "abc");
}

TEST(HttpRequestParser, ChunkedBodiesAreDecodedAndTrailersDropped) {
    const Outcome outcome = parse_whole_and_split(
        chunked("5\r\nhello\r\n6;name=value\r\n world\r\nA \t; x\r\n0123456789\r\n"
                "0\r\nX-Checksum: 1\r\nX-Other:\r\n\r\n") +
        get("/next"));
    ASSERT_EQ(outcome.requests.size(), 2u) << describe(outcome);
    EXPECT_EQ(outcome.requests[0].body, "hello world0123456789");
    EXPECT_TRUE(outcome.framings[0].chunked);
    EXPECT_EQ(outcome.requests[0].header("x-checksum"), nullptr);
    EXPECT_EQ(outcome.requests[1].path, "/next");
    EXPECT_EQ(outcome.unconsumed, 0u);
}

TEST(HttpRequestParser, FramingFollowsTheVersionAndConnectionOptions) {
    struct Case {
        const char *description;
        std::string raw;
        int minor_version;
        bool keep_alive;
    };
    const std::vector<Case> cases = {
        {"1.1 keeps alive", get("/"), 1, true},
        {"1.1 asked to close", get("/", "Connection: close\r\n"), 1, false},
        {"close among options", get("/", "Connection: keep-alive, Close\r\n"), 1, false},
        {"1.0 closes", "GET / HTTP/1.0\r\n\r\n", 0, false},
        {"1.0 asked to keep alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, true},
        // Connection: close wins over keep-alive whatever their order.
        {"1.0 close then keep-alive",
         "GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n", 0, false},
        {"1.0 keep-alive then close",
         "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", 0, false},
        // RFC 9110 6.2: a later minor version is answered as 1.1.
        {"HTTP/1.7", "GET / HTTP/1.7\r\nHost: x\r\n\r\n", 1, true},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.description);
        const Outcome outcome = feed(c.raw, 0);
        ASSERT_EQ(outcome.framings.size(), 1u) << describe(outcome);
        EXPECT_EQ(outcome.framings[0].minor_version, c.minor_version);
        EXPECT_EQ(outcome.framings[0].keep_alive, c.keep_alive);
    }
}

TEST(HttpRequestParser, ExpectContinueIsReportedAfterTheHead) {
    struct Case {
        std::string head;
        bool continue_expected;
    };
    const std::vector<Case> cases = {
        {"PUT /s HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", true},
        {"PUT /s HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n", true},
        // No body, nothing to wait for.
        {"PUT /s HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", false},
        // RFC 9110 10.1.1: an HTTP/1.0 client's expectation is ignored.
        {"PUT /s HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", false},
        {"PUT /s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n", false},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.head);
        HttpRequestParser parser;
        const HttpParseStep step = parser.parse(c.head);
        ASSERT_EQ(step.event, HttpParseEvent::head);
        EXPECT_EQ(step.consumed, c.head.size());
        EXPECT_EQ(parser.continue_expected(), c.continue_expected);
    }
}

TEST(HttpRequestParser, BlankLinesBetweenRequestsAreSkippedAndStartNothing) {
    // RFC 9112 2.2. Blank lines alone are not a request begun: an idle
    // connection holding only them is closed without a 408.
    HttpRequestParser parser;
    HttpParseStep step = parser.parse("\r\n\r\n\r");
    EXPECT_EQ(step.event, HttpParseEvent::need_more);
    EXPECT_EQ(step.consumed, 4u);
    EXPECT_FALSE(parser.receiving());
    step = parser.parse("\r\nG");
    EXPECT_EQ(step.event, HttpParseEvent::need_more);
    EXPECT_EQ(step.consumed, 2u);
    EXPECT_TRUE(parser.receiving());

    const Outcome outcome = parse_whole_and_split("\r\n\r\n" + get("/a") + "\r\n" + get("/b") + "\r\n");
    ASSERT_EQ(outcome.requests.size(), 2u) << describe(outcome);
    EXPECT_EQ(outcome.unconsumed, 0u);
    EXPECT_FALSE(outcome.receiving);
}

TEST(HttpRequestParser, PipelinedRequestsComeOutInOrderAndWhatIsLeftWaits) {
    std::string burst;
    for (int i = 0; i < 6; ++i)
        burst += i % 3 == 0   ? get("/g?" + std::to_string(i))
                 : i % 3 == 1 ? post("/p", "body " + std::to_string(i))
                              : chunked("3\r\nabc\r\n0\r\n\r\n");
    const std::string partial = "POST /last HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
    const Outcome outcome = parse_whole_and_split(burst + partial);
    ASSERT_EQ(outcome.requests.size(), 6u) << describe(outcome);
    for (int i = 0; i < 6; ++i) {
        SCOPED_TRACE(i);
        const HttpRequest &request = outcome.requests[size_t(i)];
        if (i % 3 == 0)
            EXPECT_EQ(request.query, std::to_string(i));
        else
            EXPECT_EQ(request.body, i % 3 == 1 ? "body " + std::to_string(i) : "abc");
    }
    // The last head and its three body bytes were consumed; the rest is awaited.
    EXPECT_EQ(outcome.unconsumed, 0u);
    EXPECT_TRUE(outcome.receiving);
}

TEST(HttpRequestParser, AResetForgetsTheRequestAndTheError) {
    HttpRequestParser parser;
    ASSERT_EQ(parser.parse("BAD\r\n\r\n").event, HttpParseEvent::error);
    parser.reset();
    const std::string request = post("/p", "xy");
    ASSERT_EQ(parser.parse(request).event, HttpParseEvent::head);
    const HttpParseStep step = parser.parse(std::string_view(request).substr(request.size() - 2));
    ASSERT_EQ(step.event, HttpParseEvent::request);
    EXPECT_EQ(step.consumed, 2u);
    EXPECT_EQ(parser.request().body, "xy");
    parser.reset();
    EXPECT_EQ(parser.request().body, "");
    EXPECT_FALSE(parser.receiving());
}

// ---------------------------------------------------------------- refusals

struct BadRequest {
    const char *description;
    std::string raw;
    int status;
    const char *message;
};

// http_server_test's table, and more, at the parser: the status each
// violation is answered with and why. Limits as the server test sets them.
TEST(HttpRequestParser, MalformedRequestsGetTheirStatus) {
    HttpLimits limits;
    limits.max_header_bytes = 2048;
    const std::string big_chunk = "258\r\n" + std::string(600, 'y') + "\r\n";
    const std::vector<BadRequest> cases = {
        // The request line (RFC 9112 3).
        {"not HTTP", "HELLO\r\n\r\n", 400, "malformed request line"},
        {"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed request line"},
        {"no version", "GET /\r\nHost: x\r\n\r\n", 400, "malformed request line"},
        {"method not a token", "GE(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed request line"},
        {"control character in the target", "GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "malformed request line"},
        {"obs-text in the target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "malformed request line"},
        {"lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400, "malformed HTTP version"},
        {"version with a letter", "GET / HTTP/1.x\r\nHost: x\r\n\r\n", 400, "malformed HTTP version"},
        {"version with a hex digit", "GET / HTTP/A.1\r\nHost: x\r\n\r\n", 400, "malformed HTTP version"},
        {"version too long", "GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400, "malformed HTTP version"},
        {"HTTP/2", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1 are supported"},
        {"HTTP/0.9 spelled out", "GET / HTTP/0.9\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1 are supported"},
        {"target not a path", "GET api HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid request target"},
        {"bad percent-encoding", "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "invalid percent-encoding in the request path"},
        {"cut percent-encoding", "GET /a%2 HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "invalid percent-encoding in the request path"},
        {"percent at the end", "GET /a% HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "invalid percent-encoding in the request path"},
        {"encoded NUL", "GET /a%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "invalid percent-encoding in the request path"},
        {"bare LF", "GET / HTTP/1.1\nHost: x\r\n\r\n", 400, "malformed HTTP version"},
        // Header lines (RFC 9112 5).
        {"header without colon", "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400,
         "malformed header line"},
        {"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "malformed header line"},
        {"empty header name", "GET / HTTP/1.1\r\nHost: x\r\n: x\r\n\r\n", 400, "malformed header line"},
        {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", 400,
         "obsolete header line folding"},
        {"control character", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"s, 400,
         "invalid character in a header value"},
        {"DEL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n", 400,
         "invalid character in a header value"},
        {"bare CR in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400,
         "invalid character in a header value"},
        {"no Host on 1.1", "GET / HTTP/1.1\r\n\r\n", 400, "an HTTP/1.1 request needs exactly one Host header"},
        {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
         "an HTTP/1.1 request needs exactly one Host header"},
        // Framing (RFC 9112 6).
        {"bad Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12a\r\n\r\n", 400,
         "invalid Content-Length"},
        {"negative Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400,
         "invalid Content-Length"},
        {"empty Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400,
         "invalid Content-Length"},
        {"Content-Length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\n", 400,
         "invalid Content-Length"},
        {"19-digit Content-Length",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000000\r\n\r\n", 400,
         "invalid Content-Length"},
        {"conflicting lengths",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400,
         "conflicting Content-Length headers"},
        {"length and chunked",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
         "both Content-Length and Transfer-Encoding"},
        {"chunked on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
         "Transfer-Encoding in an HTTP/1.0 request"},
        {"no coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,\r\n\r\n", 400,
         "Transfer-Encoding without a coding"},
        {"unknown coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
         "only the chunked transfer coding is supported"},
        {"chunked not last", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
         501, "only the chunked transfer coding is supported"},
        {"chunked twice",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
         501, "only the chunked transfer coding is supported"},
        {"unknown expectation", "POST / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", 417,
         "only Expect: 100-continue is supported"},
        // Chunks (RFC 9112 7.1).
        {"bad chunk size", chunked("zz\r\n"), 400, "malformed chunk size"},
        {"chunk size with a sign", chunked("+5\r\n"), 400, "malformed chunk size"},
        {"chunk extension without ;", chunked("5 x\r\nhello\r\n"), 400, "malformed chunk size"},
        {"chunk extension with a control", chunked("5;a\x01\r\nhello\r\n"), 400, "malformed chunk size"},
        {"16 hex digits", chunked("0000000000000001\r\n"), 400, "malformed chunk size"},
        {"chunk-size line never ends", chunked("5;" + std::string(1100, 'e')), 400,
         "malformed chunk size"},
        {"chunk without CRLF", chunked("2\r\nabc\r\n"), 400, "a chunk is not followed by CRLF"},
        {"malformed trailer", chunked("0\r\nno colon\r\n\r\n"), 400, "malformed trailer line"},
        {"trailer name not a token", chunked("0\r\nX Y: 1\r\n\r\n"), 400, "malformed trailer line"},
        {"trailer section too large",
         chunked("0\r\nX-A: " + std::string(1100, 't') + "\r\nX-B: " + std::string(1100, 't') +
                 "\r\n\r\n"),
         431, "the request trailer section is too large"},
        // Limits.
        {"body too large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n", 413,
         "the request body is larger than 65536 bytes"},
        {"chunks too large", chunked(std::string(big_chunk) + "FFFF\r\n"), 413,
         "the request body is larger than 65536 bytes"},
        {"one chunk too large", chunked("10001\r\n"), 413, "the request body is larger than 65536 bytes"},
        {"headers too large", get("/", "X-Big: " + std::string(3000, 'h') + "\r\n"), 431,
         "the request header section is too large"},
        {"header section never ends", "GET / HTTP/1.1\r\nX-Big: " + std::string(3000, 'h'), 431,
         "the request header section is too large"},
        {"request line too long", "GET /" + std::string(3000, 'u'), 414, "the request line is too long"},
    };
    for (const BadRequest &bad : cases) {
        SCOPED_TRACE(bad.description);
        const Outcome outcome = parse_whole_and_split(bad.raw, limits);
        EXPECT_TRUE(outcome.requests.empty()) << describe(outcome);
        EXPECT_EQ(outcome.error_status, bad.status) << describe(outcome);
        EXPECT_EQ(outcome.error_message, bad.message);
    }
}

TEST(HttpRequestParser, LimitsHoldExactlyAtTheirBoundaries) {
    HttpLimits limits;
    limits.max_header_bytes = 100;
    limits.max_body_bytes = 10;
    const std::string start = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";  // 32 bytes
    const auto head_of = [&](size_t size) { return start + std::string(size - start.size() - 4, 'p') + "\r\n\r\n"; };
    ASSERT_EQ(head_of(100).size(), 100u);
    EXPECT_EQ(parse_whole_and_split(head_of(100), limits).requests.size(), 1u);
    EXPECT_EQ(parse_whole_and_split(head_of(101), limits).error_status, 431);
    // Incomplete: waits up to the limit, refuses past it.
    const std::string incomplete = head_of(101).substr(0, 100);
    EXPECT_EQ(describe(feed(incomplete, 0, limits)), "unconsumed 100 receiving\n");
    EXPECT_EQ(parse_whole_and_split(incomplete + "p", limits).error_status, 431);
    const std::string line = "GET /" + std::string(95, 'u');
    EXPECT_EQ(describe(feed(line, 0, limits)), "unconsumed 100 receiving\n");
    EXPECT_EQ(parse_whole_and_split(line + "u", limits).error_status, 414);
    // Whole or in pieces, a request line that does not fit with its CRLF is
    // a 414, and a head too large beside a line that fits a 431.
    const auto line_of = [](size_t size) { return "GET /" + std::string(size - 14, 'u') + " HTTP/1.1"; };
    EXPECT_EQ(parse_whole_and_split(line_of(98) + "\r\nHost: x\r\n\r\n", limits).error_status, 431);
    EXPECT_EQ(parse_whole_and_split(line_of(99) + "\r\nHost: x\r\n\r\n", limits).error_status, 414);
    EXPECT_EQ(parse_whole_and_split(line_of(300) + "\r\nHost: x\r\n\r\n", limits).error_status, 414);

    // A chunk-size line ends within 1 KiB, its CR included, whole or in pieces.
    const auto chunk_line_of = [](size_t size) {
        return chunked("5;" + std::string(size - 2, 'e') + "\r\nhello\r\n0\r\n\r\n");
    };
    EXPECT_EQ(parse_whole_and_split(chunk_line_of(1023)).requests.size(), 1u);
    EXPECT_EQ(parse_whole_and_split(chunk_line_of(1024)).error_status, 400);

    EXPECT_EQ(parse_whole_and_split(post("/", std::string(10, 'b')), limits).requests.size(), 1u);
    EXPECT_EQ(parse_whole_and_split(post("/", std::string(11, 'b')), limits).error_status, 413);
    EXPECT_EQ(parse_whole_and_split(chunked("5\r\n12345\r\n5\r\n12345\r\n0\r\n\r\n"), limits).requests.size(),
              1u);
    EXPECT_EQ(parse_whole_and_split(chunked("5\r\n12345\r\n6\r\n"), limits).error_status, 413);

    // The trailer section shares the header limit: 100 bytes with its blank line.
    const auto trailers_of = [&](size_t size) {
        return chunked("0\r\nX-T: " + std::string(size - 9, 't') + "\r\n\r\n");
    };
    EXPECT_EQ(parse_whole_and_split(trailers_of(100), limits).requests.size(), 1u);
    EXPECT_EQ(parse_whole_and_split(trailers_of(101), limits).error_status, 431);
}

// ---------------------------------------------------------------- answers

TEST(HttpAnswer, IsWrittenWithItsLengthTypeAndHeaders) {
    std::string out = "before|";
    append_http_response(out, {201, "text/plain", "made", {{"Location", "/a/1"}}}, {true, 1, false},
                         "Sun, 06 Nov 1994 08:49:37 GMT");
    EXPECT_EQ(out, "before|HTTP/1.1 201 Created\r\n"
                   "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                   "Content-Type: text/plain\r\n"
                   "Content-Length: 4\r\n"
                   "Location: /a/1\r\n"
                   "\r\n"
                   "made");
}

TEST(HttpAnswer, TheServerAloneFramesTheMessage) {
    const char *date = "D";
    struct Case {
        const char *description;
        HttpResponse response;
        HttpAnswerFraming framing;
        std::string expected;
    };
    const std::vector<Case> cases = {
        // RFC 9110 6.4.1 and 8.6: 204 has no length, 304 no content.
        {"204", {204, "application/json", "ignored", {{"Content-Length", "99"}}}, {true, 1, false},
         "HTTP/1.1 204 No Content\r\nDate: D\r\n\r\n"},
        {"304", {304, "application/json", "ignored", {}}, {true, 1, false},
         "HTTP/1.1 304 Not Modified\r\nDate: D\r\nContent-Length: 0\r\n\r\n"},
        {"HEAD", {200, "text/plain", "12345", {}}, {true, 1, true},
         "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"},
        {"handler's framing headers dropped",
         {405, "", "no", {{"Allow", "GET"}, {"Connection", "close"}, {"transfer-encoding", "chunked"}}},
         {true, 1, false},
         "HTTP/1.1 405 Method Not Allowed\r\nDate: D\r\nContent-Length: 2\r\nAllow: GET\r\n\r\nno"},
        {"close", {200, "", "", {}}, {false, 1, false},
         "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
        {"1.0 kept alive", {200, "", "", {}}, {true, 0, false},
         "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"},
        {"unknown status", {299, "", "", {}}, {true, 1, false},
         "HTTP/1.1 299 \r\nDate: D\r\nContent-Length: 0\r\n\r\n"},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.description);
        std::string out;
        append_http_response(out, c.response, c.framing, date);
        EXPECT_EQ(out, c.expected);
    }
}

TEST(HttpAnswer, WhatCouldSplitTheStreamBecomesA500) {
    const std::string error_body =
        "{\"error\": \"the handler returned an invalid response\", \"field\": null}";
    const std::vector<HttpResponse> invalid = {
        {200, "text/plain", "x", {{"X-A", "1\r\nSet-Cookie: evil"}}},
        {200, "text/plain", "x", {{"X-A", "a\0b"s}}},
        {200, "text/plain", "x", {{"Bad Name", "1"}}},
        {200, "text/plain", "x", {{"", "1"}}},
        {200, "text/plain\r\nX: y", "x", {}},
        {100, "", "", {}},
        {600, "", "", {}},
    };
    for (size_t i = 0; i < invalid.size(); ++i) {
        SCOPED_TRACE(i);
        std::string out;
        append_http_response(out, invalid[i], {true, 0, false}, "D");
        EXPECT_EQ(out, "HTTP/1.1 500 Internal Server Error\r\nDate: D\r\n"
                       "Content-Type: application/json\r\nContent-Length: " +
                           std::to_string(error_body.size()) +
                           "\r\nConnection: keep-alive\r\n\r\n" + error_body);
    }
}

TEST(HttpAnswer, ErrorBodiesAreJsonWhateverTheMessage) {
    const HttpResponse response = http_error_response(400, "bad \"x\"\\\n\x01 é");
    EXPECT_EQ(response.status, 400);
    EXPECT_EQ(response.content_type, "application/json");
    EXPECT_EQ(response.body, "{\"error\": \"bad \\\"x\\\"\\\\\\u000a\\u0001 é\", \"field\": null}");
}

TEST(HttpAnswer, DatesAreImfFixdateInEnglish) {
    EXPECT_EQ(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110's example
    EXPECT_EQ(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    EXPECT_EQ(http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
}

} // namespace
} // namespace sluice::ctrl
