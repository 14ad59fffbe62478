// The effective config written out: every setting, defaults included, under
// the keys of the YAML file (docs/configuration.md), as JSON. JSON is YAML,
// so the loader reads what this writes: load_config_text(emit_config(c))
// equals c for every config the loader returns. GET /api/v1/config serves
// it, and the management API validates a change by writing the changed
// config out and loading it (ctrl/api.h).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "ctrl/config.h"

namespace sluice::ctrl {

// Keys stay in the order the file's sections and tables give them.
using Json = nlohmann::ordered_json;

// A key is left out where the loader refuses it (encapsulation of a
// fullnat service, the http keys of a tcp check, an empty file_prefix).
Json config_json(const Config &config);
Json service_json(const ServiceConfig &service);
Json backend_json(const BackendConfig &backend);
Json health_check_json(const HealthCheckSpec &check);

// config_json() as text, one key per line.
std::string emit_config(const Config &config);

} // namespace sluice::ctrl
