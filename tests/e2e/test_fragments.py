"""Fragmented UDP datagrams through the gateway, both ways: the client's
kernel cuts a large datagram into fragments, the gateway balances each
fragment as its datagram (docs/architecture.md, "Fragments"), the backend's
kernel reassembles it and answers with a larger datagram, fragmented in turn,
which the client's kernel must be able to put back together.

net_af_packet cannot take IPv4 fragments: DPDK joins its sockets to a fanout
group with PACKET_FANOUT_FLAG_DEFRAG, so the kernel reassembles IPv4
datagrams before the PMD sees them, and a datagram larger than a ring frame
arrives cut short. The gateway must drop those, counted, never forward them."""

import json

import pytest

from test_balancing import UDP4, UDP6, UDP_SPREAD


def send_large_datagrams(gateway, vip, count):
    result = gateway.lab.exec("client", "/usr/bin/python3", "-c", UDP_SPREAD, vip,
                              str(count), "4000", timeout=300)
    return json.loads(result.stdout)


@pytest.mark.parametrize("vip", [UDP4, UDP6])
def test_fragmented_datagrams_reach_one_backend_and_return(gateway, vip):
    if gateway.pmd == "af_packet" and vip == UDP4:
        pytest.skip("net_af_packet's fanout reassembles IPv4: see the next test")
    before = gateway.counters()
    outcome = send_large_datagrams(gateway, vip, 60)
    after = gateway.counters()
    assert outcome["failures"] == 0, (outcome, after)
    assert sorted(outcome["answers"]) == ["be1", "be2", "be3"], outcome
    # Two later fragments each way per datagram, at least.
    grown = (after["sluice_worker_later_fragments_total"]
             - before.get("sluice_worker_later_fragments_total", 0))
    assert grown >= 60 * 2 * 2, (before, after)
    assert after.get("sluice_worker_drops_total.fragment_without_first", 0) == \
        before.get("sluice_worker_drops_total.fragment_without_first", 0)


def test_ipv4_datagrams_the_kernel_reassembled_are_dropped_by_reason(gateway):
    if gateway.pmd != "af_packet":
        pytest.skip("only net_af_packet's kernel side reassembles")
    before = gateway.counters()
    outcome = send_large_datagrams(gateway, UDP4, 5)
    after = gateway.counters()
    assert outcome["failures"] == 5, outcome
    reason = "sluice_worker_drops_total.ipv4_total_length_beyond_frame"
    assert after.get(reason, 0) - before.get(reason, 0) == 5, (before, after)
    assert after["sluice_worker_to_backend_packets_total"] == before["sluice_worker_to_backend_packets_total"]
