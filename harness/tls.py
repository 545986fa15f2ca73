"""A throwaway CA and the server certificates it signs (openssl's CLI): https backends
for the tests and the benchmark, trusted only by a proxy told to trust this CA."""

import subprocess
from pathlib import Path

KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(folder: str | Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


def throwaway_ca(folder: str | Path) -> Path:
    """ca.pem (and ca.key) in `folder`, valid for a day; returns ca.pem's path."""
    _openssl(
        folder, "req", "-x509", *KEY, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=app_proxy test CA",
    )  # fmt: skip
    return Path(folder) / "ca.pem"


def server_certificate(folder: str | Path, stem: str, *names: str) -> tuple[Path, Path]:
    """`stem`.pem and `stem`.key, signed by the CA in `folder`, for `names`
    (subjectAltName entries: "DNS:localhost", "IP:127.0.0.1")."""
    _openssl(
        folder, "req", *KEY, "-keyout", f"{stem}.key", "-out", f"{stem}.csr",
        "-subj", f"/CN={names[0].partition(':')[2]}",
    )  # fmt: skip
    (Path(folder) / f"{stem}.ext").write_text(f"subjectAltName={','.join(names)}\n")
    _openssl(
        folder, "x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{stem}.pem", "-days", "1", "-extfile", f"{stem}.ext",
    )  # fmt: skip
    return Path(folder) / f"{stem}.pem", Path(folder) / f"{stem}.key"
