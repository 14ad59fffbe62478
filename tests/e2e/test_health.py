"""Active health checks in the lab: a service whose backends run their own
HTTP servers (started and stopped here, by PID) is checked from the gateway's
kernel through the exception path. A stopped server leaves rotation within
interval x fall + 1 s, and no request fails after that; started again, it
returns after `rise` passing checks."""

import json
import subprocess
import time

import pytest

from test_api import call, gateway, spread  # noqa: F401 (the module's sluiced)
from test_balancing import url

VIP = "198.18.10.21"
PORT = 8081
INTERVAL_MS, FALL, RISE = 200, 2, 2
BACKENDS = {"be1": "198.18.1.11", "be2": "198.18.1.12", "be3": "198.18.1.13"}


class Server:
    """python3 -m http.server in a backend namespace, serving its name."""

    def __init__(self, lab, backend):
        self.lab, self.backend = lab, backend
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.ns(self.backend), "/usr/bin/python3", "-m",
             "http.server", str(PORT), "--bind", "0.0.0.0", "--directory",
             f"/run/{self.lab.prefix}-lab/www/{self.backend}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def servers(gateway):
    started = {name: Server(gateway.lab, name) for name in BACKENDS}
    yield started
    for server in started.values():
        server.stop()


def health(gateway, service):
    status, body = call(gateway, "GET", f"/api/v1/services/{service}/backends")
    assert status == 200, body
    return {b["address"]: b["health"] for b in body["backends"]}


def wait_for(predicate, seconds):
    """Seconds it took predicate() to hold, or None when it never did."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def test_a_stopped_backend_leaves_rotation_and_returns(gateway, servers):
    lab = gateway.lab
    body = {"name": "api-health", "vip": VIP, "protocol": "tcp", "port": 80, "mode": "fullnat",
            "local_addresses": ["198.18.1.111"],
            "health_check": {"type": "http", "interval_ms": INTERVAL_MS, "timeout_ms": 150,
                             "rise": RISE, "fall": FALL, "path": "/",
                             "expected_status": ["200"]},
            "backends": [{"address": a, "port": PORT} for a in BACKENDS.values()]}
    status, answer = call(gateway, "POST", "/api/v1/services", body)
    assert status == 201, answer
    try:
        assert wait_for(lambda: set(health(gateway, "api-health").values()) == {"up"}, 10), \
            health(gateway, "api-health")

        wrk = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("client"), "wrk", "-t", "1", "-c", "8", "-d", "6s",
             "--timeout", "5s", url(VIP)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        time.sleep(1)
        servers["be2"].stop()
        took = wait_for(lambda: health(gateway, "api-health")[BACKENDS["be2"]] == "down", 10)
        assert took is not None and took <= INTERVAL_MS * FALL / 1000 + 1, took
        wrk.communicate(timeout=60)

        # From here on, no request fails and be2 gets none.
        after = lab.exec("client", "wrk", "-t", "1", "-c", "8", "-d", "3s", "--timeout", "5s",
                         url(VIP), timeout=60).stdout
        assert "Socket errors" not in after and "Non-2xx" not in after, after
        outcome = spread(lab, VIP, 60)
        assert outcome["failures"] == 0, outcome
        assert sorted(outcome["answers"]) == ["be1", "be3"], outcome

        servers["be2"].start()
        took = wait_for(lambda: health(gateway, "api-health")[BACKENDS["be2"]] == "up", 10)
        assert took is not None and took <= INTERVAL_MS * RISE / 1000 + 1.5, took
        assert "be2" in spread(lab, VIP, 60)["answers"]

        metrics = lab.exec("gw", "curl", "-sS", "--noproxy", "*",
                           "http://127.0.0.1:8480/metrics").stdout
        assert 'sluice_backend_up{service="api-health",address="198.18.1.12"' in metrics
    finally:
        assert call(gateway, "DELETE", "/api/v1/services/api-health")[0] == 200
