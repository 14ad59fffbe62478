#!/usr/bin/python3
"""Writes the packet parser's seed corpus (tests/fuzz/corpus/packet_parse):
one well-formed frame per layer combination the parser knows, so the fuzzer
starts from every branch. Run again only to change the seeds."""

from pathlib import Path

from scapy.all import (ARP, Dot1Q, Ether, ICMP, ICMPv6EchoRequest, ICMPv6ND_NS,
                       ICMPv6NDOptSrcLLAddr, IP, IPOption_NOP, IPv6, IPv6ExtHdrDestOpt,
                       IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, Raw, TCP,
                       UDP)

GW, CLIENT = "02:00:00:00:00:01", "02:00:00:00:00:02"
V4, GW4 = "198.18.0.2", "198.18.0.1"
V6, GW6 = "2001:db8:0:1::2", "2001:db8:0:1::1"
eth = Ether(dst=GW, src=CLIENT)

SEEDS = {
    "arp_request": Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT) / ARP(psrc=V4, pdst=GW4),
    "icmp_echo": eth / IP(src=V4, dst=GW4) / ICMP() / Raw(b"x" * 32),
    "tcp_syn_options": eth / IP(src=V4, dst=GW4, options=[IPOption_NOP()] * 4) /
                       TCP(flags="S", options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]),
    "udp_vlan": eth / Dot1Q(vlan=10) / IP(src=V4, dst=GW4) / UDP(dport=53) / Raw(b"q" * 12),
    "udp_qinq": Ether(dst=GW, src=CLIENT, type=0x88a8) / Dot1Q(vlan=1) / Dot1Q(vlan=2) /
                IP(src=V4, dst=GW4) / UDP(),
    "ipv4_fragment": eth / IP(src=V4, dst=GW4, flags="MF", frag=0) / UDP(len=3000) / Raw(b"f" * 16),
    "ipv4_later_fragment": eth / IP(src=V4, dst=GW4, frag=100, proto=17) / Raw(b"f" * 24),
    "icmpv6_echo": eth / IPv6(src=V6, dst=GW6) / ICMPv6EchoRequest(data=b"y" * 32),
    "neighbor_solicitation": Ether(dst="33:33:ff:00:00:01", src=CLIENT) /
                             IPv6(src=V6, dst="ff02::1:ff00:1", hlim=255) /
                             ICMPv6ND_NS(tgt=GW6) / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT),
    "ipv6_extensions_tcp": eth / IPv6(src=V6, dst=GW6) / IPv6ExtHdrHopByHop() /
                           IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() / TCP(flags="S"),
    "ipv6_fragment_udp": eth / IPv6(src=V6, dst=GW6) / IPv6ExtHdrFragment(m=1) / UDP(),
    "lldp_other_ethertype": Ether(dst="01:80:c2:00:00:0e", src=CLIENT, type=0x88cc) / Raw(b"\0" * 46),
}

out = Path(__file__).parent / "corpus" / "packet_parse"
out.mkdir(parents=True, exist_ok=True)
for name, frame in SEEDS.items():
    (out / name).write_bytes(bytes(frame))
print(f"{len(SEEDS)} seeds in {out}")
