"""Static routes in the lab, on net_af_packet and net_af_xdp: a backend that is
on no port's prefix is reached through the gateway its route names, and a
SIGHUP that changes the route moves new connections to the new gateway.

The lab's topology stays as it is: be1 and be2 both hold 198.18.20.11/32 and
2001:db8:20::11/128 on their loopback, so the only thing that decides which
of them answers is the MAC of the route's gateway that sluiced sends to."""

import time
from pathlib import Path

import pytest

from conftest import PMDS, Sluiced, lab_config
from test_reload import reload

ROUTED4, ROUTED6 = "198.18.20.11", "2001:db8:20::11"
VIP4, VIP6 = "198.18.10.20", "2001:db8:10::20"
HOSTS = ("be1", "be2")
ROUTES_VIA = {
    "be1": "  - {prefix: 198.18.20.0/24, via: 198.18.1.11}\n"
           "  - {prefix: \"2001:db8:20::/48\", via: \"2001:db8:0:2::11\"}\n",
    "be2": "  - {prefix: 198.18.20.0/24, via: 198.18.1.12}\n"
           "  - {prefix: \"2001:db8:20::/48\", via: \"2001:db8:0:2::12\"}\n",
}
SERVICES = f"""
  - name: web-routed
    vip: {VIP4}
    protocol: tcp
    port: 80
    mode: fullnat
    local_addresses: [198.18.1.110]
    backends:
      - address: {ROUTED4}

  - name: web6-routed
    vip: "{VIP6}"
    protocol: tcp
    port: 80
    mode: fullnat
    local_addresses: ["2001:db8:0:2::110"]
    backends:
      - address: "{ROUTED6}"
"""


def routed_config(base, via):
    """conf/lab.yaml (as lab_config wrote it) with routes through `via` and
    the services of the routed backend."""
    assert "\nlb:\n" in base and base.rstrip().endswith("- address: 198.18.1.12")
    text = base.replace("\nlb:\n", "\nroutes:\n" + ROUTES_VIA[via] + "\nlb:\n", 1)
    return text.rstrip("\n") + "\n" + SERVICES


@pytest.fixture(scope="module")
def routed_backend(lab):
    """The routed addresses on be1's and be2's loopback, removed afterwards."""
    added = []
    try:
        for host in HOSTS:
            for address in (f"{ROUTED4}/32", f"{ROUTED6}/128"):
                lab.exec(host, "ip", "addr", "add", address, "dev", "lo")
                added.append((host, address))
        yield
    finally:
        for host, address in added:
            lab.exec(host, "ip", "addr", "del", address, "dev", "lo", check=False)


@pytest.fixture(scope="module", params=PMDS)
def routed_gateway(request, lab, routed_backend, tmp_path_factory):
    """sluiced with routes to the routed backend through be1, one per PMD."""
    tmp = tmp_path_factory.mktemp(f"routes-{request.param}")
    config = lab_config(request.param, tmp)
    config.write_text(routed_config(config.read_text(), "be1"))
    sluiced = Sluiced(lab, config, tmp / "sluiced.log")
    yield sluiced
    sluiced.stop()


def fetch(lab, vip, attempts=10):
    """The body that GET / on the VIP answers with, retried while the
    gateway's neighbour is still being resolved."""
    host = f"[{vip}]" if ":" in vip else vip
    result = None
    for _ in range(attempts):
        result = lab.exec("client", "curl", "-sS", "--noproxy", "*", "-m", "3",
                          f"http://{host}/", check=False)
        if result.returncode == 0:
            return result.stdout.strip()
        time.sleep(0.5)
    return f"curl failed: {result.stderr.strip()}"


@pytest.mark.parametrize("vip", [VIP4, VIP6])
def test_routed_backend_answers_through_its_gateway(routed_gateway, vip):
    lab = routed_gateway.lab
    for _ in range(5):
        assert fetch(lab, vip) == "be1"
    # sluiced resolved the gateway, never the routed address itself.
    log = routed_gateway.output()
    gateway = "198.18.1.11" if vip == VIP4 else "2001:db8:0:2::11"
    assert f"neighbour {gateway} is at " in log, log
    assert f"neighbour {ROUTED4} " not in log and f"neighbour {ROUTED6} " not in log, log


def test_reloaded_route_moves_new_connections(routed_gateway):
    lab = routed_gateway.lab
    original = Path(routed_gateway.config).read_text()
    assert ROUTES_VIA["be1"] in original
    try:
        answer = reload(routed_gateway,
                        original.replace(ROUTES_VIA["be1"], ROUTES_VIA["be2"]))
        assert answer.startswith("ed "), answer  # "sluiced: reloaded ..."
        assert fetch(lab, VIP4) == "be2"
        assert fetch(lab, VIP6) == "be2"
    finally:
        assert reload(routed_gateway, original).startswith("ed ")
    assert fetch(lab, VIP4) == "be1"
    assert fetch(lab, VIP6) == "be1"


def test_route_through_no_neighbour_is_refused(routed_gateway):
    original = Path(routed_gateway.config).read_text()
    answer = reload(routed_gateway, original.replace("via: 198.18.1.11", "via: 198.18.7.1"))
    assert answer.startswith(" refused, nothing changed: "), answer
    assert "routes[0].via: 198.18.7.1 is on no port's prefix" in answer, answer
    assert fetch(routed_gateway.lab, VIP4) == "be1"
