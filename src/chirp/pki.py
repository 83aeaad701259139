"""Make a small PKI for chirp: a CA and node certificate files in libchirp's
layout (node certificate, CA certificate, node private key in one file),
plus DH parameters.  For tests and first deployments; uses the openssl CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


class PKIError(RuntimeError):
    """The openssl command failed or is missing."""


def _run(args: list[str], cwd: str) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise PKIError("the openssl command is needed (Debian: apt-get install openssl)")
    proc = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PKIError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def make_pki(
    directory: str | os.PathLike[str],
    names: tuple[str, ...] | list[str] = ("node",),
    days: int = 3650,
    ca_name: str = "chirp CA",
) -> dict[str, Path]:
    """Create DIR/ca.pem, DIR/NAME.pem for each name, and DIR/dh.pem.

    Returns the paths by name ("ca", "dh" and each node name).  Existing
    files are overwritten.  The CA key is kept in DIR/ca.key (mode 0600).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not name or "/" in name or name in ("ca", "dh"):
            raise ValueError(f"bad node name {name!r}")
    paths: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        _run(
            ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "ca.key"],
            tmp,
        )
        _run(
            [
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-sha256",
                "-days",
                str(days),
                "-subj",
                f"/CN={ca_name}",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-out",
                "ca.pem",
            ],
            tmp,
        )
        ca_pem = Path(tmp, "ca.pem").read_text()
        for name in names:
            _run(
                [
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    f"{name}.key",
                ],
                tmp,
            )
            _run(
                [
                    "req",
                    "-new",
                    "-key",
                    f"{name}.key",
                    "-subj",
                    f"/CN={name}",
                    "-out",
                    f"{name}.csr",
                ],
                tmp,
            )
            Path(tmp, "ext.cnf").write_text(
                "basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth,clientAuth\n"
            )
            _run(
                [
                    "x509",
                    "-req",
                    "-in",
                    f"{name}.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    str(days),
                    "-sha256",
                    "-extfile",
                    "ext.cnf",
                    "-out",
                    f"{name}.crt",
                ],
                tmp,
            )
            chain = (
                Path(tmp, f"{name}.crt").read_text() + ca_pem + Path(tmp, f"{name}.key").read_text()
            )
            target = out / f"{name}.pem"
            _write_private(target, chain)
            paths[name] = target
        _run(
            [
                "genpkey",
                "-genparam",
                "-algorithm",
                "DH",
                "-pkeyopt",
                "group:ffdhe2048",
                "-out",
                "dh.pem",
            ],
            tmp,
        )
        (out / "ca.pem").write_text(ca_pem)
        _write_private(out / "ca.key", Path(tmp, "ca.key").read_text())
        shutil.copyfile(Path(tmp, "dh.pem"), out / "dh.pem")
    paths["ca"] = out / "ca.pem"
    paths["dh"] = out / "dh.pem"
    return paths


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
