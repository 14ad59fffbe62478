"""Discovery in the lab: services whose backends come only from a registry.
A real etcd (Debian's etcd-server) and a real dnsmasq run in the gateway
namespace, where sluiced's control plane reaches them on loopback; the
endpoints they name are the lab's backends. An endpoint put in etcd serves
within a second; one marked terminating is drained and one deleted leaves,
while wrk runs, with no failed request; an etcd restart leaves the last
endpoints in service and the feed stale until etcd is back; the gateway's
own key is in etcd while it runs and gone once it stops. sluicectl shows
each backend's source and each feed's state. Discovery does not depend on
the PMD: one sluiced on net_af_packet serves the module."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, Sluiced, lab_config, run
from test_api import call
from test_balancing import spread, url

ETCD_CLIENT, ETCD_PEER = "127.0.0.1:23790", "127.0.0.1:23800"
DNS_PORT = 5354
PREFIX, GATEWAYS = "/lab/endpoints", "/lab/gateways"
INSTANCE = "lab-gateway"
ETCD_VIP, DNS_VIP, FILE_VIP = "198.18.10.30", "198.18.10.31", "198.18.10.32"
BACKENDS = {"be1": "198.18.1.11", "be2": "198.18.1.12", "be3": "198.18.1.13"}
GRACE_MS = 1500

DISCOVERY = f"""
discovery:
  deletion_grace_ms: {GRACE_MS}
  feeds:
    - name: registry
      type: etcd
      endpoints: ["{ETCD_CLIENT}"]
      prefix: {PREFIX}
      connect_timeout_ms: 500
      request_timeout_ms: 1000
    - name: mesh-dns
      type: dns
      servers: ["127.0.0.1:{DNS_PORT}"]
      services: {{dns-web: _http._tcp.web.mesh.test}}
    - name: local
      type: file
      path: {{endpoints_file}}
  registration:
    endpoints: ["{ETCD_CLIENT}"]
    prefix: {GATEWAYS}
    instance: {INSTANCE}
    ttl_s: 3
"""


def fed_service(name, vip, feed):
    return f"""
  - name: {name}
    vip: {vip}
    protocol: tcp
    port: 80
    mode: fullnat
    local_addresses: [198.18.1.120]
    feeds: [{feed}]
"""


class Etcd:
    """etcd in the gateway namespace, on loopback; stopped by its PID."""

    def __init__(self, lab, directory):
        self.lab, self.directory = lab, directory
        self.process = None

    def start(self):
        self.log = open(self.directory / "etcd.log", "a")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.ns("gw"), "/usr/bin/etcd", "--name", "lab",
             "--data-dir", str(self.directory / "data"),
             "--listen-client-urls", f"http://{ETCD_CLIENT}",
             "--advertise-client-urls", f"http://{ETCD_CLIENT}",
             "--listen-peer-urls", f"http://{ETCD_PEER}",
             "--initial-advertise-peer-urls", f"http://{ETCD_PEER}",
             "--initial-cluster", f"lab=http://{ETCD_PEER}", "--log-level", "error",
             "--logger", "zap"], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while self.ctl("endpoint", "health", check=False).returncode != 0:
            assert self.process.poll() is None, "etcd exited"
            assert time.monotonic() < deadline, "etcd did not start"
            time.sleep(0.2)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self.log.close()

    def ctl(self, *args, check=True):
        return run("ip", "netns", "exec", self.lab.ns("gw"), "/usr/bin/etcdctl",
                   f"--endpoints=http://{ETCD_CLIENT}", "--dial-timeout=2s", *args,
                   check=check)

    def put_endpoint(self, service, backend, **state):
        value = {"address": BACKENDS[backend], "port": 80, **state}
        self.ctl("put", f"{PREFIX}/{service}/{backend}", json.dumps(value))

    def delete_endpoint(self, service, backend):
        self.ctl("del", f"{PREFIX}/{service}/{backend}")

    def get(self, key):
        return self.ctl("get", "--print-value-only", key).stdout.strip()


class Dnsmasq:
    """dnsmasq in the gateway namespace: SRV and A records of the lab's backends."""

    def __init__(self, lab, directory):
        conf = directory / "dnsmasq.conf"
        conf.write_text("local=/test/\nlocal-ttl=1\n"
                        "srv-host=_http._tcp.web.mesh.test,be1.mesh.test,80,0,1\n"
                        "srv-host=_http._tcp.web.mesh.test,be2.mesh.test,80,0,1\n"
                        f"host-record=be1.mesh.test,{BACKENDS['be1']}\n"
                        f"host-record=be2.mesh.test,{BACKENDS['be2']}\n")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("gw"), "/usr/sbin/dnsmasq", "--keep-in-foreground",
             "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1", "--bind-interfaces",
             f"--port={DNS_PORT}", f"--conf-file={conf}", "--pid-file=", "--user=root"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="module")
