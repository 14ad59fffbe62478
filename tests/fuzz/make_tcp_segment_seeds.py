#!/usr/bin/python3
"""Writes the TCP segment codec's seed corpus (tests/fuzz/corpus/tcp_segment):
TCP headers alone (the IP payload, as parse_segment sees it) with each option
the codec knows, one it does not, an EOL, and two malformed ones, so the
fuzzer starts from every branch. Run again only to change the seeds."""

from pathlib import Path

from scapy.all import TCP, Raw, raw

SEEDS = {
    "syn_linux": TCP(sport=40000, dport=80, flags="S", window=64240,
                     options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (2882400001, 0)),
                              ("NOP", None), ("WScale", 7)]),
    "syn_no_timestamps": TCP(flags="S", options=[("MSS", 1460), ("NOP", None), ("NOP", None),
                                                 ("SAckOK", b""), ("NOP", None), ("WScale", 7)]),
    "ack_sack_timestamps": TCP(flags="PA", options=[("NOP", None), ("NOP", None),
                                                    ("Timestamp", (1, 2)), ("NOP", None),
                                                    ("NOP", None),
                                                    ("SAck", (3000, 4000, 5000, 6000, 7000, 8000))])
                           / Raw(b"hello"),
    "ack_four_sack_blocks": TCP(flags="A", options=[("NOP", None), ("NOP", None),
                                                    ("SAck", tuple(range(1000, 9000, 1000)))]),
    "bare_ack_payload": TCP(flags="A") / Raw(b"GET / HTTP/1.1\r\n\r\n"),
}

out = Path(__file__).parent / "corpus" / "tcp_segment"
out.mkdir(parents=True, exist_ok=True)
for name, segment in SEEDS.items():
    (out / name).write_bytes(raw(segment))

# Built by hand: scapy would fix up what these break.
header = bytearray(raw(TCP(flags="S")))
header[12] = 0x80  # 12 option bytes follow
# An unknown kind (30, MPTCP) skipped by its length, MSS, then EOL and junk.
(out / "unknown_then_eol").write_bytes(
    bytes(header) + bytes([30, 6, 0x10, 0, 0, 0, 2, 4, 5, 0xb4, 0, 0xff]))
(out / "bad_mss_length").write_bytes(bytes(header) + bytes([2, 3, 5, 1, 1, 1, 1, 1, 1, 1, 1, 0]))
