"""Fixtures for end-to-end tests in the lab (tools/lab): a lab of network
namespaces with its own prefix, and sluiced running in its gateway namespace
on a real DPDK PMD. Run as root with Debian's /usr/bin/python3 -m pytest."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLUICED = Path(os.environ.get("SLUICED", REPO / "build" / "ctrl" / "sluiced"))
LAB_PREFIX = os.environ.get("SLUICE_E2E_LAB_PREFIX", "sle2e")
PMDS = ("af_packet", "af_xdp")
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15


def run(*args, check=True, timeout=60, **kwargs):
    return subprocess.run(args, check=check, timeout=timeout, text=True,
                          capture_output=True, **kwargs)


class Lab:
    def __init__(self, prefix):
        self.prefix = prefix
        self.env = dict(os.environ, SLUICE_LAB_PREFIX=prefix)

    def tool(self, *args, check=True):
        return run(str(REPO / "tools" / "lab"), *args, check=check, env=self.env)

    def ns(self, name):
        return f"{self.prefix}-{name}"

    def exec(self, name, *args, check=True, timeout=60):
        return run("ip", "netns", "exec", self.ns(name), *args, check=check, timeout=timeout)

    def mac(self, name, interface):
        out = run("ip", "-n", self.ns(name), "-br", "link", "show", interface).stdout
        return out.split()[2]


@pytest.fixture(scope="session")
def lab():
    lab = Lab(LAB_PREFIX)
    lab.tool("up")
    yield lab
    lab.tool("down")


def lab_config(pmd, tmp_path, name="lab.yaml"):
    """conf/lab.yaml with the PMD swapped in and a file prefix of its own."""
    text = (REPO / "conf" / "lab.yaml").read_text()
    if pmd == "af_xdp":
        text = text.replace("net_af_packet0,iface=gw-client", "net_af_xdp0,iface=gw-client")
        text = text.replace("net_af_packet1,iface=gw-backend", "net_af_xdp1,iface=gw-backend")
    # The lab prefix is part of it: labs of different prefixes may run at once.
    text = text.replace("file_prefix: sluice-lab", f"file_prefix: sluice-{LAB_PREFIX}-{pmd}")
    path = tmp_path / name
    path.write_text(text)
    return path


class Sluiced:
    """sluiced started in the lab's gateway namespace, stopped by its PID."""

    def __init__(self, lab, config, log):
        self.lab, self.config, self.log_path = lab, config, log
        self.log = open(log, "w")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("gw"), str(SLUICED), "--config", str(config)],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "sluiced: running" not in self.output():
            if self.process.poll() is not None:
                raise RuntimeError(f"sluiced exited with {self.process.returncode}:\n"
                                   + self.output())
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sluiced did not start:\n" + self.output())
            time.sleep(0.1)

    def output(self):
        return Path(self.log_path).read_text(errors="replace")

    def counters(self, by_worker=False):
        """Sums of the counters of the last SIGUSR1 dump, keyed by name (and
        reason for drops; and worker, when asked)."""
        header = "sluiced: counters\n"
        before = self.output().count(header)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while self.output().count(header) == before:
            if time.monotonic() > deadline:
                raise RuntimeError("no counters after SIGUSR1:\n" + self.output())
            time.sleep(0.05)
        time.sleep(0.3)  # the dump is written at once; let it land
        return parse_counters(self.output().split(header)[-1], by_worker)

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


COUNTER = re.compile(r'^(sluice_\w+)\{([^}]*)\} (\d+)$')


def parse_counters(text, by_worker=False):
    counters = {}
    for line in text.splitlines():
        m = COUNTER.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2), int(m.group(3))
        reason = re.search(r'reason="(\w+)"', labels)
        port = re.search(r'port="([\w-]+)"', labels)
        worker = re.search(r'worker="(\d+)"', labels) if by_worker else None
        key = name + (f".{reason.group(1)}" if reason else "") + (
            f".{port.group(1)}" if port else "") + (f".{worker.group(1)}" if worker else "")
        counters[key] = counters.get(key, 0) + value
    return counters


@pytest.fixture(scope="module", params=PMDS)
def gateway(request, lab, tmp_path_factory):
    """One sluiced per PMD, shared by the tests of a module."""
    tmp = tmp_path_factory.mktemp(request.param)
    sluiced = Sluiced(lab, lab_config(request.param, tmp), tmp / "sluiced.log")
    sluiced.pmd = request.param
    yield sluiced
    sluiced.stop()
