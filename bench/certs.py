"""A throwaway CA and server certificate for the TLS workloads, made with the openssl binary.

Both servers under test get the same certificate (``localhost``, ``127.0.0.1``) and a TLS port
of their own beside the plain one; redis-benchmark checks it against the CA (``--cacert``) and
sends no certificate of its own (the servers run with ``tls-auth-clients no``), so a run
measures the encrypted stream, not client authentication.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def make_certs(directory: Path) -> Path:
    """Write ``ca.crt``, ``server.crt`` and ``server.key`` under ``directory``, unless they
    are there already (both servers of a run must share one CA); returns ``directory``."""
    if (directory / "server.crt").exists():
        return directory
    if shutil.which("openssl") is None:
        raise SystemExit("the TLS workloads need the openssl binary")
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=bench CA",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    )
    (directory / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    )
    return directory


def server_flags(directory: Path, port: int) -> list[str]:
    """The flags (redis-server's and ours alike) of a TLS port with these certificates."""
    return [
        *("--tls-port", str(port)),
        *("--tls-cert-file", str(directory / "server.crt")),
        *("--tls-key-file", str(directory / "server.key")),
        *("--tls-ca-cert-file", str(directory / "ca.crt")),
        *("--tls-auth-clients", "no"),
    ]


def client_flags(directory: Path) -> list[str]:
    """redis-benchmark's flags for a TLS port with these certificates."""
    return ["--tls", "--cacert", str(directory / "ca.crt")]
