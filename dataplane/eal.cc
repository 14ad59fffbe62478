#include "dataplane/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>

#include <fstream>
#include <sstream>

namespace sluice::dataplane {

bool hugepages_available() {
    bool mounted = false;
    std::ifstream mounts("/proc/mounts");
    for (std::string line; std::getline(mounts, line);) {
        std::istringstream fields(line);
        std::string device, mount_point, type;
        fields >> device >> mount_point >> type;
        if (type == "hugetlbfs")
            mounted = true;
    }
    if (!mounted)
        return false;
    std::ifstream meminfo("/proc/meminfo");
    for (std::string line; std::getline(meminfo, line);) {
        if (line.rfind("HugePages_Free:", 0) == 0)
            return std::stoul(line.substr(15)) > 0;
    }
    return false;
}

std::vector<std::string> eal_arguments(const EalOptions &options) {
    // -l 0,1,2 when every lcore runs on the CPU of its number; otherwise
    // --lcores 0@0,1@1,2@1.
    std::vector<unsigned> all = {options.main_lcore};
    all.insert(all.end(), options.worker_lcores.begin(), options.worker_lcores.end());
    std::string lcores;
    for (const unsigned lcore : all) {
        lcores += (lcores.empty() ? "" : ",") + std::to_string(lcore);
        if (!options.lcore_cpus.empty()) {
            const auto placed = options.lcore_cpus.find(lcore);
            lcores += "@" + std::to_string(placed != options.lcore_cpus.end() ? placed->second
                                                                               : lcore);
        }
    }
    std::vector<std::string> args = {
        "sluiced",
        options.lcore_cpus.empty() ? "-l" : "--lcores", lcores,
        "--main-lcore", std::to_string(options.main_lcore),
        "--file-prefix", options.file_prefix,
        "-m", std::to_string(options.memory_mb),
        "--log-level", "*:" + options.log_level,
    };
    if (!options.use_hugepages)
        args.push_back("--no-huge");
    if (options.pci_devices.empty())
        args.push_back("--no-pci");
    for (const auto &pci : options.pci_devices) {
        args.push_back("-a");
        args.push_back(pci);
    }
    for (const auto &vdev : options.vdevs) {
        args.push_back("--vdev");
        args.push_back(vdev);
    }
    args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
    return args;
}

bool start_eal(const EalOptions &options, std::string &error) {
    // The EAL may keep pointers into argv for the life of the process.
    static std::vector<std::string> args;
    static std::vector<char *> argv;
    args = eal_arguments(options);
    argv.clear();
    for (auto &arg : args)
        argv.push_back(arg.data());
    argv.push_back(nullptr);
    if (rte_eal_init(int(args.size()), argv.data()) < 0) {
        error = std::string("EAL initialisation failed: ") + rte_strerror(rte_errno);
        return false;
    }
    return true;
}

} // namespace sluice::dataplane
