"""The userspace TCP against Linux's TCP, before the workers run it: the
stack (build/tests/tcp_tun_peer) sits behind a TUN device in a namespace of
its own, and the kernel of that namespace is its peer. 100 MB from a Linux
client reach a sink intact; the same under loss, reordering, delay and
duplication (applied by the peer to Linux's packets: this kernel has no
sch_netem); an active open receives 100 MB from a Linux server, and sends
50 MB to one while losing 1% of its own segments; 1,000
connections at once; connections closed from either side leave nothing
behind once TIME-WAIT is over."""

import os
import queue
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import LAB_PREFIX, REPO, run

PEER = Path(os.environ.get("TCP_TUN_PEER", REPO / "build" / "tests" / "tcp_tun_peer"))
NETNS = f"{LAB_PREFIX}-tcpi"
KERNEL_IP, STACK_IP = "198.18.50.1", "198.18.50.2"
MSL_S = 2  # tcp_tun_peer's: TIME-WAIT lasts 4 s
MB = 1 << 20


@pytest.fixture(scope="module")
def netns():
    run("ip", "netns", "del", NETNS, check=False)
    run("ip", "netns", "add", NETNS)
    try:
        for command in (["ip", "link", "set", "lo", "up"],
                        ["ip", "tuntap", "add", "dev", "tun0", "mode", "tun"],
                        # A NIC's ring, not the TUN default's 500 packets: 1,000
                        # connections' first flights would overflow it.
                        ["ip", "link", "set", "tun0", "txqueuelen", "10000"],
                        ["ip", "link", "set", "tun0", "up"],
                        ["ip", "addr", "add", f"{KERNEL_IP}/24", "dev", "tun0"]):
            run("ip", "netns", "exec", NETNS, *command)
        yield NETNS
    finally:
        run("ip", "netns", "del", NETNS, check=False)


class Peer:
    """tcp_tun_peer in the namespace, stopped by its PID. A thread reads its
    output as it comes, so that it never blocks on a full pipe."""

    def __init__(self, netns, *args):
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", netns, str(PEER), "--tun", "tun0", "--address", STACK_IP,
             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        assert self.lines.get(timeout=10).strip() == "ready"

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def closed(self, count=1, timeout=300):
        """The next `count` lines about closed connections, as dicts."""
        found = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "tcp_tun_peer exited"
            if line.startswith("closed "):
                found.append(dict(f.split("=", 1) for f in line.split()[1:]))
        return found

    def stop(self):
        """Stops it; its last line, the counters, as a dict."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self.reader.join(10)
        while True:
            line = self.lines.get(timeout=10)
            assert line is not None, "no counters from tcp_tun_peer"
            if line.startswith("counters "):
                return {k: int(v) for k, v in (f.split("=", 1) for f in line.split()[1:])}


def in_netns(netns, script, *args, timeout=600):
    result = subprocess.run(["ip", "netns", "exec", netns, "/usr/bin/python3", "-c",
                             textwrap.dedent(script), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# A Linux client that sends SIZE random bytes, closes, and prints their SHA-256.
SEND = """
    import hashlib, os, socket, sys
    host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    digest = hashlib.sha256()
    s = socket.create_connection((host, port), timeout=60)
    left = size
    while left:
        chunk = os.urandom(min(left, 1 << 20))
        digest.update(chunk)
        s.sendall(chunk)
        left -= len(chunk)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()
    print(digest.hexdigest())
"""


def test_a_linux_client_sends_100_mb_to_a_userspace_sink(netns):
    peer = Peer(netns, "--listen", "9000", "--app", "sink")
    try:
        sha = in_netns(netns, SEND, STACK_IP, 9000, 100 * MB)
        [closed] = peer.closed()
        assert closed["reason"] == "normal", closed
        assert int(closed["received"]) == 100 * MB
        assert closed["sha256"] == sha
    finally:
        counters = peer.stop()
    assert counters["connections"] == 0, counters


def test_the_same_under_loss_reordering_delay_and_duplication(netns):
    peer = Peer(netns, "--listen", "9000", "--app", "sink", "--loss", "0.01",
                "--reorder", "0.005", "--delay-ms", "20", "--duplicate", "0.001")
    started = time.monotonic()
    try:
        sha = in_netns(netns, SEND, STACK_IP, 9000, 100 * MB, timeout=900)
        [closed] = peer.closed()
        assert closed["reason"] == "normal", closed
        assert closed["sha256"] == sha
    finally:
        counters = peer.stop()
    print(f"100 MB under 1% loss, 20 ms: {time.monotonic() - started:.1f} s, {counters}")
    assert counters["lost"] > 100 and counters["reordered"] > 10, counters
    assert counters["duplicated"] > 0, counters


# The start of a Linux server: accepts its first client on port argv[1],
# after saying it listens.
ACCEPT = """
    import hashlib, os, socket, sys
    port = int(sys.argv[1])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(1)
    print("listening", flush=True)
    connection, _ = listener.accept()
    digest = hashlib.sha256()
"""

# A Linux server that sends argv[2] random bytes to its first client,
# closes, and prints their SHA-256.
SERVE = ACCEPT + """
    left = int(sys.argv[2])
    while left:
        chunk = os.urandom(min(left, 1 << 20))
        digest.update(chunk)
        connection.sendall(chunk)
        left -= len(chunk)
    connection.close()
    print(digest.hexdigest(), flush=True)
