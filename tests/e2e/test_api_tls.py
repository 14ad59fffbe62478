"""The management API over TLS with client certificates, in the lab: a CA,
a server certificate for the management address and a client certificate
made here with openssl; sluicectl gets in with its certificate, a client
without one does not, and neither does plain HTTP."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import Sluiced, lab_config, run

REPO = Path(__file__).resolve().parents[2]


def openssl(*args, cwd):
    run("openssl", *args, cwd=cwd)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, the server's certificate (IP 127.0.0.1) and a client's."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=sluice lab CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, extension in (("server", "subjectAltName=IP:127.0.0.1"),
                            ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=sluice {name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text(extension + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                "-out", f"{name}.pem", cwd=d)
    for key in d.glob("*.key"):
        os.chmod(key, 0o600)
    return d


@pytest.fixture(scope="module")
def gateway(lab, pki, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api-tls")
    config = lab_config("af_packet", tmp)
    text = config.read_text()
    text, count = re.subn(
        r"api:\n  listen: 127.0.0.1:8480\n  token: lab-only-api-token\n",
        "api:\n  listen: 127.0.0.1:8480\n  token: lab-only-api-token\n  tls:\n"
        f"    certificate: {pki}/server.pem\n    private_key: {pki}/server.key\n"
        f"    client_ca: {pki}/ca.pem\n", text)
    assert count == 1, text
    config.write_text(text)
    sluiced = Sluiced(lab, config, tmp / "sluiced.log")
    yield sluiced
    sluiced.stop()


def sluicectl(gateway, *args):
    return run(str(REPO / "tools" / "sluicectl"), "--netns", gateway.lab.ns("gw"), "--config",
               str(gateway.config), *args, check=False)


def test_sluicectl_with_a_client_certificate_gets_in(gateway, pki):
    assert "API on https://127.0.0.1:8480" in gateway.output()
    listing = sluicectl(gateway, "--cacert", str(pki / "ca.pem"), "--cert",
                        str(pki / "client.pem"), "--key", str(pki / "client.key"), "services")
    assert listing.returncode == 0, listing.stderr
    assert "web-fullnat" in listing.stdout
    weight = sluicectl(gateway, "--cacert", str(pki / "ca.pem"), "--cert",
                       str(pki / "client.pem"), "--key", str(pki / "client.key"),
                       "weight", "web-nat", "198.18.1.11", "1")
    assert weight.returncode == 0, weight.stderr


def test_no_client_certificate_and_plain_http_are_refused(gateway, pki):
    without = sluicectl(gateway, "--cacert", str(pki / "ca.pem"), "services")
    assert without.returncode == 3, without.stdout + without.stderr
    assert "cannot reach the API at https://127.0.0.1:8480" in without.stderr
    plain = gateway.lab.exec("gw", "curl", "-sS", "--noproxy", "*", "-m", "5",
                             "http://127.0.0.1:8480/api/v1/services", check=False)
    assert plain.returncode != 0 or '"services"' not in plain.stdout, plain.stdout
    # The server keeps serving good clients after both.
    again = gateway.lab.exec("gw", "curl", "-sS", "--noproxy", "*", "-m", "5", "--cacert",
                             str(pki / "ca.pem"), "--cert", str(pki / "client.pem"), "--key",
                             str(pki / "client.key"), "https://127.0.0.1:8480/metrics")
    assert "sluice_worker_rx_packets_total" in again.stdout
