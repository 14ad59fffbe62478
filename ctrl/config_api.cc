// The `api` section of the config: where the REST management API listens,
// its bearer token and its TLS files (docs/api.md). The files it names are
// opened here, at load time, so that a token or certificate that cannot be
// read stops sluiced before it starts, with the key that names it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ctrl/config_loader.h"

namespace sluice::ctrl {

namespace {

constexpr size_t max_token = 4096;
constexpr size_t short_token = 16;  // below this, a token is easy to guess
constexpr size_t max_path = 4096;   // PATH_MAX

// RFC 6750's b64token is stricter; any visible ASCII keeps the header
// "Authorization: Bearer TOKEN" unambiguous.
bool is_token(std::string_view s) {
    return !s.empty() && s.size() <= max_token &&
           std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

const char *const token_rule = "1..4096 visible ASCII characters, without spaces";

} // namespace

bool is_path(std::string_view s) {
    return !s.empty() && s.size() <= max_path && s.find('\0') == s.npos;
}

std::string read_start(const std::string &path, std::string *first_line, mode_t &mode) {
    // O_NONBLOCK: a FIFO must not hang the loader; it is refused below.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return std::strerror(errno);
    struct stat st {};
    std::string problem;
    if (::fstat(fd, &st) != 0)
        problem = std::strerror(errno);
    else if (!S_ISREG(st.st_mode))
        problem = S_ISDIR(st.st_mode) ? "it is a directory" : "it is not a regular file";
    mode = st.st_mode;
    while (problem.empty() && first_line && first_line->size() <= max_token &&
           first_line->find('\n') == std::string::npos) {
        char buffer[512];
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            problem = std::strerror(errno);
        if (n <= 0)
            break;
        first_line->append(buffer, size_t(n));
    }
    ::close(fd);
    if (first_line) {
        first_line->resize(std::min(first_line->find('\n'), first_line->size()));
        if (!first_line->empty() && first_line->back() == '\r')
            first_line->pop_back();
    }
    return problem;
}

namespace {

// "127.0.0.1:8480" or "[2001:db8::1]:8480".
bool parse_listen(std::string_view text, IpAddress &address, uint16_t &port) {
    std::string_view host, digits;
    if (!text.empty() && text[0] == '[') {
        const size_t close = text.find("]:");
        if (close == text.npos)
            return false;
        host = text.substr(1, close - 1);
        digits = text.substr(close + 2);
    } else {
        const size_t colon = text.rfind(':');
        if (colon == text.npos)
            return false;
        host = text.substr(0, colon);
        digits = text.substr(colon + 1);
    }
    const auto parsed = parse_ip_address(host);
    const auto number = parse_unsigned(digits);
    // An IPv6 address needs its brackets, else its last group reads as the port.
    if (!parsed || parsed->is_v4() == (text[0] == '[') || !number || *number > 65535)
        return false;
    address = *parsed;
    port = uint16_t(*number);
    return true;
}

} // namespace

std::string ApiConfig::listen() const {
    const std::string host = listen_address.to_string();
    return (listen_address.is_v4() ? host : "[" + host + "]") + ":" +
           std::to_string(listen_port);
}

std::string ConfigLoader::readable_file(const Field &f) const {
    std::string path = text(f, "a file name", is_path);
    mode_t mode = 0;
    if (const std::string problem = read_start(path, nullptr, mode); !problem.empty())
        fail(f, "cannot read " + quoted(path) + ": " + problem);
    return path;
}

std::string ConfigLoader::first_line_of(const Field &f, std::string &path, mode_t &mode) const {
    path = text(f, "a file name", is_path);
    std::string line;
    if (const std::string problem = read_start(path, &line, mode); !problem.empty())
        fail(f, "cannot read " + quoted(path) + ": " + problem);
    return line;
}

void ConfigLoader::read_api(const Field &f, Config &config) const {
    ApiConfig &api = config.api;
    const Section s = map(f, {"listen", "token", "token_file", "max_body_bytes", "max_clients",
                              "tls"});

    const Field *listen = s.find("listen");
    if (listen) {
        const std::string what =
            "ADDRESS:PORT or [IPV6]:PORT like 127.0.0.1:8480 or [::1]:8480";
        const std::string &text = scalar(*listen, what);
        if (!parse_listen(text, api.listen_address, api.listen_port))
            fail(*listen, "expected " + what + ", got " + quoted(text));
        if (api.listen_address.is_multicast() ||
            (api.listen_address.is_v4() && api.listen_address.v4_be() == 0xffffffff))
            fail(*listen, "expected an address of this host, got " +
                              api.listen_address.to_string());
    }

    const Field *token = s.find("token");
    const Field *token_file = s.find("token_file");
    if (token && token_file)
        fail(*token_file, "give token or token_file, not both");
    const Field *given = token ? token : token_file;
    if (token) {
        // Not text(): an error must not print the secret.
        const std::string &value = scalar(*token, std::string("a token of ") + token_rule);
        if (!is_token(value))
            fail(*token, std::string("expected a token of ") + token_rule + ", got " +
                             plural(value.size(), "character") +
                             (value.empty() || value.size() > max_token
                                  ? ""
                                  : " with a space or a control or non-ASCII character"));
        api.token = value;
    }
    if (token_file) {
        mode_t mode = 0;
        const std::string line = first_line_of(*token_file, api.token_file, mode);
        if (line.empty())
            fail(*token_file, "the first line of " + quoted(api.token_file) +
                                  " is empty: it must hold the token");
        if (!is_token(line))
            fail(*token_file, "the first line of " + quoted(api.token_file) +
                                  " is not a token: expected " + token_rule);
        api.token = line;
        if (mode & S_IROTH)
            config.warnings.push_back(warning(
                *token_file, quoted(api.token_file) + " can be read by every user of this host"));
    }
    if (given && api.token.size() < short_token)
        config.warnings.push_back(warning(*given, "a token of " +
                                                      plural(api.token.size(), "character") +
                                                      " is easy to guess; use 16 or more"));

    if (const Field *v = s.find("max_body_bytes"))
        api.max_body_bytes = integer(*v, 1024, 16'777'216, "a number of bytes");
    if (const Field *v = s.find("max_clients"))
        api.max_clients = integer(*v, 1, 4096, "a number of connections");

    if (const Field *v = s.find("tls")) {
        const Section t = map(*v, {"certificate", "private_key", "client_ca"});
        ApiTlsConfig tls;
        tls.certificate = readable_file(require(t, "certificate"));
        tls.private_key = readable_file(require(t, "private_key"));
        if (const Field *ca = t.find("client_ca"))
            tls.client_ca = readable_file(*ca);
        api.tls = tls;
    }

    if (given && !api.tls && !api.listen_address.is_loopback())
        config.warnings.push_back(warning(
            listen ? *listen : f, api.listen() +
                                      " is not a loopback address and api.tls is not set: "
                                      "the token travels in clear text"));
}

} // namespace sluice::ctrl
