"""The proxy services of conf/lab.yaml in the lab, on net_af_packet and
net_af_xdp: the worker's own TCP ends Linux clients' connections on the VIP
and opens its own to Linux servers in the backends, and every byte crosses
both ways intact.

  - web-proxy (198.18.10.8 and 2001:db8:10::8, port 80): the backends' HTTP
    servers, with curl, and connections spread by Maglev;
  - bulk-proxy (198.18.10.8 port 9000): servers this module starts in the
    backends, that hash what they receive (a sink, answering the byte count
    and SHA-256 after the client's FIN) or send a file (a source).

100 MB each way with SHA-256 checked, 1,000 connections open at once, no
state left once they close, resets passed on, and a malformed segment
dropped by reason."""

import hashlib
import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from conftest import run
from test_balancing import spread, url

PROXY4, PROXY6 = "198.18.10.8", "2001:db8:10::8"
BULK_PORT = 9000
MB = 1000 * 1000

# A backend's server on port 9000: a connection whose first line is
# "source N\n" is sent N pseudo-random bytes (seeded by N) and closed;
# any other is a sink: what arrives is counted and hashed, and after the
# client's FIN the server answers "COUNT SHA256\n". Many connections at once
# (a selector), a backlog of 4096.
SERVER = textwrap.dedent("""
    import hashlib, random, selectors, socket, sys
    listener = socket.socket(socket.AF_INET6)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("::", int(sys.argv[1])))
    listener.listen(4096)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    print("listening", flush=True)
    state = {}
    def source_bytes(n):
        return random.Random(n).randbytes(n)
    while True:
        for key, events in selector.select():
            sock = key.fileobj
            if sock is listener:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                state[conn] = {"hash": hashlib.sha256(), "count": 0, "head": b"", "out": None}
                selector.register(conn, selectors.EVENT_READ)
                continue
            s = state[sock]
            if events & selectors.EVENT_WRITE:
                try:
                    sent = sock.send(s["out"])
                except OSError:
                    sent = -1
                if sent < 0 or sent == len(s["out"]):
                    selector.unregister(sock); sock.close(); del state[sock]
                else:
                    s["out"] = s["out"][sent:]
                continue
            try:
                data = sock.recv(1 << 20)
            except ConnectionResetError:
                print("reset", flush=True)
                selector.unregister(sock); sock.close(); del state[sock]
                continue
            if s["count"] == 0 and len(s["head"]) < 64 and data:
                s["head"] += data[:64]
                if s["head"].startswith(b"source ") and b"\\n" in s["head"]:
                    n = int(s["head"].split()[1])
                    s["out"] = memoryview(source_bytes(n))
                    selector.modify(sock, selectors.EVENT_WRITE)
                    continue
            if data:
                s["hash"].update(data); s["count"] += len(data)
                continue
            s["out"] = memoryview(f"{s['count']} {s['hash'].hexdigest()}\\n".encode())
            selector.modify(sock, selectors.EVENT_WRITE)
""")

# The client's side, run in the client namespace.
CLIENT = textwrap.dedent("""
    import hashlib, json, random, resource, socket, sys, time
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    def connect():
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect((host, port))
        return s

    def read_all(s):
        chunks = []
        while chunk := s.recv(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    if mode == "sink":  # sends N random bytes; the backend's count and hash come back
        n = int(sys.argv[4])
        data = random.Random(7).randbytes(n)
        start = time.monotonic()
        s = connect()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        answer = read_all(s).split()
        print(json.dumps({"count": int(answer[0]), "sha256": answer[1].decode(),
                          "expected": hashlib.sha256(data).hexdigest(),
                          "seconds": time.monotonic() - start}))
    elif mode == "source":  # the backend sends N bytes
        n = int(sys.argv[4])
        start = time.monotonic()
        s = connect()
        s.sendall(b"source %d\\n" % n)
        data = read_all(s)
        print(json.dumps({"count": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                          "expected": hashlib.sha256(random.Random(n).randbytes(n)).hexdigest(),
                          "seconds": time.monotonic() - start}))
    elif mode == "concurrent":  # N connections open at once, each sending its own bytes
        n = int(sys.argv[4])
        resource.setrlimit(resource.RLIMIT_NOFILE, (n + 256, n + 256))
        sockets = [connect() for _ in range(n)]
        for i, s in enumerate(sockets):
            s.sendall(b"connection %d " % i * 100)
        for s in sockets:
            s.shutdown(socket.SHUT_WR)
        good = 0
        for i, s in enumerate(sockets):
            payload = b"connection %d " % i * 100
            answer = read_all(s).split()
            good += answer == [str(len(payload)).encode(),
                               hashlib.sha256(payload).hexdigest().encode()]
            s.close()
        print(json.dumps({"good": good}))
    elif mode == "reset":  # a connection that the client resets after some bytes
        s = connect()
        s.sendall(b"x" * 10000)
        time.sleep(0.3)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
        s.close()
        print(json.dumps({}))
    elif mode == "refused":  # what a client sees when no backend listens
        # The proxy accepts, then resets the client when the backend refuses:
        # often before connect() returns, sometimes after the first bytes.
        try:
            s = connect()
            s.sendall(b"hello")
            got = s.recv(100)
            print(json.dumps({"outcome": "eof" if got == b"" else "data"}))
        except ConnectionResetError:
            print(json.dumps({"outcome": "reset"}))
""")


