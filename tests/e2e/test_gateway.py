"""sluiced on a real PMD (net_af_packet, net_af_xdp) in the lab: it answers
ping and ping6 for its addresses through its DPDK ports, carries the gateway
kernel's own TCP through the exception path, drops malformed frames by
reason, refuses what it cannot start, and stops cleanly on SIGTERM."""

import subprocess
import textwrap

import pytest

from conftest import SLUICED, Sluiced, lab_config, run

CLIENT_SIDE_V4, CLIENT_SIDE_V6 = "198.18.0.1", "2001:db8:0:1::1"
BACKEND_SIDE_V4, BACKEND_SIDE_V6 = "198.18.1.1", "2001:db8:0:2::1"


def ping(lab, namespace, address, count=3):
    family = "-6" if ":" in address else "-4"
    return lab.exec(namespace, "ping", family, "-c", str(count), "-i", "0.2", "-W", "2",
                    address, check=False)


def test_ping_from_client(gateway):
    before = gateway.counters()
    result = ping(gateway.lab, "client", CLIENT_SIDE_V4)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0% packet loss" in result.stdout
    after = gateway.counters()
    assert after["sluice_worker_icmp_echo_replies_total"] - before["sluice_worker_icmp_echo_replies_total"] >= 3
    assert after["sluice_port_rx_packets_total.client"] > before["sluice_port_rx_packets_total.client"]


def test_ping6_from_client(gateway):
    before = gateway.counters()
    result = ping(gateway.lab, "client", CLIENT_SIDE_V6)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0% packet loss" in result.stdout
    after = gateway.counters()
    assert (after["sluice_worker_icmpv6_echo_replies_total"]
            - before["sluice_worker_icmpv6_echo_replies_total"]) >= 3


def test_ping_from_backend_side(gateway):
    for address in (BACKEND_SIDE_V4, BACKEND_SIDE_V6):
        result = ping(gateway.lab, "be2", address, count=2)
        assert result.returncode == 0, result.stdout + result.stderr


def test_arp_and_neighbor_discovery_answered(gateway):
    lab = gateway.lab
    # Forget what the client learnt, then ping again: the gateway must answer
    # the ARP request and the neighbor solicitation itself.
    lab.exec("client", "ip", "neigh", "flush", "dev", "eth0")
    before = gateway.counters()
    assert ping(lab, "client", CLIENT_SIDE_V4, count=1).returncode == 0
    assert ping(lab, "client", CLIENT_SIDE_V6, count=1).returncode == 0
    after = gateway.counters()
    assert after["sluice_worker_arp_replies_total"] > before["sluice_worker_arp_replies_total"]
    assert (after["sluice_worker_neighbor_advertisements_total"]
            > before["sluice_worker_neighbor_advertisements_total"])
    neighbours = lab.exec("client", "ip", "neigh", "show", "dev", "eth0").stdout
    gateway_mac = lab.mac("gw", "gw-client")
    assert f"{CLIENT_SIDE_V4} lladdr {gateway_mac}" in neighbours
    assert f"{CLIENT_SIDE_V6} lladdr {gateway_mac}" in neighbours


def test_vips_answer_arp_and_neighbor_discovery(gateway):
    """A client that sees a VIP on its own link (a host route without a
    router) asks ARP and ND for it: the gateway answers for its VIPs as for
    its port's addresses, and the VIPs then serve over that route."""
    lab = gateway.lab
    vips = ("198.18.10.1", "2001:db8:10::1")
    gateway_mac = lab.mac("gw", "gw-client")
    before = gateway.counters()
    try:
        for vip in vips:
            family = "-6" if ":" in vip else "-4"
            lab.exec("client", "ip", family, "route", "add", vip, "dev", "eth0")
        for vip in vips:
            url = f"http://[{vip}]/" if ":" in vip else f"http://{vip}/"
            result = lab.exec("client", "curl", "-sS", "--noproxy", "*", "-m", "10", url,
                              check=False)
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() in ("be1", "be2", "be3"), result.stdout
        neighbours = lab.exec("client", "ip", "neigh", "show", "dev", "eth0").stdout
        for vip in vips:
            assert f"{vip} lladdr {gateway_mac}" in neighbours, neighbours
        after = gateway.counters()
        assert after["sluice_worker_arp_replies_total"] > before["sluice_worker_arp_replies_total"]
        assert (after["sluice_worker_neighbor_advertisements_total"]
                > before["sluice_worker_neighbor_advertisements_total"])
    finally:
        for vip in vips:
            family = "-6" if ":" in vip else "-4"
            lab.exec("client", "ip", family, "route", "del", vip, "dev", "eth0", check=False)
            lab.exec("client", "ip", "neigh", "del", vip, "dev", "eth0", check=False)


