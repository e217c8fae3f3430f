"""Fetch the Amazon RDS CA bundle into the image, and refuse anything that is not one.

    python docker/rds_ca_bundle.py TARGET

The bundle is AWS's global one (every region's root and intermediate CAs,
https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.SSL.html), fetched over HTTPS with
the server verified against the build image's CA store. It is not pinned by checksum: AWS publishes no
checksum beside it and adds CAs to the same file when it introduces them, so the build checks what it
got instead: PEM certificates only, each a CA issued to Amazon Web Services for RDS.
"""

import ssl
import sys
import urllib.request
from pathlib import Path

URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
ISSUER = "Amazon Web Services, Inc."


def check(pem: str) -> int:
    """The number of certificates in `pem`; ValueError unless each is an Amazon RDS CA."""
    count = pem.count("-----BEGIN CERTIFICATE-----")
    if not count or count != pem.count("-----END CERTIFICATE-----"):
        raise ValueError("not a bundle of PEM certificates")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=pem)  # raises on anything unparsable
    certificates = context.get_ca_certs()  # only CA certificates (basicConstraints CA:TRUE) are listed
    if len(certificates) != count:
        raise ValueError(f"{count - len(certificates)} of {count} certificates are not CAs")
    for certificate in certificates:
        subject = {key: value for part in certificate["subject"] for key, value in part}
        if subject.get("organizationName") != ISSUER or "Amazon RDS" not in subject.get("commonName", ""):
            raise ValueError(f"not an Amazon RDS CA: {subject}")
    return count


def main(target: str) -> None:
    with urllib.request.urlopen(URL, timeout=60) as response:  # noqa: S310 (a fixed https URL)
        pem = response.read().decode("ascii")
    count = check(pem)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(pem, encoding="ascii")
    print(f"{target}: {count} Amazon RDS CA certificates from {URL}")


if __name__ == "__main__":
    main(*sys.argv[1:])
