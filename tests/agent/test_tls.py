"""TLS between agent and server (issue 24): `optfleet server --tls-cert/--tls-key` serves
HTTPS; the agent pins the CA of ``OPTFLEET_CA_BUNDLE``; plain http beyond loopback needs
``OPTFLEET_ALLOW_PLAINTEXT``. The CAs and the server certificate are made here, at test time."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from optfleet.local_server import server_command, wait_healthy
from suggestion_server.__main__ import tls_options
from suggestion_server.storage.database import Store, make_engine
from suggestion_server.storage.tokens import create_token
from tests.agent.helpers import AgentProcess, Api, emulator
from tests.support.ports import free_port
from worker_bootstrap.api_client import ApiClient, TlsRefused
from worker_bootstrap.config import ConfigError, settings_from
from worker_bootstrap.retry import Backoff

TOKEN = "tls-suite-token-8d1e"


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    pem: Path


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _builder(
    subject: str, issuer: x509.Name, public: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_ca(directory: Path, name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        _builder(name, _name(name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = _pem(directory / f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM))
    return Authority(key, cert, pem)


def make_server_cert(directory: Path, ca: Authority) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost signed by ``ca``; (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (
        _builder("optfleet test server", ca.cert.subject, key.public_key())
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    cert_file = _pem(directory / "server.pem", cert.public_bytes(serialization.Encoding.PEM))
    key_file = _pem(
        directory / "server.key",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    key_file.chmod(0o600)
    return cert_file, key_file


@dataclass
class TlsServer:
    url: str
    db_url: str
    ca: Authority
    other_ca: Authority


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    directory = tmp_path_factory.mktemp("tls")
    ca = make_ca(directory, "fleet-ca")
    other_ca = make_ca(directory, "other-ca")
    cert, key = make_server_cert(directory, ca)
    port = free_port()
    log_path = directory / "server.log"
    db_url = f"sqlite:///{directory / 'optfleet.db'}"
    argv = server_command(db_url, port)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [*argv, "--tls-cert", str(cert), "--tls-key", str(key)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OPTFLEET_BOOTSTRAP_TOKEN": TOKEN},
        )
    url = f"https://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log_path, timeout_s=60, verify=str(ca.pem))
        yield TlsServer(url, db_url, ca, other_ca)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def agent_client(url: str, bundle: Path | None) -> ApiClient:
    settings = settings_from(
        {
            "OPTFLEET_EXPERIMENT_ID": "1",
            "SIGOPT_API_URL": url,
            **({"OPTFLEET_CA_BUNDLE": str(bundle)} if bundle else {}),
        }
    )
    assert settings.ca_bundle == bundle
    bundle_text = str(settings.ca_bundle) if settings.ca_bundle else None
    return ApiClient(settings.api_url, TOKEN, ca_bundle=bundle_text, backoff=Backoff(3))


def test_agent_with_the_pinned_ca_talks_to_the_tls_server(tls_server: TlsServer) -> None:
    api = agent_client(tls_server.url, tls_server.ca.pem)
    assert api.request("GET", "/experiments")["object"] == "pagination"


@pytest.mark.parametrize("which", ["other CA", "system CAs"])
def test_agent_refuses_a_server_its_ca_did_not_sign(tls_server: TlsServer, which: str) -> None:
    bundle = tls_server.other_ca.pem if which == "other CA" else None
    api = agent_client(tls_server.url, bundle)
    with pytest.raises(TlsRefused) as caught:
        api.request("GET", "/experiments")
    message = str(caught.value)
    assert "OPTFLEET_CA_BUNDLE" in message and "certificate" in message
    if bundle is not None:
        assert str(bundle) in message
    assert api.calls == 1  # not retried: no retry can fix a certificate


def test_agent_with_a_scoped_token_over_tls_runs_to_budget(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    """Secure by default inside the VPC: HTTPS with a pinned CA and a token scoped to the one
    experiment are all an instance needs."""
    operator = Api(tls_server.url, TOKEN)
    operator.session.verify = str(tls_server.ca.pem)
    operator.session.trust_env = False  # else REQUESTS_CA_BUNDLE would override verify
    eid = operator.create_experiment(budget=3)
    store = Store(make_engine(tls_server.db_url, pool_size=1))
    try:
        token = create_token(store, "instance", int(eid))
    finally:
        store.dispose()
    with emulator("i-0tls00000000001") as imds:
        env = {"OPTFLEET_CA_BUNDLE": str(tls_server.ca.pem)}
        agent = AgentProcess(tls_server.url, token, eid, imds.url, tmp_path / "a", env=env)
        assert agent.run() == 0, agent.output()
    assert len(operator.observations(eid)) == 3


def test_plain_http_beyond_loopback_needs_the_opt_out(caplog: pytest.LogCaptureFixture) -> None:
    base = {"OPTFLEET_EXPERIMENT_ID": "1"}
    with pytest.raises(ConfigError, match="OPTFLEET_ALLOW_PLAINTEXT=1") as caught:
        settings_from({**base, "SIGOPT_API_URL": "http://10.0.0.5:8080"})
    assert "SIGOPT_API_URL='http://10.0.0.5:8080'" in str(caught.value)
    for loopback in ("http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"):
        assert settings_from({**base, "SIGOPT_API_URL": loopback}).allow_plaintext is False
    url = "http://10.0.0.6:8080"
    opted = settings_from({**base, "SIGOPT_API_URL": url, "OPTFLEET_ALLOW_PLAINTEXT": "1"})
    assert opted.allow_plaintext is True
    with caplog.at_level(logging.WARNING, logger="worker_bootstrap.api_client"):
        ApiClient(opted.api_url, TOKEN)
        ApiClient(opted.api_url, TOKEN)
        ApiClient("http://127.0.0.1:8080", TOKEN)
    warnings = [r.getMessage() for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warnings) == 1 and url in warnings[0]
    with pytest.raises(ConfigError, match="OPTFLEET_ALLOW_PLAINTEXT"):
        settings_from({**base, "SIGOPT_API_URL": url, "OPTFLEET_ALLOW_PLAINTEXT": "maybe"})


def test_ca_bundle_setting_is_checked(tmp_path: Path) -> None:
    base = {"OPTFLEET_EXPERIMENT_ID": "1", "SIGOPT_API_URL": "https://api.internal:8443"}
    with pytest.raises(ConfigError, match=r"OPTFLEET_CA_BUNDLE=.*readable PEM file"):
        settings_from({**base, "OPTFLEET_CA_BUNDLE": str(tmp_path / "missing.pem")})
    bundle = _pem(tmp_path / "ca.pem", b"x")
    with pytest.raises(ConfigError, match=r"OPTFLEET_CA_BUNDLE=.*is not https://"):
        settings_from(
            {**base, "SIGOPT_API_URL": "http://127.0.0.1:1", "OPTFLEET_CA_BUNDLE": str(bundle)}
        )


def test_server_tls_flags_go_together(tmp_path: Path) -> None:
    assert tls_options(None, None) == {}
    assert tls_options("c.pem", "k.pem") == {"ssl_certfile": "c.pem", "ssl_keyfile": "k.pem"}
    with pytest.raises(ValueError, match="--tls-key is missing"):
        tls_options("c.pem", None)
    with pytest.raises(ValueError, match="--tls-cert is missing"):
        tls_options(None, "k.pem")
    missing = tmp_path / "nope.pem"
    done = subprocess.run(
        [*server_command("sqlite://", 1), "--tls-cert", str(missing), "--tls-key", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--tls-cert" in done.stderr and "readable PEM" in done.stderr
