#include "dataplane/drop_reason.h"

namespace sluice {

const char *drop_reason_name(DropReason reason) {
    static constexpr const char *names[] = {
        "none",
#define SLUICE_DROP_NAME(name, text) #name,
        SLUICE_DROP_REASONS(SLUICE_DROP_NAME)
#undef SLUICE_DROP_NAME
    };
    return size_t(reason) < drop_reason_count ? names[size_t(reason)] : "invalid";
}

const char *drop_reason_description(DropReason reason) {
    static constexpr const char *texts[] = {
        "not dropped",
#define SLUICE_DROP_TEXT(name, text) text,
        SLUICE_DROP_REASONS(SLUICE_DROP_TEXT)
#undef SLUICE_DROP_TEXT
    };
    return size_t(reason) < drop_reason_count ? texts[size_t(reason)] : "invalid";
}

} // namespace sluice
