#include <gtest/gtest.h>

#include <set>

#include "ctrl/backend_slots.h"

namespace sluice::ctrl {
namespace {

ServiceConfig service(const std::string &name, std::vector<std::string> backends) {
    ServiceConfig s;
    s.name = name;
    for (const std::string &address : backends)
        s.backends.push_back({*parse_ip_address(address), 80, 1});
    return s;
}

Config config_of(std::vector<ServiceConfig> services) {
    Config c;
    c.services = std::move(services);
    return c;
}

BackendConfig backend(const std::string &address) { return {*parse_ip_address(address), 80, 1}; }

const auto always_idle = [](lb::BackendSlot) { return true; };
const auto never_idle = [](lb::BackendSlot) { return false; };

TEST(BackendSlots, EveryBackendOfEveryServiceGetsItsOwnSlot) {
    BackendSlots slots;
    std::string error;
    ASSERT_TRUE(slots.assign(config_of({service("a", {"198.18.1.1", "198.18.1.2"}),
                                        service("b", {"198.18.1.1"})}),
                             always_idle, error));
    const std::set<lb::BackendSlot> distinct = {slots.slot("a", backend("198.18.1.1")),
                                                slots.slot("a", backend("198.18.1.2")),
                                                slots.slot("b", backend("198.18.1.1"))};
    EXPECT_EQ(distinct.size(), 3u);
    EXPECT_EQ(distinct.count(lb::no_backend_slot), 0u);
    EXPECT_EQ(slots.slot("b", backend("198.18.1.2")), lb::no_backend_slot);
}

TEST(BackendSlots, BackendsThatStayKeepTheirSlot) {
    BackendSlots slots;
    std::string error;
    ASSERT_TRUE(slots.assign(config_of({service("a", {"198.18.1.1", "198.18.1.2"})}), always_idle,
                             error));
    const lb::BackendSlot second = slots.slot("a", backend("198.18.1.2"));
    ASSERT_TRUE(slots.assign(config_of({service("a", {"198.18.1.3", "198.18.1.2"})}), always_idle,
                             error));
    EXPECT_EQ(slots.slot("a", backend("198.18.1.2")), second);
    EXPECT_EQ(slots.slot("a", backend("198.18.1.1")), lb::no_backend_slot);
    EXPECT_NE(slots.slot("a", backend("198.18.1.3")), second);
}

TEST(BackendSlots, ALeftSlotIsReusedOnlyOnceItsFlowsAreGone) {
    BackendSlots slots(2);
    std::string error;
    ASSERT_TRUE(slots.assign(config_of({service("a", {"198.18.1.1", "198.18.1.2"})}), always_idle,
                             error));
    const lb::BackendSlot left = slots.slot("a", backend("198.18.1.1"));
    // 198.18.1.1 leaves while its flows run: 198.18.1.3 cannot have its slot.
    EXPECT_FALSE(slots.assign(config_of({service("a", {"198.18.1.3", "198.18.1.2"})}),
                              never_idle, error));
    EXPECT_NE(error.find("too many backends"), std::string::npos) << error;
    // Refused: nothing changed.
    EXPECT_EQ(slots.slot("a", backend("198.18.1.1")), left);
    EXPECT_EQ(slots.slot("a", backend("198.18.1.3")), lb::no_backend_slot);
    ASSERT_TRUE(slots.assign(config_of({service("a", {"198.18.1.3", "198.18.1.2"})}),
                             [&](lb::BackendSlot s) { return s == left; }, error));
    EXPECT_EQ(slots.slot("a", backend("198.18.1.3")), left);
}

TEST(BackendSlots, ABackendListedTwiceHasOneSlot) {
    BackendSlots slots;
    std::string error;
    ASSERT_TRUE(slots.assign(config_of({service("a", {"198.18.1.1", "198.18.1.1"})}), always_idle,
                             error));
    EXPECT_EQ(slots.in_use(), 1u);
}

} // namespace
} // namespace sluice::ctrl
