// The file feed's promises: the file's endpoints are the feed's view from
// the start; a change is seen within 200 ms, whether written in place,
// renamed over the file (as editors and tools do) or swapped in behind a
// symlink (as Kubernetes' ConfigMap volumes do); a bad file is refused whole,
// with its position, and the last good view stays, stale, until a good file
// comes; a deleted file leaves the view in place until it returns. The feed
// is driven as sluiced's loop drives it: poll(fd, timeout_ms) then service().
#include "ctrl/file_feed.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

namespace sluice::ctrl {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

IpAddress ip(const char *text) { return *parse_ip_address(text); }

const char *const web_json = R"({"services": {
  "web": [
    {"id": "be1", "address": "198.18.1.11", "port": 8080, "weight": 2, "zone": "a",
     "labels": {"version": "v2"}},
    {"id": "be2", "address": "198.18.1.12", "terminating": true}
  ],
  "dns": [{"id": "ns1", "address": "2001:db8:0:2::53", "port": 53, "ready": false}]
}}
)";

// The same endpoints as YAML.
const char *const web_yaml = R"(# endpoints of the lab's services
services:
  web:
    - id: be1
      address: 198.18.1.11
      port: 8080
      weight: 2
      zone: a
      labels: {version: v2}
    - {id: be2, address: 198.18.1.12, terminating: true}
  dns:
    - id: ns1
      address: "2001:db8:0:2::53"
      port: 53
      ready: false
)";

const char *const other_json =
    R"({"services": {"web": [{"id": "be3", "address": "198.18.1.13", "port": 8080}]}})";

// A directory of its own under /tmp, removed with what is in it.
class TempDirectory {
public:
    TempDirectory() {
        char name[] = "/tmp/sluice-feed-XXXXXX";
        if (!::mkdtemp(name))
            std::abort();
        path_ = name;
    }
    ~TempDirectory() { std::filesystem::remove_all(path_); }
    const std::string &path() const { return path_; }

private:
    std::string path_;
};

