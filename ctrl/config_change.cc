#include "ctrl/config_change.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "ctrl/yaml_reader.h"

namespace sluice::ctrl {

namespace {

// The name the candidate is loaded under; it never reaches a client.
const std::string candidate_source = "api";

// `key` relative to `body`, the path of what the client sent: "weight" for
// "services[1].backends[0].weight" in "services[1].backends[0]".
std::optional<std::string> relative(const std::string &key, const std::string &body) {
    if (body.empty())
        return key;
    if (key == body)
        return std::nullopt;
    if (key.size() > body.size() + 1 && key.compare(0, body.size(), body) == 0 &&
        key[body.size()] == '.')
        return key.substr(body.size() + 1);
    return key;
}

// The line each service and backend of the candidate starts at, and how a
// message names it instead: "services[0] (web)", "services[0].backends[1]".
std::map<int, std::string> item_lines(const std::string &text, const std::string &body) {
    std::map<int, std::string> lines;
    auto name = [&](const std::string &path) {
        const auto inside = relative(path, body);
        return inside ? *inside : path;
    };
    try {
        const YAML::Node document = YAML::Load(text);
        const YAML::Node services = document["services"];
        if (!services.IsSequence())
            return lines;
        for (size_t i = 0; i < services.size(); ++i) {
            const YAML::Node service = services[i];
            const std::string path = "services[" + std::to_string(i) + "]";
            std::string label = name(path);
            if (service.IsMap() && service["name"].IsScalar())
                label += " (" + printable(service["name"].Scalar()) + ")";
            lines[service.Mark().line + 1] = label;
            if (!service.IsMap() || !service["backends"].IsSequence())
                continue;
            const YAML::Node backends = service["backends"];
            for (size_t j = 0; j < backends.size(); ++j)
                lines[backends[j].Mark().line + 1] =
                    name(path + ".backends[" + std::to_string(j) + "]");
        }
    } catch (const YAML::Exception &) {
        // The loader parsed this text; failing here, messages keep their lines.
    }
    return lines;
}

// "first defined at line 40" → "first defined at services[0] (web)": the
// line is the candidate's, which the client never sees.
std::string with_paths(const std::string &message, const std::string &text,
                       const std::string &body) {
    static const std::string word = "line ";
    if (message.find(word) == std::string::npos)
        return message;
    const std::map<int, std::string> lines = item_lines(text, body);
    std::string out;
    size_t at = 0;
    for (size_t found; (found = message.find(word, at)) != std::string::npos;) {
        size_t end = found + word.size();
        while (end < message.size() && std::isdigit(static_cast<unsigned char>(message[end])))
            ++end;
        const auto line = end > found + word.size() && end - found - word.size() < 10
                              ? lines.find(std::stoi(message.substr(found + word.size())))
                              : lines.end();
        out += message.substr(at, found - at);
        out += line != lines.end() ? line->second : message.substr(found, end - found);
        at = end;
    }
    return out + message.substr(at);
}

// "api:12:5: services[3].maglev_size: ..." → "services[3].maglev_size: ...".
std::string without_position(const std::string &warning) {
    if (warning.compare(0, candidate_source.size() + 1, candidate_source + ":") != 0)
        return warning;
    const size_t key = warning.find(": ", candidate_source.size());
    return key == std::string::npos ? warning : warning.substr(key + 2);
}

} // namespace

unsigned cpus_for(const CoreConfig &cores) {
    unsigned cpus = unsigned(cores.workers.size()) + 1;
    cpus = std::max(cpus, cores.control + 1);
    for (const unsigned worker : cores.workers)
        cpus = std::max(cpus, worker + 1);
    for (const auto &[lcore, cpu] : cores.cpus)
        cpus = std::max(cpus, cpu + 1);
    return cpus;
}

ServicesCheck check_services(const Config &running, const Json &services,
                             const std::string &body_path) {
    Json candidate = config_json(running);
    // The API changes no part of it, and its files need not be read again.
    candidate.erase("api");
    candidate["services"] = services;
    const std::string text = candidate.dump(2, ' ', false, Json::error_handler_t::replace);

    ServicesCheck result;
    try {
        Config loaded = load_config_text(text, candidate_source, cpus_for(running.cores));
        Config next = running;
        next.services = std::move(loaded.services);
        next.warnings.clear();
        for (const std::string &warning : loaded.warnings)
            if (warning.find("services[") != std::string::npos)
                next.warnings.push_back(without_position(warning));
        result.next = std::move(next);
    } catch (const ConfigError &e) {
        result.error = with_paths(e.message(), text, body_path);
        result.field = relative(e.key(), body_path);
    }
    return result;
}

} // namespace sluice::ctrl
