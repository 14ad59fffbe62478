// The file feed: a service's endpoints from a JSON or YAML file that an
// operator or a tool writes, watched with inotify. The file has this shape
// (JSON shown; YAML with the same shape is read too, since JSON is YAML and
// one parser reads both):
//
//   {"services": {"web": [{"id": "be1", "address": "198.18.1.11", "port": 8080,
//                          "weight": 1, "zone": "a", "labels": {"v": "2"},
//                          "ready": true, "serving": true, "terminating": false}]}}
//
// Each endpoint is what parse_endpoint_json() accepts, plus "id" (required,
// a string unique within its service). Reading is strict and all or
// nothing: the first problem refuses the whole file as
// "FILE:LINE:COLUMN: KEY: message", like the config loader's errors, and the
// feed keeps the last good view, stale with that message as its detail,
// until a good file arrives. An empty file is refused too: it is more often
// a write in progress than a wish to remove every endpoint.
//
// The feed watches the file's directory rather than the file, so that it
// sees every way a file gets replaced: a write in place (IN_CLOSE_WRITE), an
// editor's or a tool's rename over it (IN_MOVED_TO), a new file or link
// (IN_CREATE), a removal (IN_DELETE, IN_MOVED_FROM). Events for other names
// of the directory are noticed too, because Kubernetes' ConfigMap volumes
// replace a file by swapping a "..data" symlink beside it: for those the
// file is read again only when stat() says it changed. Events are debounced
// (a burst is read once, debounce_ms after its last event, or at latest
// ten debounces after its first). A file that is gone leaves the last view
// in place, stale, until it returns. A directory that cannot be watched
// (it is gone, or inotify is out of watches) is tried again once a second,
// and meanwhile the file is read then, when stat() says it changed.
//
// Non-blocking and single-threaded like the rest of the control plane: fd()
// is the inotify descriptor, timeout_ms() the debounce or re-watch timer,
// service() reads the events and, when due, the file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "ctrl/discovery_settings.h"
#include "ctrl/endpoint_feed.h"

namespace sluice::ctrl {

class FileFeed final : public EndpointFeed {
public:
    // Reads the file once before returning, so a good file gives its view at
    // once. Throws std::runtime_error only when there is no inotify instance
    // to be had (out of descriptors or of max_user_instances); a missing or
    // bad file or directory is a status, not an exception.
    explicit FileFeed(FileFeedSettings settings);
    ~FileFeed() override;
    FileFeed(const FileFeed &) = delete;
    FileFeed &operator=(const FileFeed &) = delete;

    int fd() const override { return inotify_; }
    int timeout_ms() const override;
    void service() noexcept override;
    bool take_endpoints(EndpointSet &out) override;
    // revision: a hash of the last good file's bytes (16 hex digits), so that
    // a touch, or a refused file put back as it was, is no new revision.
    FeedStatus status() const override;

private:
    using Nanoseconds = int64_t;  // CLOCK_MONOTONIC

    // What stat() said of the file last read, to skip reading it again when
    // an event about another name of the directory did not change it.
    struct FileIdentity {
        dev_t device = 0;
        ino_t inode = 0;
        off_t size = -1;
        timespec modified{}, changed{};
        bool operator==(const FileIdentity &other) const;
    };

    bool watch_directory(Nanoseconds now);
    void read_events(Nanoseconds now);
    void note_event(bool about_the_file, Nanoseconds now);
    void load(bool forced);
    void refuse(std::string why);

    FileFeedSettings settings_;
    std::string directory_, file_name_;
    int inotify_ = -1;
    int watch_ = -1;  // the directory's watch descriptor, -1 while it is not watched

    Nanoseconds load_at_ = -1;      // the debounced read, -1: none pending
    Nanoseconds burst_start_ = -1;  // first event of the pending burst
    bool load_forced_ = false;      // an event named the file: read it whatever stat says
    Nanoseconds rewatch_at_ = -1;   // next attempt to watch the directory, -1: none

    FileIdentity identity_;       // of the file as last read; size -1: none
    uint64_t good_hash_ = 0;      // of the last good file's bytes
    uint64_t refused_hash_ = 0;   // of the last refused file's bytes, to not parse it twice
    std::string refused_problem_;
    bool has_refused_ = false;
    bool has_view_ = false;
    bool changed_ = false;  // the view changed since take_endpoints()
    EndpointSet view_;
    FeedStatus status_;
};

// Reads an endpoints file's text. "" with every service's endpoints in
// `out`, or the first problem as "SOURCE:LINE:COLUMN: KEY: message" with
// `out` as it was. `source` names the file in messages. Never throws
// (except std::bad_alloc).
std::string parse_endpoint_file(std::string_view text, const std::string &source,
                                EndpointSet &out);

} // namespace sluice::ctrl