def registry(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("etcd")
    etcd = Etcd(lab, tmp)
    etcd.start()
    etcd.put_endpoint("etcd-web", "be1")
    dnsmasq = Dnsmasq(lab, tmp)
    yield etcd
    dnsmasq.stop()
    etcd.stop()
    shutil.rmtree(tmp / "data", ignore_errors=True)


@pytest.fixture(scope="module")
def gateway(lab, registry, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("discovery")
    endpoints_file = tmp / "endpoints.yaml"
    endpoints_file.write_text("services:\n  file-web:\n"
                              f"    - {{id: be3, address: {BACKENDS['be3']}, port: 80}}\n")
    config = lab_config("af_packet", tmp)
    text = config.read_text()
    services = (fed_service("etcd-web", ETCD_VIP, "registry")
                + fed_service("dns-web", DNS_VIP, "mesh-dns")
                + fed_service("file-web", FILE_VIP, "local"))
    text = text.replace("\nservices:\n", "\nservices:\n" + services.lstrip("\n"), 1)
    text += DISCOVERY.replace("{endpoints_file}", str(endpoints_file))
    config.write_text(text)
    sluiced = Sluiced(lab, config, tmp / "sluiced.log")
    sluiced.pmd = "af_packet"
    sluiced.endpoints_file = endpoints_file
    yield sluiced
    sluiced.stop()


def backends(gateway, service):
    status, body = call(gateway, "GET", f"/api/v1/services/{service}/backends")
    assert status == 200, body
    return {b["address"]: b for b in body["backends"]}


def feed(gateway, name):
    status, body = call(gateway, "GET", "/api/v1/feeds")
    assert status == 200, body
    return next(f for f in body["feeds"] if f["name"] == name)


def wait_for(predicate, seconds, step=0.05):
    """Seconds it took predicate() to hold, or None when it never did."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    return None


def answers(lab, vip, count=30):
    outcome = spread(lab, vip, count)
    assert outcome["failures"] == 0, outcome
    return outcome["answers"]


def sluicectl(gateway, *args):
    env_prefix = gateway.lab.prefix
    return run("/usr/bin/python3", str(REPO / "tools" / "sluicectl"), "--netns",
               gateway.lab.ns("gw"), "--config", str(gateway.config), *args, check=False,
               env={"SLUICE_LAB_PREFIX": env_prefix, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def test_a_service_fed_by_etcd_alone_serves(gateway):
    assert wait_for(lambda: BACKENDS["be1"] in backends(gateway, "etcd-web"), 5) is not None
    assert set(answers(gateway.lab, ETCD_VIP)) == {"be1"}
    sources = backends(gateway, "etcd-web")[BACKENDS["be1"]]["sources"]
    assert sources == [{"source": "feed:registry", "id": "be1", "state": "active"}], sources
    state = feed(gateway, "registry")
    assert state["state"] == "current" and state["bound_to"] == ["etcd-web"], state


def test_a_put_serves_within_a_second(gateway, registry):
    lab = gateway.lab
    put_at = time.monotonic()
    registry.put_endpoint("etcd-web", "be2", zone="lab-b", labels={"version": "v2"})
    # A new connection each time: the first one that reaches be2.
    probe = ["curl", "-s", "--noproxy", "*", "-m", "1", url(ETCD_VIP)]
    seen = wait_for(lambda: lab.exec("client", *probe, check=False).stdout.strip() == "be2",
                    5, step=0)
    assert seen is not None, gateway.output()
    served_after = time.monotonic() - put_at
    print(f"etcd put to a request served by the new endpoint: {served_after * 1000:.0f} ms")
    assert served_after < 1.0


def test_sluicectl_shows_sources_and_feeds(gateway):
    shown = sluicectl(gateway, "backends", "etcd-web")
    assert shown.returncode == 0, shown.stderr
    assert "SOURCE" in shown.stdout and "feed:registry/be2" in shown.stdout, shown.stdout
    source = backends(gateway, "etcd-web")[BACKENDS["be2"]]["sources"][0]
    assert source["zone"] == "lab-b" and source["labels"] == {"version": "v2"}, source
    shown = sluicectl(gateway, "feeds")
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()[1:] if line}
    assert "current" in lines["registry"] and "etcd" in lines["registry"], shown.stdout
    assert "mesh-dns" in lines and "local" in lines, shown.stdout
    assert f"registration: {GATEWAYS}/{INSTANCE}: registered" in shown.stdout, shown.stdout


def test_terminating_then_deleted_under_wrk_fails_no_request(gateway, registry):
    lab = gateway.lab
    registry.put_endpoint("etcd-web", "be3")
    assert wait_for(lambda: BACKENDS["be3"] in backends(gateway, "etcd-web"), 5) is not None
    wrk = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns("client"), "wrk", "-t", "1", "-c", "8", "-d", "8s",
         "--timeout", "5s", url(ETCD_VIP)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    time.sleep(1.5)
    registry.put_endpoint("etcd-web", "be3", ready=False, terminating=True)
    assert wait_for(lambda: backends(gateway, "etcd-web")[BACKENDS["be3"]]["drained"], 5)
    # Drained: new connections go elsewhere.
    assert "be3" not in answers(lab, ETCD_VIP)
    registry.delete_endpoint("etcd-web", "be3")
    leaving = backends(gateway, "etcd-web")[BACKENDS["be3"]]
    assert wait_for(lambda: backends(gateway, "etcd-web").get(BACKENDS["be3"], {}).get(
        "sources", [{}])[0].get("state") == "leaving", 5) is not None, leaving
    # Gone after the deletion grace.
    assert wait_for(lambda: BACKENDS["be3"] not in backends(gateway, "etcd-web"),
                    GRACE_MS / 1000 + 3) is not None
    out, err = wrk.communicate(timeout=60)
    assert "Socket errors" not in out, out
    assert "Non-2xx" not in out, out
    assert int(out.split(" requests in ")[0].split()[-1]) > 100, out


def test_an_etcd_restart_keeps_the_last_endpoints(gateway, registry):
    lab = gateway.lab
    registry.stop()
    try:
        assert wait_for(lambda: feed(gateway, "registry")["state"] == "stale", 10) is not None
        metrics = call(gateway, "GET", "/metrics")[1]
        assert 'sluice_discovery_feed_stale{feed="registry",type="etcd"} 1' in metrics
        # The last known endpoints still serve.
        assert set(answers(lab, ETCD_VIP)) == {"be1", "be2"}
    finally:
        registry.start()
    assert wait_for(lambda: feed(gateway, "registry")["state"] == "current", 15) is not None
    registry.put_endpoint("etcd-web", "be3")
    assert wait_for(lambda: BACKENDS["be3"] in backends(gateway, "etcd-web"), 5) is not None
    assert "be3" in answers(lab, ETCD_VIP, 60)
    metrics = call(gateway, "GET", "/metrics")[1]
    assert 'sluice_discovery_feed_stale{feed="registry",type="etcd"} 0' in metrics


def test_a_compaction_is_survived(gateway, registry):
    status = json.loads(registry.ctl("endpoint", "status", "-w", "json").stdout)
    revision = status[0]["Status"]["header"]["revision"]
    registry.ctl("compact", str(revision))
    registry.delete_endpoint("etcd-web", "be3")
    assert wait_for(lambda: BACKENDS["be3"] not in backends(gateway, "etcd-web"),
                    GRACE_MS / 1000 + 5) is not None
    assert feed(gateway, "registry")["state"] == "current"


def test_a_dns_srv_service_serves_its_targets(gateway):
    assert wait_for(lambda: len(backends(gateway, "dns-web")) == 2, 10) is not None
    assert set(answers(gateway.lab, DNS_VIP, 40)) == {"be1", "be2"}
    sources = backends(gateway, "dns-web")[BACKENDS["be2"]]["sources"]
    assert sources[0]["source"] == "feed:mesh-dns", sources


def test_a_file_feed_keeps_its_last_good_file(gateway):
    assert set(answers(gateway.lab, FILE_VIP)) == {"be3"}
    gateway.endpoints_file.write_text("services: {file-web: [{id: be2, address: nowhere}]}\n")
    assert wait_for(lambda: feed(gateway, "local")["state"] == "stale", 5) is not None
    assert "address" in feed(gateway, "local")["detail"]
    assert set(answers(gateway.lab, FILE_VIP)) == {"be3"}
    gateway.endpoints_file.write_text(
        f"services: {{file-web: [{{id: be2, address: {BACKENDS['be2']}, port: 80}}]}}\n")
    assert wait_for(lambda: BACKENDS["be2"] in backends(gateway, "file-web"), 5) is not None


def test_a_reload_keeps_the_feeds_and_their_endpoints(gateway):
    before = backends(gateway, "etcd-web")
    status, body = call(gateway, "POST", "/api/v1/reload")
    assert status == 200, body
    assert backends(gateway, "etcd-web").keys() == before.keys()
    assert feed(gateway, "registry")["state"] == "current"
    assert "restarted with new settings" not in gateway.output()


def test_a_feed_backend_is_changed_in_its_registry_not_the_api(gateway):
    status, body = call(gateway, "POST", f"/api/v1/services/etcd-web/backends/{BACKENDS['be1']}"
                        "/drain")
    assert status == 409, body
    assert "feed:registry" in body["error"], body


def test_the_gateway_registers_itself_until_it_stops(gateway, registry):
    key = f"{GATEWAYS}/{INSTANCE}"
    value = json.loads(registry.get(key))
    assert value["instance"] == INSTANCE
    assert {v["vip"] for v in value["vips"]} >= {ETCD_VIP, DNS_VIP, FILE_VIP}, value
    assert gateway.stop() == 0
    assert registry.get(key) == "", "the key outlived the gateway"