// Written in place: truncated, written, closed (IN_CLOSE_WRITE).
void write_in_place(const std::string &path, const std::string &text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

// Written beside, then renamed over the file, as editors and tools do.
void write_and_rename(const std::string &path, const std::string &text) {
    write_in_place(path + ".tmp", text);
    ASSERT_EQ(std::rename((path + ".tmp").c_str(), path.c_str()), 0);
}

// Runs the feed as sluiced's loop does until `done` or `limit` passes;
// returns whether `done` came true.
bool pump(FileFeed &feed, const std::function<bool()> &done, milliseconds limit) {
    const auto end = Clock::now() + limit;
    while (!done()) {
        const auto left = std::chrono::duration_cast<milliseconds>(end - Clock::now()).count();
        if (left <= 0)
            return false;
        pollfd p{feed.fd(), POLLIN, 0};
        const int timeout = feed.timeout_ms();
        ::poll(&p, 1, timeout < 0 ? int(left) : std::min(timeout, int(left)));
        feed.service();
    }
    return true;
}

// Takes the feed's new view, if it has one within `limit`.
bool next_view(FileFeed &feed, EndpointSet &view, milliseconds limit = milliseconds(1000)) {
    return pump(feed, [&] { return feed.take_endpoints(view); }, limit);
}

// Pumps for a while, for tests that expect nothing to happen.
void idle(FileFeed &feed, milliseconds time) {
    pump(feed, [] { return false; }, time);
}

TEST(FileFeed, ReadsTheFileAtOnce) {
    const TempDirectory dir;
    const std::string path = dir.path() + "/endpoints.json";
    write_in_place(path, web_json);
    FileFeed feed({"lab-file", path});

    EndpointSet view;
    ASSERT_TRUE(feed.take_endpoints(view));
    ASSERT_EQ(view.size(), 2u);
    const std::vector<Endpoint> &web = view.at("web");
    ASSERT_EQ(web.size(), 2u);
    EXPECT_EQ(web[0].id, "be1");
    EXPECT_EQ(web[0].address, ip("198.18.1.11"));
    EXPECT_EQ(web[0].port, 8080);
    EXPECT_EQ(web[0].weight, 2u);
    EXPECT_EQ(web[0].zone, "a");
    EXPECT_EQ(web[0].labels.at("version"), "v2");
    EXPECT_TRUE(web[0].ready && web[0].serving && !web[0].terminating);
    EXPECT_EQ(web[1].id, "be2");
    EXPECT_TRUE(!web[1].ready && web[1].serving && web[1].terminating);
    EXPECT_EQ(view.at("dns")[0].address, ip("2001:db8:0:2::53"));
    EXPECT_FALSE(view.at("dns")[0].ready);

    const FeedStatus status = feed.status();
    EXPECT_EQ(status.name, "lab-file");
    EXPECT_EQ(status.kind, "file");
    EXPECT_EQ(status.health, FeedHealth::current);
    EXPECT_EQ(status.detail, "");
    EXPECT_EQ(status.updates, 1u);
    EXPECT_EQ(status.revision.size(), 16u);
    // Told once.
    EXPECT_FALSE(feed.take_endpoints(view));
    EXPECT_EQ(feed.timeout_ms(), -1);
}

TEST(FileFeed, YamlAndJsonOfTheSameEndpointsAreTheSameView) {
    const TempDirectory dir;
    write_in_place(dir.path() + "/a.json", web_json);
    write_in_place(dir.path() + "/a.yaml", web_yaml);
    FileFeed json({"json", dir.path() + "/a.json"}), yaml({"yaml", dir.path() + "/a.yaml"});
    EndpointSet from_json, from_yaml;
    ASSERT_TRUE(json.take_endpoints(from_json));
    ASSERT_TRUE(yaml.take_endpoints(from_yaml)) << yaml.status().detail;
    EXPECT_EQ(from_json, from_yaml);
}

TEST(FileFeed, SeesAChangeWrittenInPlaceWithin200Ms) {
    const TempDirectory dir;
    const std::string path = dir.path() + "/endpoints.json";
    write_in_place(path, web_json);
    FileFeed feed({"f", path});
    EndpointSet view;
    ASSERT_TRUE(feed.take_endpoints(view));
    const std::string first_revision = feed.status().revision;

    const auto written = Clock::now();
    write_in_place(path, other_json);
    ASSERT_TRUE(next_view(feed, view, milliseconds(200)));
    EXPECT_LT(Clock::now() - written, milliseconds(200));
    ASSERT_EQ(view.size(), 1u);
    EXPECT_EQ(view.at("web").at(0).id, "be3");
    EXPECT_EQ(feed.status().updates, 2u);
    EXPECT_NE(feed.status().revision, first_revision);
}

TEST(FileFeed, SeesAFileRenamedOverIt) {
    const TempDirectory dir;
    const std::string path = dir.path() + "/endpoints.yaml";
    write_in_place(path, web_yaml);
    FileFeed feed({"f", path});
    EndpointSet view;
    ASSERT_TRUE(feed.take_endpoints(view));

    write_and_rename(path, other_json);
    ASSERT_TRUE(next_view(feed, view, milliseconds(200)));
    EXPECT_EQ(view.at("web").at(0).id, "be3");
    EXPECT_EQ(feed.status().health, FeedHealth::current);

    // `mv new endpoints.yaml` from elsewhere in the directory, too.
    write_in_place(dir.path() + "/new", web_yaml);
    ASSERT_EQ(std::rename((dir.path() + "/new").c_str(), path.c_str()), 0);
    ASSERT_TRUE(next_view(feed, view, milliseconds(200)));
    EXPECT_EQ(view.at("web").size(), 2u);
}

// Kubernetes' ConfigMap volumes: the file is a symlink through "..data",
// and an update swaps "..data" to a new directory; the file's own name
// sees no event at all.
TEST(FileFeed, SeesASymlinkSwapBesideTheFile) {
    const TempDirectory dir;
    const std::filesystem::path root = dir.path();
    std::filesystem::create_directory(root / "v1");
    std::filesystem::create_directory(root / "v2");
    write_in_place(root / "v1" / "endpoints.json", web_json);
    write_in_place(root / "v2" / "endpoints.json", other_json);
    std::filesystem::create_directory_symlink("v1", root / "..data");
    std::filesystem::create_symlink("..data/endpoints.json", root / "endpoints.json");
    FileFeed feed({"f", root / "endpoints.json"});
    EndpointSet view;
    ASSERT_TRUE(feed.take_endpoints(view));
    EXPECT_EQ(view.at("web").size(), 2u);

    std::filesystem::create_directory_symlink("v2", root / "..data_tmp");
    std::filesystem::rename(root / "..data_tmp", root / "..data");
    ASSERT_TRUE(next_view(feed, view, milliseconds(200)));
    EXPECT_EQ(view.at("web").at(0).id, "be3");
}

TEST(FileFeed, ABadFileIsRefusedWithItsPositionAndTheLastGoodViewStays) {
    struct Case {
        const char *what, *text, *error;  // error after "PATH:"
    };
    const Case cases[] = {
        {"syntax",
         "{\"services\": {\"web\": [\n  {\"id\": \"be1\", \"address\": \"198.18.1.11\"\n]}}",
         ":3:1: (yaml): illegal flow end"},
        {"unknown key",
         "{\"services\": {\"web\": [\n  {\"id\": \"be1\", \"address\": \"198.18.1.11\", "
         "\"colour\": \"blue\"}\n]}}",
         ":2:43: services.web[0].colour: unknown key (expected address, port, weight, zone, "
         "labels, ready, serving, terminating)"},
        {"bad address", "services:\n  web:\n    - id: be1\n      address: 198.18.1.300\n",
         ":4:16: services.web[0].address: expected a unicast IPv4 or IPv6 address, got "
         "\"198.18.1.300\""},
        {"duplicate id",
         "services:\n  web:\n    - {id: be1, address: 198.18.1.11}\n"
         "    - {id: be1, address: 198.18.1.12}\n",
         ":4:12: services.web[1].id: duplicate id 'be1', first defined at line 3"},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.what);
        const TempDirectory dir;
        const std::string path = dir.path() + "/endpoints";
        write_in_place(path, web_json);
        FileFeed feed({"f", path});
        EndpointSet good, view;
        ASSERT_TRUE(feed.take_endpoints(good));
        const std::string revision = feed.status().revision;

        write_in_place(path, c.text);
        ASSERT_TRUE(pump(feed, [&] { return feed.status().health == FeedHealth::stale; },
                         milliseconds(1000)));
        const FeedStatus status = feed.status();
        EXPECT_EQ(status.detail, path + c.error) << status.detail;
        EXPECT_EQ(status.revision, revision);
        EXPECT_EQ(status.updates, 1u);
        EXPECT_FALSE(feed.take_endpoints(view));

        // A good file ends it; the same good file as before is no new view.
        write_and_rename(path, web_json);
        ASSERT_TRUE(pump(feed, [&] { return feed.status().health == FeedHealth::current; },
                         milliseconds(1000)));
        EXPECT_EQ(feed.status().detail, "");
        EXPECT_FALSE(feed.take_endpoints(view));
        write_in_place(path, other_json);
        ASSERT_TRUE(next_view(feed, view));
        EXPECT_EQ(view.at("web").at(0).id, "be3");
    }
}