@pytest.mark.parametrize("url,body", [
    ("http://198.18.1.11/", "be1"),
    ("http://[2001:db8:0:2::13]/", "be3"),
])
def test_kernel_tcp_through_exception_path(gateway, url, body):
    """The gateway namespace's kernel reaches a backend over TCP: its packets
    leave through the TAP and the DPDK port, the answers come back the same
    way."""
    before = gateway.counters()
    result = gateway.lab.exec("gw", "curl", "-sS", "--noproxy", "*", "-m", "10", url,
                              check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == body + "\n"
    after = gateway.counters()
    assert after["sluice_worker_to_kernel_packets_total"] > before["sluice_worker_to_kernel_packets_total"]
    assert (after["sluice_worker_from_kernel_packets_total"]
            > before["sluice_worker_from_kernel_packets_total"])


MALFORMED_FRAMES = textwrap.dedent("""
    import sys
    from scapy.all import Ether, IP, IPv6, TCP, UDP, Raw, sendp, conf
    conf.verb = 0
    gw_mac = sys.argv[1]
    eth = Ether(dst=gw_mac)
    frames = {
        "bad_ipv4_checksum": eth / IP(dst="198.18.0.1", chksum=0x1234) / UDP(),
        "bad_tcp_data_offset": eth / IP(dst="198.18.0.1") / TCP(dataofs=3),
        "ipv4_total_length_beyond_frame": eth / IP(dst="198.18.0.1", len=1000) / UDP(),
        "truncated_ipv4": Ether(dst=gw_mac, type=0x0800) / Raw(b"\\x45\\x00\\x00\\x30"),
        "bad_ipv4_ihl": eth / IP(dst="198.18.0.1", ihl=3) / UDP(),
        "ipv6_payload_beyond_frame": eth / IPv6(dst="2001:db8:0:1::1", plen=500) / UDP(),
        "bad_udp_length": eth / IP(dst="198.18.0.1") / UDP(len=4),
    }
    for name, frame in frames.items():
        sendp(frame, iface="eth0", count=int(sys.argv[2]))
    print(" ".join(frames))
""")


def test_malformed_frames_dropped_by_reason(gateway):
    lab = gateway.lab
    count = 4
    before = gateway.counters()
    result = lab.exec("client", "/usr/bin/python3", "-c", MALFORMED_FRAMES,
                      lab.mac("gw", "gw-client"), str(count))
    reasons = result.stdout.split()
    assert len(reasons) == 7
    after = gateway.counters()
    for reason in reasons:
        key = f"sluice_worker_drops_total.{reason}"
        assert after.get(key, 0) - before.get(key, 0) == count, reason
    # Nothing malformed reached the kernel: the client sees no answer and the
    # gateway still answers ping.
    assert ping(lab, "client", CLIENT_SIDE_V4, count=1).returncode == 0


def test_device_that_cannot_start_is_refused(gateway, tmp_path):
    """A valid config whose device does not exist stops start-up with exit 1,
    names the port and leaves no TAP behind; the running gateway is not
    disturbed."""
    config = lab_config(gateway.pmd, tmp_path, "missing.yaml")
    text = config.read_text().replace("iface=gw-client", "iface=gw-nowhere")
    text = text.replace("file_prefix: sluice-", "file_prefix: sluice-missing-")
    text = text.replace("tap: tap-client", "tap: tap-missing")
    config.write_text(text)
    result = gateway.lab.exec("gw", str(SLUICED), "--config", str(config), check=False,
                              timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "sluiced: port client (net_af_" in result.stderr
    links = gateway.lab.exec("gw", "ip", "-br", "link").stdout
    assert "tap-missing" not in links
    assert ping(gateway.lab, "client", CLIENT_SIDE_V4, count=1).returncode == 0


def test_bad_config_refused_before_start(gateway, tmp_path):
    config = tmp_path / "bad.yaml"
    text = lab_config(gateway.pmd, tmp_path).read_text()
    config.write_text(text.replace("    addresses: [198.18.0.1/24", "    adresses: [198.18.0.1/24"))
    line = next(i for i, l in enumerate(config.read_text().splitlines(), 1) if "adresses" in l)
    result = run(str(SLUICED), "--config", str(config), check=False)
    assert result.returncode == 2
    message = result.stderr.strip()
    assert message.startswith(f"{config}:{line}:5: ports[0].adresses: unknown key"), message
    assert len(message.splitlines()) == 1


def test_sigterm_stops_cleanly(gateway):
    """Last test of each PMD: workers and ports stop, final counters are
    printed, the TAPs go away."""
    returncode = gateway.stop()
    output = gateway.output()
    assert returncode == 0, output
    assert "sluiced: SIGTERM, stopping" in output
    assert "sluiced: workers stopped; final counters" in output
    assert output.rstrip().endswith("sluiced: stopped")
    assert "sluice_worker_rx_packets_total" in output.split("final counters")[-1]
    links = gateway.lab.exec("gw", "ip", "-br", "link").stdout
    assert "tap-client" not in links and "tap-backend" not in links
