"""Two workers in the lab, sharing one CPU (cores.cpus places lcore 2 on
CPU 1: the machine has two). Each port has two queues; net_af_packet's fanout
hashes each packet to one of them, so a flow's answers often reach the other
worker, which must pass them to the owner (docs/architecture.md, "Several
workers"). Every connection and datagram must still come back."""

import json

import pytest

from conftest import Sluiced, lab_config
from test_balancing import SPREAD, UDP_SPREAD

VIPS = ["198.18.10.1", "198.18.10.2", "2001:db8:10::1"]


@pytest.fixture(scope="module")
def two_workers(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workers")
    config = lab_config("af_packet", tmp, "workers.yaml")
    text = config.read_text()
    text = text.replace("  workers: [1]           # one worker; it polls one RX queue on each port",
                        "  workers: [1, 2]\n  cpus: {2: 1}")
    assert "cpus: {2: 1}" in text
    config.write_text(text)
    sluiced = Sluiced(lab, config, tmp / "sluiced.log")
    yield sluiced
    sluiced.stop()


def per_worker(counters, name):
    return [counters.get(f"{name}.{worker}", 0) for worker in ("0", "1")]


@pytest.mark.parametrize("vip", VIPS)
def test_connections_through_two_workers(two_workers, vip):
    result = two_workers.lab.exec("client", "/usr/bin/python3", "-c", SPREAD, vip, "300",
                                  timeout=300)
    outcome = json.loads(result.stdout)
    assert outcome["failures"] == 0, outcome
    assert sorted(outcome["answers"]) == ["be1", "be2", "be3"], outcome


def test_datagrams_and_fragments_through_two_workers(two_workers):
    lab = two_workers.lab
    outcome = json.loads(lab.exec("client", "/usr/bin/python3", "-c", UDP_SPREAD,
                                  "198.18.10.5", "300", timeout=300).stdout)
    assert outcome["failures"] == 0, outcome
    outcome = json.loads(lab.exec("client", "/usr/bin/python3", "-c", UDP_SPREAD,
                                  "2001:db8:10::5", "60", "4000", timeout=300).stdout)
    assert outcome["failures"] == 0, outcome


def test_both_workers_worked_and_passed_packets(two_workers):
    counters = two_workers.counters(by_worker=True)
    assert "answers are steered in software" in two_workers.output()
    assert all(n > 0 for n in per_worker(counters, "sluice_worker_rx_packets_total")), counters
    assert all(n > 0 for n in per_worker(counters, "sluice_worker_new_flows_total")), counters
    steered_out = per_worker(counters, "sluice_worker_steered_out_packets_total")
    steered_in = per_worker(counters, "sluice_worker_steered_in_packets_total")
    assert sum(steered_out) > 0 and sum(steered_out) == sum(steered_in), counters
    assert sum(per_worker(counters, "sluice_worker_drops_total.steering_full")) == 0