TEST(FileFeed, ADeletedFileLeavesTheViewUntilItReturns) {
    const TempDirectory dir;
    const std::string path = dir.path() + "/endpoints.json";
    write_in_place(path, web_json);
    FileFeed feed({"f", path});
    EndpointSet view;
    ASSERT_TRUE(feed.take_endpoints(view));

    ASSERT_EQ(std::remove(path.c_str()), 0);
    ASSERT_TRUE(pump(feed, [&] { return feed.status().health == FeedHealth::stale; },
                     milliseconds(1000)));
    EXPECT_EQ(feed.status().detail, path + ": cannot open: No such file or directory");
    EXPECT_FALSE(feed.take_endpoints(view));
    EXPECT_EQ(view.at("web").size(), 2u);

    write_in_place(path, other_json);
    ASSERT_TRUE(next_view(feed, view));
    EXPECT_EQ(view.at("web").at(0).id, "be3");
    EXPECT_EQ(feed.status().health, FeedHealth::current);
    EXPECT_EQ(feed.status().detail, "");
}

TEST(FileFeed, StartsWithoutAFileAndTakesItWhenItComes) {
    const TempDirectory dir;
    const std::string path = dir.path() + "/endpoints.json";
    FileFeed feed({"f", path});
    EndpointSet view;
    EXPECT_FALSE(feed.take_endpoints(view));
    EXPECT_EQ(feed.status().health, FeedHealth::starting);
    EXPECT_NE(feed.status().detail.find("cannot open"), std::string::npos);

    // A bad first file: still starting, with the reason.
    write_in_place(path, "{\"services\": 1}");
    ASSERT_TRUE(pump(feed, [&] { return feed.status().detail.find(":1:") != std::string::npos; },
                     milliseconds(1000)));
    EXPECT_EQ(feed.status().health, FeedHealth::starting);
    EXPECT_EQ(feed.status().detail,
              path + ":1:14: services: expected a map of service names to endpoint sequences, "
                     "got \"1\"");

    write_in_place(path, web_json);
    ASSERT_TRUE(next_view(feed, view));
    EXPECT_EQ(feed.status().health, FeedHealth::current);
    EXPECT_EQ(feed.status().updates, 1u);
}