def client(lab, *args, timeout=300):
    result = lab.exec("client", "/usr/bin/python3", "-c", CLIENT, *map(str, args),
                      timeout=timeout)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def servers(gateway):
    """The port-9000 servers in each backend, stopped by PID at the end."""
    lab = gateway.lab
    started = []
    for backend in ("be1", "be2", "be3"):
        process = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns(backend), "/usr/bin/python3", "-c", SERVER,
             str(BULK_PORT)], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "listening"
        started.append(process)
    yield started
    stop_servers(started)


def stop_servers(processes):
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(10)


def wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


@pytest.mark.parametrize("vip", [PROXY4, PROXY6])
def test_proxy_vip_answers_with_a_backend(gateway, vip):
    result = gateway.lab.exec("client", "curl", "-sS", "--noproxy", "*", "-m", "10", url(vip))
    assert result.stdout.strip() in ("be1", "be2", "be3")


def test_connections_spread_over_the_backends(gateway):
    answers = spread(gateway.lab, PROXY4, 300)
    assert answers["failures"] == 0, answers
    assert sorted(answers["answers"]) == ["be1", "be2", "be3"], answers
    for count in answers["answers"].values():
        assert 70 <= count <= 130, answers


def test_a_sink_behind_the_proxy_receives_100_mb_intact(gateway, servers):
    result = client(gateway.lab, "sink", PROXY4, BULK_PORT, 100 * MB)
    assert result["count"] == 100 * MB
    assert result["sha256"] == result["expected"]
    print(f"\n100 MB client -> proxy -> sink in {result['seconds']:.2f} s "
          f"({100 * 8 / result['seconds']:.0f} Mbit/s)")


def test_100_mb_from_a_backend_arrive_intact(gateway, servers):
    result = client(gateway.lab, "source", PROXY4, BULK_PORT, 100 * MB)
    assert result["count"] == 100 * MB
    assert result["sha256"] == result["expected"]
    print(f"\n100 MB source -> proxy -> client in {result['seconds']:.2f} s "
          f"({100 * 8 / result['seconds']:.0f} Mbit/s)")


def test_a_large_download_through_the_ipv6_proxy(gateway):
    lab = gateway.lab
    payload = os.urandom(32 * 1024 * 1024)
    for backend in ("be1", "be2", "be3"):
        Path(f"/run/{lab.prefix}-lab/www/{backend}/proxy.bin").write_bytes(payload)
    result = lab.exec("client", "sh", "-c",
                      f"curl -sS --noproxy '*' -m 120 {url(PROXY6, '/proxy.bin')} | sha256sum",
                      timeout=180)
    assert result.stdout.split()[0] == hashlib.sha256(payload).hexdigest()


def test_a_download_through_the_proxy_and_through_fullnat(gateway):
    """The same 100 MB from the backends' HTTP servers, through the proxy
    and through fullnat (the kernel's TCP end to end), one after the other:
    both intact; the times are printed side by side (not asserted: the lab
    shares two cores with everything else)."""
    lab = gateway.lab
    payload = os.urandom(100 * MB)
    digest = hashlib.sha256(payload).hexdigest()
    for backend in ("be1", "be2", "be3"):
        Path(f"/run/{lab.prefix}-lab/www/{backend}/side.bin").write_bytes(payload)
    seconds = {}
    for name, vip in (("fullnat", "198.18.10.1"), ("proxy", PROXY4)):
        start = time.monotonic()
        result = lab.exec("client", "sh", "-c",
                          f"curl -sS --noproxy '*' -m 120 {url(vip, '/side.bin')} | sha256sum",
                          timeout=180)
        seconds[name] = time.monotonic() - start
        assert result.stdout.split()[0] == digest, name
    print(f"\n100 MB download: fullnat {seconds['fullnat']:.2f} s, proxy {seconds['proxy']:.2f} s "
          f"(proxy/fullnat {seconds['proxy'] / seconds['fullnat']:.2f})")


def test_a_thousand_connections_at_once_then_no_state(gateway, servers):
    result = client(gateway.lab, "concurrent", PROXY4, BULK_PORT, 1000)
    assert result["good"] == 1000
    counters = wait_for(lambda: (lambda c: c if c["sluice_tcp_connections"] == 0 and
                                 c["sluice_proxy_sessions"] == 0 else None)(gateway.counters()))
    assert counters, gateway.counters()
    assert counters["sluice_proxy_sessions_total"] >= 1000
    assert counters["sluice_tcp_half_open"] == 0


def test_a_client_reset_resets_the_backend_side(gateway, servers):
    before = gateway.counters()["sluice_proxy_resets_total"]
    client(gateway.lab, "reset", PROXY4, BULK_PORT)
    counters = wait_for(lambda: (lambda c: c if c["sluice_proxy_resets_total"] > before and
                                 c["sluice_tcp_connections"] == 0 else None)(gateway.counters()))
    assert counters, gateway.counters()


def test_a_segment_with_a_bad_checksum_is_dropped_and_counted(gateway):
    lab = gateway.lab
    before = gateway.counters().get("sluice_worker_drops_total.bad_tcp_checksum", 0)
    script = textwrap.dedent(f"""
        from scapy.all import IP, TCP, send
        send(IP(dst="{PROXY4}") / TCP(sport=45000, dport=80, flags="S", chksum=0x1234),
             verbose=False)
    """)
    lab.exec("client", "/usr/bin/python3", "-c", script)
    assert wait_for(lambda: gateway.counters().get(
        "sluice_worker_drops_total.bad_tcp_checksum", 0) > before)


def test_zz_without_a_listening_backend_the_client_is_reset(gateway, servers):
    stop_servers(servers)
    result = client(gateway.lab, "refused", PROXY4, BULK_PORT)
    assert result["outcome"] == "reset"
    counters = gateway.counters()
    assert counters["sluice_proxy_backend_failed_total"] >= 1
