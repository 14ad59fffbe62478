"""Runs after every other e2e test (pytest runs files in name order, hence
the zz): the lab goes down and leaves nothing behind."""

from pathlib import Path

from conftest import run


def running(pid):
    """True unless the process is gone or a zombie (whoever adopted it may
    reap it late)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_lab_down_leaves_nothing(lab):
    servers = [pid for backend in ("be1", "be2", "be3")
               for pid in run("ip", "netns", "pids", lab.ns(backend)).stdout.split()]
    assert len(servers) >= 3, "each backend runs its HTTP server until down"
    lab.tool("down")
    namespaces = run("ip", "netns", "list").stdout
    assert lab.prefix + "-" not in namespaces
    assert not Path(f"/run/{lab.prefix}-lab").exists()
    for pid in servers:
        assert not running(pid), f"process {pid} survived"
    assert lab.tool("status", check=False).returncode == 1