TEST(FileFeed, ATouchOrAnUnchangedViewIsNoUpdate) {
    const TempDirectory dir;
    const std::string path = dir.path() + "/endpoints.json";
    write_in_place(path, web_json);
    FileFeed feed({"f", path});
    EndpointSet view;
    ASSERT_TRUE(feed.take_endpoints(view));
    const FeedStatus before = feed.status();

    write_in_place(path, web_json);
    idle(feed, milliseconds(150));
    EXPECT_FALSE(feed.take_endpoints(view));
    EXPECT_EQ(feed.status().revision, before.revision);

    // Other bytes, the same endpoints: a new revision, no new view.
    write_in_place(path, std::string(web_json) + "\n\n");
    idle(feed, milliseconds(150));
    EXPECT_FALSE(feed.take_endpoints(view));
    EXPECT_EQ(feed.status().updates, 1u);
    EXPECT_NE(feed.status().revision, before.revision);
}

TEST(FileFeed, ABurstOfWritesIsReadOnce) {
    const TempDirectory dir;
    const std::string path = dir.path() + "/endpoints.json";
    write_in_place(path, web_json);
    // A long debounce, so that a slow machine still writes the burst within it.
    FileFeed feed({"f", path, 300});
    EndpointSet view;
    ASSERT_TRUE(feed.take_endpoints(view));

    for (int i = 0; i < 5; ++i) {
        write_in_place(path, i % 2 ? web_json : other_json);
        feed.service();
        EXPECT_GT(feed.timeout_ms(), 0);
    }
    ASSERT_TRUE(next_view(feed, view, milliseconds(3000)));
    EXPECT_EQ(view.at("web").at(0).id, "be3");
    EXPECT_EQ(feed.status().updates, 2u);
    EXPECT_EQ(feed.timeout_ms(), -1);
}

TEST(FileFeed, WatchesADirectoryAgainWhenItReturns) {
    const TempDirectory dir;
    const std::string sub = dir.path() + "/feed", path = sub + "/endpoints.json";
    ::mkdir(sub.c_str(), 0700);
    write_in_place(path, web_json);
    FileFeed feed({"f", path});
    EndpointSet view;
    ASSERT_TRUE(feed.take_endpoints(view));

    std::filesystem::remove_all(sub);
    ASSERT_TRUE(pump(feed, [&] { return feed.status().health == FeedHealth::stale; },
                     milliseconds(1000)));
    EXPECT_GE(feed.timeout_ms(), 0);  // trying to watch it again

    ::mkdir(sub.c_str(), 0700);
    write_in_place(path, other_json);
    ASSERT_TRUE(next_view(feed, view, milliseconds(3000)));
    EXPECT_EQ(view.at("web").at(0).id, "be3");
    EXPECT_EQ(feed.status().health, FeedHealth::current);
}

