"""Reloading sluiced's services with SIGHUP while traffic runs, on
net_af_packet and net_af_xdp: changes apply at once, established flows keep
their backends, and a bad file changes nothing."""

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from test_balancing import SPREAD

VIP = "198.18.10.7"
OLD_BACKENDS = "      - address: 198.18.1.11\n      - address: 198.18.1.12\n"
NEW_BACKENDS = "      - address: 198.18.1.12\n      - address: 198.18.1.13\n"


def reload(gateway, text):
    """Writes the config, sends SIGHUP, and returns what sluiced said of it."""
    Path(gateway.config).write_text(text)
    before = gateway.output().count("sluiced: reload")
    gateway.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while gateway.output().count("sluiced: reload") == before:
        assert time.monotonic() < deadline, "no answer to SIGHUP"
        time.sleep(0.05)
    return gateway.output().split("sluiced: reload")[-1].splitlines()[0]


def with_reload_backends(text, backends):
    """The config with web-reload's backends (the last lines) replaced."""
    head, marker, tail = text.partition("  - name: web-reload\n")
    assert marker and OLD_BACKENDS in tail
    return head + marker + tail.replace(OLD_BACKENDS, backends)


def spread(lab, count):
    result = lab.exec("client", "/usr/bin/python3", "-c", SPREAD, VIP, str(count), timeout=300)
    return json.loads(result.stdout)


def slow_download(lab, output, rate):
    """A download of slow.bin, which only some backends have: one that lands
    on another ends at once with a 404 and is tried again from another
    port. Returns the curl that got the file, still running."""
    for _ in range(20):
        download = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("client"), "curl", "-fsS", "-o", output,
             "--noproxy", "*", "--limit-rate", rate, "-m", "60", f"http://{VIP}/slow.bin"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1)
        if download.poll() is None:
            return download
        assert download.returncode == 22, download.communicate()
    raise AssertionError("every download landed on a backend without the file")


def test_backend_change_applies_and_established_flows_finish(gateway):
    """be1 removed and be3 added while a download runs from be1: the
    download keeps its backend and completes intact; new connections go to
    be2 and be3 only."""
    lab = gateway.lab
    original = Path(gateway.config).read_text()
    # Only be1 has the file. At 1.5 MB/s it lasts 16 s: longer than a reload
    # may take on a loaded machine (10 s at most).
    payload = os.urandom(24 * 1024 * 1024)
    digest = hashlib.sha256(payload).hexdigest()
    Path(f"/run/{lab.prefix}-lab/www/be1/slow.bin").write_bytes(payload)
    for backend in ("be2", "be3"):
        Path(f"/run/{lab.prefix}-lab/www/{backend}/slow.bin").unlink(missing_ok=True)
    received = Path(f"/run/{lab.prefix}-lab/download.bin")
    received.unlink(missing_ok=True)
    download = slow_download(lab, str(received), "1500K")

    answer = reload(gateway, with_reload_backends(original, NEW_BACKENDS))
    assert answer.startswith("ed "), answer  # "sluiced: reloaded ..."
    assert download.poll() is None, ("the download ended before the reload landed",
                                     download.returncode)

    # New connections: be1 is gone, be3 has come.
    outcome = spread(lab, 300)
    assert outcome["failures"] == 0
    assert "be1" not in outcome["answers"], outcome
    assert sorted(outcome["answers"]) == ["be2", "be3"], outcome

    # The download from the removed backend finishes intact.
    _, err = download.communicate(timeout=90)
    assert download.returncode == 0, err
    assert hashlib.sha256(received.read_bytes()).hexdigest() == digest
    received.unlink()

    assert reload(gateway, original).startswith("ed "), "back to the original backends"


def test_bad_reload_changes_nothing(gateway):
    original = Path(gateway.config).read_text()
    answer = reload(gateway, original.replace("protocol: tcp\n    port: 80\n    mode: nat",
                                              "protocol: tcp\n    port: 80\n    mode: natt", 1))
    assert answer.startswith(" refused, nothing changed: "), answer
    assert "services[1].mode" in answer
    answer = reload(gateway, original.replace("memory_mb: 256", "memory_mb: 512"))
    assert answer == " refused, nothing changed: eal changed, which needs a restart", answer
    Path(gateway.config).write_text(original)  # the file as it runs, for the next tests
    # Still balancing as before.
    outcome = spread(gateway.lab, 60)
    assert outcome["failures"] == 0
    assert sorted(outcome["answers"]) == ["be1", "be2"], outcome


def test_reset_policy_ends_flows_of_a_removed_backend_with_a_rst(gateway):
    """web-reload set to `reset`, then given only be3: a download from be1 or
    be2 is cut at once with a RST from the VIP (curl: connection reset), not
    left to time out; new connections go to be3."""
    lab = gateway.lab
    original = Path(gateway.config).read_text()
    resetting = original.replace(
        "    local_addresses: [198.18.1.103]\n",
        "    local_addresses: [198.18.1.103]\n    removed_backend_flows: reset\n")
    assert resetting != original
    # Only be1 and be2 have the file (be3 stays). At 1 MB/s it lasts 24 s:
    # longer than a reload may take on a loaded machine (10 s at most), so
    # it is still running when the reload lands.
    payload = os.urandom(24 * 1024 * 1024)
    for backend in ("be1", "be2"):
        Path(f"/run/{lab.prefix}-lab/www/{backend}/slow.bin").write_bytes(payload)
    Path(f"/run/{lab.prefix}-lab/www/be3/slow.bin").unlink(missing_ok=True)
    assert reload(gateway, resetting).startswith("ed ")
    try:
        before = gateway.counters()
        download = slow_download(lab, "/dev/null", "1M")
        answer = reload(gateway, with_reload_backends(
            resetting, "      - address: 198.18.1.13\n"))
        assert answer.startswith("ed "), answer
        started = time.monotonic()
        assert download.poll() is None, ("the download ended before the reload landed",
                                         download.returncode)
        _, err = download.communicate(timeout=70)
        # Cut well before its 24 s at 1 MB/s, or the 60 s limit.
        assert download.returncode == 56, (download.returncode, err)
        assert "reset" in err.lower(), err
        assert time.monotonic() - started < 5
        after = gateway.counters()
        assert after["sluice_worker_resets_sent_total"] > before.get("sluice_worker_resets_sent_total", 0)
        outcome = spread(lab, 30)
        assert outcome["failures"] == 0 and sorted(outcome["answers"]) == ["be3"], outcome
    finally:
        assert reload(gateway, original).startswith("ed ")
