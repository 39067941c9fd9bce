"""A test PKI for TLS peers: a CA made with openssl, leaf certificates
signed by it (or self-signed, or expired), server contexts for them, and
the SHA-256 of a certificate's public key (a DANE-EE 3 1 1 record).
Shared by test_smarthost.py and the TLS policy tests."""
import hashlib
import os
import ssl
import subprocess


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


class PKI:
    """A test CA and leaf certificates signed by it (or not)."""

    def __init__(self, d):
        self.d = str(d)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                 "-out", "ca.pem", "-days", "3", "-subj", "/CN=Posthorn Test CA", cwd=self.d)
        self.ca = os.path.join(self.d, "ca.pem")

    def leaf(self, name, san, days=3, self_signed=False, expired=False):
        key, csr, crt = (os.path.join(self.d, f"{name}.{x}") for x in ("key", "csr", "pem"))
        ext = os.path.join(self.d, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName={san}\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                 "-subj", f"/CN={name}", cwd=self.d)
        if self_signed:
            _openssl("x509", "-req", "-in", csr, "-signkey", key, "-out", crt, "-days",
                     str(days), "-extfile", ext, cwd=self.d)
        elif expired:
            # A validity that ended yesterday: openssl ca-less signing with
            # explicit dates (OpenSSL 3's x509 -not_before/-not_after are
            # 3.4+, so go through a tiny CA config).
            conf = os.path.join(self.d, "ca.cnf")
            os.makedirs(os.path.join(self.d, "newcerts"), exist_ok=True)
            open(os.path.join(self.d, "index.txt"), "a").close()
            with open(os.path.join(self.d, "serial"), "w") as f:
                f.write("1000\n")
            with open(conf, "w") as f:
                f.write("[ca]\ndefault_ca=t\n[t]\ndir=.\ndatabase=index.txt\n"
                        "new_certs_dir=newcerts\nserial=serial\ndefault_md=sha256\n"
                        "policy=p\ncopy_extensions=copy\nunique_subject=no\n"
                        "[p]\ncommonName=supplied\n")
            _openssl("ca", "-batch", "-config", conf, "-cert", "ca.pem", "-keyfile", "ca.key",
                     "-in", csr, "-out", crt, "-startdate", "20200101000000Z",
                     "-enddate", "20200201000000Z", "-extfile", ext, cwd=self.d)
        else:
            _openssl("x509", "-req", "-in", csr, "-CA", "ca.pem", "-CAkey", "ca.key",
                     "-CAcreateserial", "-out", crt, "-days", str(days), "-extfile", ext,
                     cwd=self.d)
        return crt, key


def server_context(cert):
    """An ssl server context presenting cert = (crt, key)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    return ctx


def spki_sha256(crt):
    """Hex SHA-256 of the certificate's SubjectPublicKeyInfo (TLSA 3 1 1)."""
    pub = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()