// The parser alone: every class of refusal, with where it points.
TEST(EndpointFile, RefusesWithThePositionAndKey) {
    const std::pair<const char *, const char *> cases[] = {
        {"", "f:1:1: (top level): the file is empty; services: is required"},
        {"{}", "f:1:1: services: required key is missing"},
        {"services: {}\nextra: 1\n", "f:2:1: extra: unknown key, expected services"},
        {"services: [1]", "f:1:11: services: expected a map of service names"},
        {"services:\n  web: {id: a}\n", "f:2:8: services.web: expected a sequence, got a map"},
        {"services:\n  web:\n", "f:2:3: services.web: expected a sequence, got nothing"},
        {"services:\n  web: []\n  web: []\n", "f:3:3: services.web: duplicate service 'web'"},
        {"services:\n  web: [7]\n", "f:2:9: services.web[0]: expected an endpoint map, got \"7\""},
        {"services:\n  web:\n  - address: 198.18.1.11\n",
         "f:3:5: services.web[0].id: required key is missing"},
        {"services:\n  web:\n  - {id: 7, address: 198.18.1.11}\n",
         "f:3:10: services.web[0].id: expected a string of 1..253 characters"},
        {"services:\n  web:\n  - {id: '', address: 198.18.1.11}\n",
         "f:3:10: services.web[0].id: expected a string"},
        {"services:\n  web:\n  - {id: a, address: 198.18.1.11, id: b}\n",
         "f:3:35: services.web[0].id: duplicate key, first at line 3"},
        {"services:\n  web:\n  - {id: a}\n", "f:3:5: services.web[0].address: missing"},
        {"services:\n  web:\n  - {id: a, address: 198.18.1.11, port: '80'}\n",
         "f:3:41: services.web[0].port: expected an integer in 0..65535, got \"80\""},
        {"services:\n  web:\n  - {id: a, address: 198.18.1.11, port: 65536}\n",
         "f:3:41: services.web[0].port: expected an integer in 0..65535, got 65536"},
        {"services:\n  web:\n  - {id: a, address: 198.18.1.11, weight: -1}\n",
         "f:3:43: services.web[0].weight: expected an integer"},
        {"services:\n  web:\n  - {id: a, address: 198.18.1.11, ready: yes}\n",
         "f:3:42: services.web[0].ready: expected true or false, got \"yes\""},
        {"services:\n  web:\n  - {id: a, address: 198.18.1.11, ready: true, terminating: true}\n",
         "f:3:42: services.web[0].ready: a terminating endpoint cannot be ready"},
        {"services:\n  web:\n  - id: a\n    address: 198.18.1.11\n    labels:\n      v: 2\n",
         "f:6:10: services.web[0].labels.v: expected a string"},
        {"services:\n  web:\n  - {id: a, address: 198.18.1.11, labels: [x]}\n",
         "f:3:43: services.web[0].labels: expected an object"},
        {"services:\n  web:\n  - {id: a, address: 198.18.1.11, labels: {v: a, v: b}}\n",
         "f:3:50: services.web[0].labels.v: duplicate key"},
        {"services:\n  web:\n  - {id: a, address: 198.18.1.11, zone: [[[[[[[[[1]]]]]]]]]}\n",
         "nested too deeply"},
        {"services:\n  web:\n  - {id: \"a\xff\", address: 198.18.1.11}\n",
         "f:3:10: services.web[0].id: expected a string"},
        {"services:\n  web:\n  - {id: a, address: 198.18.1.11, zone: \"\xff\"}\n",
         "f:3:5: services.web[0]: a key or string value is not valid UTF-8"},
        {"a: 1\n---\nb: 2\n", "f:2:1: (yaml): expected one YAML document, found a second one"},
        {",x", "f:1:1: (yaml): unexpected \",\""},
    };
    for (const auto &[text, error] : cases) {
        EndpointSet out{{"kept", {}}};
        const std::string got = parse_endpoint_file(text, "f", out);
        EXPECT_TRUE(got.starts_with(error) || (error[0] != 'f' && got.find(error) != got.npos))
            << text << "\n -> " << got << "\n expected " << error;
        EXPECT_TRUE(out.contains("kept")) << text;
    }
}

TEST(EndpointFile, ReadsJsonAsJsonWritersWriteIt) {
    // Tabs, escapes, and an empty service.
    EndpointSet out;
    ASSERT_EQ(parse_endpoint_file("{\n\t\"services\": {\n\t\t\"web\": [{\"id\": \"a\\/1\\u00e9\", "
                                  "\"address\": \"198.18.1.11\", \"labels\": {}}],\n"
                                  "\t\t\"idle\": []\n\t}\n}\n",
                                  "f", out),
              "");
    EXPECT_EQ(out.at("web").at(0).id, "a/1\xc3\xa9");
    EXPECT_TRUE(out.at("idle").empty());
    // Ids are unique per service, not across services.
    ASSERT_EQ(parse_endpoint_file(R"({"services": {"a": [{"id": "x", "address": "198.18.1.11"}],
                                                   "b": [{"id": "x", "address": "198.18.1.11"}]}})",
                                  "f", out),
              "");
    EXPECT_EQ(out.size(), 2u);
}

// The fuzz target's seeds: the good ones read, each bad one refused with a
// position, and no exception from either.
TEST(EndpointFile, TheFuzzSeedsAreReadOrRefused) {
    const std::filesystem::path corpus =
        std::filesystem::path(SLUICE_SOURCE_DIR) / "tests/fuzz/corpus/endpoint_file";
    std::vector<std::string> good;
    for (const auto &entry : std::filesystem::directory_iterator(corpus)) {
        std::ifstream in(entry.path(), std::ios::binary);
        const std::string text{std::istreambuf_iterator<char>(in), {}};
        const std::string name = entry.path().filename();
        EndpointSet out;
        const std::string error = parse_endpoint_file(text, name, out);
        if (error.empty())
            good.push_back(name);
        else
            EXPECT_TRUE(error.starts_with(name + ":")) << error;
    }
    std::sort(good.begin(), good.end());
    EXPECT_EQ(good, (std::vector<std::string>{"every-key.json", "every-key.yaml",
                                              "tabs-escapes.json"}));
}

} // namespace
} // namespace sluice::ctrl
