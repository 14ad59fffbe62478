"""The management plane in the lab: sluiced's REST API on its management
address in the gateway namespace, reached with curl; changes take effect at
once without a restart and without breaking a flow; /metrics passes promtool.
The API does not depend on the PMD: one sluiced on net_af_packet serves the
module."""

import hashlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import Sluiced, lab_config, run
from test_balancing import SPREAD, UDP_SPREAD, url

API = "http://127.0.0.1:8480"
TOKEN = "lab-only-api-token"
VIP = "198.18.10.20"
BACKENDS = ["198.18.1.11", "198.18.1.12", "198.18.1.13"]


@pytest.fixture(scope="module")
def gateway(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    sluiced = Sluiced(lab, lab_config("af_packet", tmp), tmp / "sluiced.log")
    sluiced.pmd = "af_packet"
    yield sluiced
    sluiced.stop()


def call(gateway, method, path, body=None, token=TOKEN, raw=None, timeout=30):
    """(status, parsed JSON or text) of one API call, made with curl inside
    the gateway namespace."""
    args = ["curl", "-sS", "--noproxy", "*", "-m", "20", "-X", method, "-o", "-",
            "-w", "\n%{http_code}", API + path]
    if token is not None:
        args += ["-H", f"Authorization: Bearer {token}"]
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    if data is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    result = subprocess.run(["ip", "netns", "exec", gateway.lab.ns("gw"), *args], input=data,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    text, _, status = result.stdout.rpartition("\n")
    try:
        return int(status), json.loads(text) if text else None
    except json.JSONDecodeError:
        return int(status), text


def service_body(name=None, vip=VIP, backends=BACKENDS, **extra):
    body = {"vip": vip, "protocol": "tcp", "port": 80, "mode": "fullnat",
            "local_addresses": ["198.18.1.110"],
            "backends": [{"address": b} for b in backends]}
    if name:
        body["name"] = name
    body.update(extra)
    return body


def spread(lab, vip, count):
    return json.loads(lab.exec("client", "/usr/bin/python3", "-c", SPREAD, vip, str(count),
                               timeout=300).stdout)


def effective_config(gateway):
    status, config = call(gateway, "GET", "/api/v1/config")
    assert status == 200, config
    return config


def test_a_service_added_through_the_api_serves_at_once(gateway):
    status, body = call(gateway, "POST", "/api/v1/services", service_body("api-web"))
    assert status == 201, body
    assert body["name"] == "api-web"
    outcome = spread(gateway.lab, VIP, 60)
    assert outcome["failures"] == 0, outcome
    assert sorted(outcome["answers"]) == ["be1", "be2", "be3"], outcome

    status, body = call(gateway, "GET", "/api/v1/services/api-web")
    assert status == 200 and body["vip"] == VIP, body
    status, listing = call(gateway, "GET", "/api/v1/services")
    assert "api-web" in [s["name"] for s in listing["services"]]

    status, body = call(gateway, "DELETE", "/api/v1/services/api-web")
    assert status == 200, body
    result = gateway.lab.exec("client", "curl", "-sS", "--noproxy", "*", "-m", "3",
                              url(VIP), check=False)
    assert result.returncode != 0, result.stdout
    assert call(gateway, "GET", "/api/v1/services/api-web")[0] == 404


def test_mutating_calls_need_the_token(gateway):
    before = effective_config(gateway)
    status, body = call(gateway, "POST", "/api/v1/services", service_body("nope"), token=None)
    assert status == 401, body
    status, body = call(gateway, "POST", "/api/v1/services", service_body("nope"),
                        token="wrong")
    assert status == 403, body
    assert call(gateway, "GET", "/api/v1/services", token=None)[0] == 200
    assert effective_config(gateway) == before


@pytest.mark.parametrize("raw, status, field", [
    ('{"vip": "198.18.10.21", ', 400, None),                                  # malformed JSON
    (json.dumps(service_body("bad1", colour="blue")), 422, "colour"),         # unknown field
    (json.dumps(service_body("bad2", port="eighty")), 422, "port"),           # wrong type
    (json.dumps(service_body("bad3", backends=["198.18.1.300"])), 422, "address"),  # bad address
    (json.dumps(service_body("bad4", vip="198.18.10.1")), 422, "vip"),       # VIP:port taken
])
def test_bad_input_is_refused_with_its_field_and_changes_nothing(gateway, raw, status, field):
    before = effective_config(gateway)
    got, body = call(gateway, "POST", "/api/v1/services", raw=raw)
    assert got == status, body
    assert body["error"], body
    if field:
        assert field in (body.get("field") or ""), body
    assert effective_config(gateway) == before


def test_oversized_bodies_and_unknown_names_are_refused(gateway):
    big = json.dumps(service_body("big", padding="x" * 200_000))
    assert call(gateway, "POST", "/api/v1/services", raw=big)[0] == 413
    assert call(gateway, "GET", "/api/v1/services/no-such-service")[0] == 404
    assert call(gateway, "PATCH", "/api/v1/services/web-fullnat/backends/198.18.1.99",
                {"weight": 2})[0] == 404
    assert call(gateway, "DELETE", "/api/v1/no-such-path")[0] == 404


def test_several_clients_are_served_at_once(gateway):
    results = []

    def client():
        results.append(call(gateway, "GET", "/api/v1/services")[0])

    threads = [threading.Thread(target=client) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 12


def test_metrics_pass_promtool(gateway):
    spread(gateway.lab, "198.18.10.1", 10)
    result = gateway.lab.exec("gw", "curl", "-sS", "--noproxy", "*", API + "/metrics")
    text = result.stdout
    assert 'sluice_backend_packets_total{service="web-fullnat"' in text
    assert "sluice_worker_rx_packets_total" in text
    assert "sluice_port_xstat_total" in text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    status, stats = call(gateway, "GET", "/api/v1/stats")
    assert status == 200
    assert stats["sluice_backend_packets_total"]["type"] == "counter"


def test_a_drained_backend_keeps_its_download_and_takes_no_new_flows(gateway):
    lab = gateway.lab
    status, body = call(gateway, "POST", "/api/v1/services", service_body("api-drain"))
    assert status == 201, body
    payload = os.urandom(16 * 1024 * 1024)
    digest = hashlib.sha256(payload).hexdigest()
    for backend in ("be1", "be2", "be3"):
        Path(f"/run/{lab.prefix}-lab/www/{backend}/drain.bin").write_bytes(payload)
    download = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns("client"), "sh", "-c",
         f"curl -sS --noproxy '*' --limit-rate 4M -m 60 {url(VIP, '/drain.bin')} | sha256sum"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The backend serving it: the one with an open flow.
    serving = None
    deadline = time.monotonic() + 5
    while serving is None and time.monotonic() < deadline:
        status, body = call(gateway, "GET", "/api/v1/services/api-drain/backends")
        busy = [b["address"] for b in body["backends"] if b["active_flows"] > 0]
        serving = busy[0] if busy else None
        time.sleep(0.1)
    assert serving, body
    status, body = call(gateway, "POST", f"/api/v1/services/api-drain/backends/{serving}/drain")
    assert status == 200 and body["drained"] is True, body

    outcome = spread(lab, VIP, 60)
    names = {"198.18.1.11": "be1", "198.18.1.12": "be2", "198.18.1.13": "be3"}
    assert outcome["failures"] == 0, outcome
    assert names[serving] not in outcome["answers"], outcome
    out, err = download.communicate(timeout=90)
    assert out.split()[0] == digest, err

    status, body = call(gateway, "POST",
                        f"/api/v1/services/api-drain/backends/{serving}/undrain")
    assert status == 200 and body["drained"] is False, body
    assert names[serving] in spread(lab, VIP, 60)["answers"]
    assert call(gateway, "DELETE", "/api/v1/services/api-drain")[0] == 200


def active_flows(gateway, service):
    status, body = call(gateway, "GET", f"/api/v1/services/{service}/backends")
    assert status == 200, body
    return sum(backend["active_flows"] for backend in body["backends"])


def test_a_services_own_timeouts_end_its_idle_flows(gateway):
    """A UDP service added through the API with `timeouts: {udp: 1}`: its
    flows leave the workers' tables a second after their last datagram,
    while names-nat-udp's, on lb.timeouts (30 s), stay."""
    lab = gateway.lab
    body = service_body("api-timeouts", vip="198.18.10.21", protocol="udp", port=53, mode="nat",
                        timeouts={"udp": 1})
    del body["local_addresses"]
    status, answer = call(gateway, "POST", "/api/v1/services", body)
    assert status == 201, answer
    # What it left out is lb.timeouts'.
    assert answer["timeouts"] == {"tcp_syn": 5, "tcp_established": 300, "tcp_closing": 10,
                                  "udp": 1}, answer
    try:
        for vip in ("198.18.10.9", "198.18.10.21"):  # names-nat-udp, the new service
            outcome = json.loads(lab.exec("client", "/usr/bin/python3", "-c", UDP_SPREAD, vip,
                                          "30", timeout=120).stdout)
            assert outcome["failures"] == 0, (vip, outcome)
        # Each datagram came from a socket of its own: a flow each. The
        # first of the new service's may already have gone.
        assert active_flows(gateway, "api-timeouts") > 0
        before = active_flows(gateway, "names-nat-udp")
        assert before >= 30
        deadline = time.monotonic() + 10
        while active_flows(gateway, "api-timeouts") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert active_flows(gateway, "api-timeouts") == 0
        assert active_flows(gateway, "names-nat-udp") == before
    finally:
        assert call(gateway, "DELETE", "/api/v1/services/api-timeouts")[0] == 200


def test_a_hundred_reconfigurations_under_load_fail_no_request(gateway):
    lab = gateway.lab
    status, body = call(gateway, "POST", "/api/v1/services", service_body("api-churn"))
    assert status == 201, body
    wrk = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns("client"), "wrk", "-t", "1", "-c", "8", "-d", "12s",
         "--timeout", "5s", url(VIP)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    time.sleep(1)
    for i in range(100):
        backend = BACKENDS[i % 3]
        status, body = call(gateway, "PATCH",
                            f"/api/v1/services/api-churn/backends/{backend}",
                            {"weight": 1 + i % 5})
        assert status == 200, body
    out, err = wrk.communicate(timeout=60)
    assert "Socket errors" not in out, out
    assert "Non-2xx" not in out, out
    assert int(out.split(" requests in ")[0].split()[-1]) > 100, out
    assert call(gateway, "DELETE", "/api/v1/services/api-churn")[0] == 200


def test_reload_through_the_api_reads_the_file(gateway):
    status, body = call(gateway, "POST", "/api/v1/reload")
    assert status == 200, body
    assert body["services"] >= 1
    Path(gateway.config).write_text(Path(gateway.config).read_text() + "\nbogus: 1\n")
    try:
        status, body = call(gateway, "POST", "/api/v1/reload")
        assert status == 422, body
        assert "bogus" in body["error"], body
    finally:
        Path(gateway.config).write_text(Path(gateway.config).read_text().replace(
            "\nbogus: 1\n", ""))


def sluicectl(gateway, *args):
    env = dict(os.environ, SLUICE_LAB_PREFIX=gateway.lab.prefix)
    return run(str(Path(__file__).resolve().parents[2] / "tools" / "sluicectl"), "--lab", *args,
               check=False, env=env)


def test_sluicectl_lists_changes_and_explains_refusals(gateway):
    listing = sluicectl(gateway, "services")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "VIP", "PROTOCOL"], listing.stdout
    assert any(r.split()[0] == "web-fullnat" and "3/3 up" in r for r in rows), listing.stdout

    as_json = json.loads(sluicectl(gateway, "--json", "backends", "web-fullnat").stdout)
    assert sorted(b["address"] for b in as_json["backends"]) == BACKENDS

    drained = sluicectl(gateway, "drain", "web-nat", "198.18.1.12")
    assert drained.returncode == 0, drained.stderr
    shown = sluicectl(gateway, "backends", "web-nat").stdout
    assert [l.split()[3] for l in shown.splitlines() if l.startswith("198.18.1.12")] == ["yes"]
    assert sluicectl(gateway, "undrain", "web-nat", "198.18.1.12").returncode == 0
    assert sluicectl(gateway, "weight", "web-nat", "198.18.1.12", "3").returncode == 0
    assert sluicectl(gateway, "weight", "web-nat", "198.18.1.12", "1").returncode == 0

    refused = sluicectl(gateway, "weight", "web-nat", "198.18.1.12", "70000")
    assert refused.returncode == 1
    assert "refused (422)" in refused.stderr and "weight" in refused.stderr, refused.stderr
    missing = sluicectl(gateway, "backends", "no-such-service")
    assert missing.returncode == 1 and "404" in missing.stderr, missing.stderr
    unreachable = sluicectl(gateway, "--api", "http://127.0.0.1:1", "services")
    assert unreachable.returncode == 3
    assert "cannot reach the API at http://127.0.0.1:1" in unreachable.stderr