"""


def test_an_active_open_receives_100_mb_from_a_linux_server(netns):
    server = subprocess.Popen(["ip", "netns", "exec", netns, "/usr/bin/python3", "-c",
                               textwrap.dedent(SERVE), "9100", str(100 * MB)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        peer = Peer(netns, "--connect", f"{KERNEL_IP}:9100", "--app", "sink")
        [closed] = peer.closed()
        sha = server.stdout.readline().strip()
        assert closed["reason"] == "normal", closed
        assert int(closed["received"]) == 100 * MB
        assert closed["sha256"] == sha
        counters = peer.stop()
        assert counters["connections"] == 0, counters
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(10)


# A Linux server that reads its first client to the end, closes, and prints
# how many bytes came and their SHA-256.
DRAIN = ACCEPT + """
    size = 0
    while True:
        chunk = connection.recv(1 << 20)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    connection.close()
    print(size, digest.hexdigest(), flush=True)
"""


def test_a_userspace_source_recovers_from_its_own_losses_to_a_linux_sink(netns):
    # 1% of the stack's segments lost: its SACK recovery and CUBIC against
    # Linux's receiver (SACK blocks, delayed ACKs, D-SACK).
    server = subprocess.Popen(["ip", "netns", "exec", netns, "/usr/bin/python3", "-c",
                               textwrap.dedent(DRAIN), "9300"],
                              stdout=subprocess.PIPE, text=True)
    started = time.monotonic()
    try:
        assert server.stdout.readline().strip() == "listening"
        peer = Peer(netns, "--connect", f"{KERNEL_IP}:9300", "--app", "source",
                    "--bytes", str(50 * MB), "--loss-out", "0.01")
        [closed] = peer.closed()
        size, sha = server.stdout.readline().split()
        assert closed["reason"] == "normal", closed
        assert int(closed["sent"]) == 50 * MB and int(size) == 50 * MB, (closed, size)
        assert closed["sha256"] == sha
        counters = peer.stop()
        print(f"50 MB with 1% of the stack's segments lost: "
              f"{time.monotonic() - started:.1f} s, {closed}, {counters}")
        assert counters["lost_out"] > 100, counters
        assert counters["connections"] == 0, counters
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(10)


# COUNT connections open at once, each sending SIZE bytes and closing; prints
# how many were answered by an orderly close.
MANY = """
    import selectors, socket, sys
    host, port, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, port))
        sockets.append(s)
    selector = selectors.DefaultSelector()
    for s in sockets:
        selector.register(s, selectors.EVENT_WRITE, [size])
    finished = 0
    while finished < count:
        for key, events in selector.select(timeout=30):
            s, left = key.fileobj, key.data
            if events & selectors.EVENT_WRITE and left[0]:
                left[0] -= s.send(b"x" * left[0])
                if not left[0]:
                    s.shutdown(socket.SHUT_WR)
                    selector.modify(s, selectors.EVENT_READ, left)
            elif events & selectors.EVENT_READ:
                if s.recv(4096) == b"":
                    selector.unregister(s)
                    s.close()
                    finished += 1
    print(finished)
"""


def test_a_thousand_concurrent_connections(netns):
    peer = Peer(netns, "--listen", "9000", "--app", "sink")
    try:
        assert in_netns(netns, MANY, STACK_IP, 9000, 1000, 20000) == "1000"
        closed = peer.closed(1000)
        assert all(c["reason"] == "normal" and c["received"] == "20000" for c in closed)
    finally:
        counters = peer.stop()
    assert counters["connections"] == 0, counters
    assert counters["accepted"] == 1000, counters


def test_closing_from_either_side_leaves_no_state(netns):
    # The Linux client closes first: the stack is in LAST-ACK, then gone.
    peer = Peer(netns, "--listen", "9000", "--app", "echo")
    try:
        in_netns(netns, SEND, STACK_IP, 9000, MB)
        peer.closed()
    finally:
        counters = peer.stop()
    assert counters["connections"] == 0 and counters["time_wait"] == 0, counters

    # The stack closes first: TIME-WAIT, gone after 2 MSL.
    server = subprocess.Popen(["ip", "netns", "exec", netns, "/usr/bin/python3", "-c",
                               textwrap.dedent("""
                                   import socket
                                   listener = socket.socket()
                                   listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                                   listener.bind(("0.0.0.0", 9200))
                                   listener.listen(1)
                                   print("listening", flush=True)
                                   connection, _ = listener.accept()
                                   while connection.recv(65536):
                                       pass
                                   connection.close()
                               """)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        peer = Peer(netns, "--connect", f"{KERNEL_IP}:9200", "--app", "source",
                    "--bytes", str(MB), "--linger-ms", str(2 * MSL_S * 1000 + 500))
        [closed] = peer.closed()
        assert closed["reason"] == "normal" and int(closed["sent"]) == MB, closed
        # It stays past TIME-WAIT, then exits on its own.
        peer.process.wait(30)
        counters = peer.stop()
        assert counters["connections"] == 0 and counters["time_wait"] == 0, counters
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(10)
