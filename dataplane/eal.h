// EAL start-up from the parts of the config that concern it.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace sluice::dataplane {

struct EalOptions {
    unsigned main_lcore = 0;
    std::vector<unsigned> worker_lcores;
    std::map<unsigned, unsigned> lcore_cpus;  // lcores placed on another CPU (--lcores)
    bool use_hugepages = false;
    unsigned memory_mb = 512;
    std::string file_prefix;
    std::string log_level = "notice";
    std::vector<std::string> vdevs;        // "net_af_packet0,iface=eth1", ...
    std::vector<std::string> pci_devices;  // allow-list; empty means --no-pci
    std::vector<std::string> extra_args;
};

// True when hugetlbfs is mounted and some hugepages are free.
bool hugepages_available();

std::vector<std::string> eal_arguments(const EalOptions &options);

// rte_eal_init with eal_arguments(); on failure says why in `error`.
bool start_eal(const EalOptions &options, std::string &error);

} // namespace sluice::dataplane
