"""DANE (RFC 7672, RFC 7671) end to end: the server asks a validating
unbound (dnssec.py) that serves a DNSSEC-signed zone (dane.test, signed
with ldns-signzone, its DS the resolver's trust anchor) and an unsigned one
(plain.test), with [relay] dnssec = trust_ad. The fake MX hosts present
certificates from a test CA the server does not trust otherwise: only
their TLSA records can vouch for them.

The zone is made once per module, after the certificates (the TLSA
records hold their digests).

Two signed domains also publish an MTA-STS policy (mode enforce, served by
an HTTPS peer whose certificate the server trusts through [tls] ca_file,
as are the MX certificates then): DANE decides for them (RFC 8461 2),
which the same servers with dnssec = off show to be a different answer."""
import hashlib
import os
import subprocess

import pytest

from dnssec import Unbound, Zone
from https_peer import HTTPSPeer
from mx import (WAIT, alive_poll, farm, msg_bytes, mx_relay, mxs, submit,  # noqa: F401
                wait_msgs, wait_status)
from pki import PKI, server_context, spki_sha256

SENDER_IP = "127.0.0.11"
FROM = "alice@plain.test"
HOSTS = {  # domain -> (MX host, address)
    "ee.dane.test": ("mx.ee.dane.test", "127.0.0.61"),
    "bad.dane.test": ("mx.bad.dane.test", "127.0.0.62"),
    "fail.dane.test": ("mx.fail.dane.test", "127.0.0.63"),
    "ta.dane.test": ("mx.ta.dane.test", "127.0.0.65"),
    "unusable.dane.test": ("mx.unusable.dane.test", "127.0.0.66"),
    "notls.dane.test": ("mx.notls.dane.test", "127.0.0.67"),
    "insecure.plain.test": ("mx.insecure.plain.test", "127.0.0.64"),
    # DANE and MTA-STS (enforce) both
    "both.dane.test": ("mx.both.dane.test", "127.0.0.68"),
    "strict.dane.test": ("mx.strict.dane.test", "127.0.0.69"),
    "weak.dane.test": ("mx.weak.dane.test", "127.0.0.71"),
}
STS_DOMAINS = ("both.dane.test", "strict.dane.test", "weak.dane.test")
STS_IP = "127.0.0.70"


def ca_sha256(ca_pem):
    der = subprocess.run(["openssl", "x509", "-in", ca_pem, "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


class Fixture:
    pass


@pytest.fixture(scope="module")
def dane(tmp_path_factory):
    f = Fixture()
    f.pki = PKI(tmp_path_factory.mktemp("pki"))
    f.certs = {h: f.pki.leaf(h, f"DNS:{h}") for h, _ in HOSTS.values()}
    ta = f.certs["mx.ta.dane.test"]
    chain = os.path.join(f.pki.d, "ta-chain.pem")
    with open(chain, "w") as out:  # DANE-TA: the server sends its CA too
        out.write(open(ta[0]).read() + open(f.pki.ca).read())
    f.certs["mx.ta.dane.test"] = (chain, ta[1])
    # the DANE-EE key of mx.both.dane.test, on a certificate for another name
    f.certs["mx.both.dane.test"] = f.pki.leaf("wrong-name", "DNS:someone-else.example")
    f.certs["mx.weak.dane.test"] = f.pki.leaf("weak-name", "DNS:someone-else.example")
    signed, plain = Zone("dane.test"), Zone("plain.test")
    plain.add(f"@ IN MX 10 mx.plain.test.").add(f"mx IN A {SENDER_IP}")
    for domain, (host, ip) in HOSTS.items():
        z = signed if domain.endswith("dane.test") else plain
        z.add(f"{domain}. IN MX 10 {host}.").add(f"{host}. IN A {ip}")
    good = spki_sha256(f.certs["mx.ee.dane.test"][0])
    signed.add(f"_25._tcp.mx.ee.dane.test. IN TLSA 3 1 1 {good}")
    signed.add(f"_25._tcp.mx.bad.dane.test. IN TLSA 3 1 1 {'00' * 32}")
    signed.add(f"_25._tcp.mx.fail.dane.test. IN TLSA 3 1 1 {good}")
    signed.corrupt("_25._tcp.mx.fail.dane.test", "TLSA")
    signed.add(f"_25._tcp.mx.ta.dane.test. IN TLSA 2 0 1 {ca_sha256(f.pki.ca)}")
    signed.add(f"_25._tcp.mx.unusable.dane.test. IN TLSA 1 1 1 {good}")
    signed.add(f"_25._tcp.mx.notls.dane.test. IN TLSA 3 1 1 {good}")
    plain.add(f"_25._tcp.mx.insecure.plain.test. IN TLSA 3 1 1 {'00' * 32}")
    both = spki_sha256(f.certs["mx.both.dane.test"][0])
    signed.add(f"_25._tcp.mx.both.dane.test. IN TLSA 3 1 1 {both}")
    signed.add(f"_25._tcp.mx.strict.dane.test. IN TLSA 3 1 1 {'00' * 32}")
    weak = spki_sha256(f.certs["mx.weak.dane.test"][0])
    signed.add(f"_25._tcp.mx.weak.dane.test. IN TLSA 1 1 1 {weak}")  # PKIX-EE: unusable
    for domain in STS_DOMAINS:
        signed.add(f'_mta-sts.{domain}. IN TXT "v=STSv1; id=1;"')
        signed.add(f"mta-sts.{domain}. IN A {STS_IP}")
    f.unbound = Unbound(tmp_path_factory.mktemp("unbound"), signed, plain).start()
    yield f
    f.unbound.stop()


@pytest.fixture
def start(server_factory, farm, dane):
    def make(dnssec="trust_ad", tls_keys=None, **more):
        relay = mx_relay(dane.unbound.address, farm, dnssec=dnssec, **more)
        return server_factory(relay=relay, tls_keys=tls_keys)
    return make


@pytest.fixture(scope="module")
def sts_peer(dane):
    """The MTA-STS policy host of STS_DOMAINS: enforce, their MX named."""
    sans = ",".join(f"DNS:mta-sts.{d}" for d in STS_DOMAINS)
    peer = HTTPSPeer(dane.pki.leaf("mta-sts", sans), ip=STS_IP)
    for d in STS_DOMAINS:
        peer.policies[f"mta-sts.{d}"] = (200, f"version: STSv1\r\nmode: enforce\r\n"
                                              f"mx: {HOSTS[d][0]}\r\nmax_age: 86400\r\n")
    yield peer
    peer.stop()


@pytest.fixture
def start_sts(start, dane, sts_peer):
    """A server that trusts the test CA (the policy host's, the MX hosts')."""
    def make(dnssec="trust_ad"):
        return start(dnssec, tls_keys={"ca_file": dane.pki.ca},
                     mta_sts_port=str(sts_peer.port))
    return make


def add_mx(mxs, dane, domain, **kw):
    host, ip = HOSTS[domain]
    return mxs(ip, tls=True, tls_context=server_context(dane.certs[host]), **kw)


def send(srv, domain, subject="dane"):
    to = f"bob@{domain}"
    return submit(srv, FROM, [to], msg_bytes(FROM, to, subject)), to


def outcome(srv, domain, status, tls_policy, subject="dane"):
    """Sends to domain; the delivery line once status, with tls_policy."""
    qid, to = send(srv, domain, subject)
    line = wait_status(srv, qid, to, status)
    assert f"tls_policy={tls_policy}" in line["line"], line
    return line


def test_the_resolver_validates(dane):
    """The fixture itself: AD on the signed zone, none on the plain one,
    SERVFAIL for the record whose signature was damaged."""
    assert dane.unbound.query("mx.ee.dane.test", "A")[:2] == (0, True)
    assert dane.unbound.query("_25._tcp.mx.ee.dane.test", "TLSA")[:2] == (0, True)
    assert dane.unbound.query("mx.insecure.plain.test", "A")[:2] == (0, False)
    assert dane.unbound.query("_25._tcp.mx.fail.dane.test", "TLSA")[0] == 2


def test_dane_ee_match_delivers(start, mxs, dane):
    mx = add_mx(mxs, dane, "ee.dane.test")
    srv = start()
    qid, to = send(srv, "ee.dane.test")
    line = wait_status(srv, qid, to, "sent")
    assert "tls_policy=dane" in line["line"] and "verified=yes" in line["line"], line
    assert wait_msgs(mx, 1, srv)[0].tls
    rc, out, err = srv.cli("tls", "status", "ee.dane.test")
    assert rc == 0, err
    assert "tlsa host=mx.ee.dane.test state=usable" in out, out
    assert "3 1 1 " + spki_sha256(dane.certs["mx.ee.dane.test"][0]).upper() in out, out


def test_dane_ta_chain_with_the_right_name_delivers(start, mxs, dane):
    mx = add_mx(mxs, dane, "ta.dane.test")
    srv = start()
    qid, to = send(srv, "ta.dane.test")
    line = wait_status(srv, qid, to, "sent")
    assert "tls_policy=dane" in line["line"] and "verified=yes" in line["line"], line
    assert wait_msgs(mx, 1, srv)[0].tls


def test_dane_mismatch_defers(start, mxs, dane):
    mx = add_mx(mxs, dane, "bad.dane.test")
    srv = start()
    qid, to = send(srv, "bad.dane.test")
    line = wait_status(srv, qid, to, "deferred")
    assert "dsn=4.7.5" in line["line"] and "tls_policy=dane" in line["line"], line
    assert "DANE: TLSA records of _25._tcp.mx.bad.dane.test" in line["reply"], line
    assert mx.messages == []


def test_tlsa_servfail_defers(start, mxs, dane):
    mx = add_mx(mxs, dane, "fail.dane.test")
    srv = start()
    qid, to = send(srv, "fail.dane.test")
    line = wait_status(srv, qid, to, "deferred")
    assert "dsn=4.7.5" in line["line"], line
    assert "DANE: the TLSA lookup for _25._tcp.mx.fail.dane.test failed" in line["reply"], line
    assert mx.connections == 0, "a host whose TLSA lookup failed was contacted"


def test_unusable_records_still_require_tls(start, mxs, dane):
    """PKIX-EE(1) records are not for SMTP (RFC 7672 3.1.3): no
    authentication, but TLS is a must."""
    mx = add_mx(mxs, dane, "unusable.dane.test")
    srv = start()
    qid, to = send(srv, "unusable.dane.test")
    line = wait_status(srv, qid, to, "sent")
    assert "tls_policy=dane" in line["line"] and "verified=no" in line["line"], line
    assert wait_msgs(mx, 1, srv)[0].tls


def test_dane_host_without_starttls_defers(start, mxs, dane):
    host, ip = HOSTS["notls.dane.test"]
    mx = mxs(ip)  # no STARTTLS
    srv = start()
    qid, to = send(srv, "notls.dane.test")
    line = wait_status(srv, qid, to, "deferred")
    assert "dsn=4.7.4" in line["line"], line
    assert "TLS required but not offered" in line["reply"] and "DANE" in line["reply"], line
    assert mx.messages == []


def test_insecure_zone_means_no_dane(start, mxs, dane):
    """MX and TLSA answers without AD: the TLSA record (a mismatch here)
    means nothing."""
    mx = add_mx(mxs, dane, "insecure.plain.test")
    srv = start()
    qid, to = send(srv, "insecure.plain.test")
    line = wait_status(srv, qid, to, "sent")
    assert "tls_policy=none" in line["line"], line
    assert len(wait_msgs(mx, 1, srv)) == 1


def test_dnssec_off_trusts_no_ad_bit(start, mxs, dane):
    mx = add_mx(mxs, dane, "bad.dane.test")
    srv = start(dnssec="off")
    qid, to = send(srv, "bad.dane.test")
    line = wait_status(srv, qid, to, "sent")
    assert "tls_policy=none" in line["line"], line
    assert len(wait_msgs(mx, 1, srv)) == 1


def test_dane_wins_over_mta_sts_and_accepts(start_sts, mxs, dane, sts_peer):
    """RFC 8461 2: a certificate for another name fails MTA-STS (enforce),
    but matches the DANE-EE record of the host: DANE decides, it goes."""
    mx = add_mx(mxs, dane, "both.dane.test")
    srv = start_sts(dnssec="off")  # no DANE: MTA-STS alone refuses
    line = outcome(srv, "both.dane.test", "deferred", "mta-sts")
    assert "dsn=4.7.5" in line["line"], line
    assert "MTA-STS policy of both.dane.test (enforce): hostname mismatch" in line["reply"], line
    assert mx.messages == []
    srv = start_sts()
    line = outcome(srv, "both.dane.test", "sent", "dane", subject="with DANE")
    assert "verified=yes" in line["line"], line
    assert [t.header("Subject") for t in wait_msgs(mx, 1, srv)] == ["with DANE"]
    log = srv.log()
    # the MTA-STS policy was in force, and set aside
    assert "event=mta_sts_policy domain=both.dane.test id=1 mode=enforce" in log
    assert "dest=both.dane.test event=tls_policy mta_sts=enforce dane_hosts=1" in log


def test_dane_wins_over_mta_sts_and_refuses(start_sts, mxs, dane, sts_peer):
    """The reverse: a certificate that satisfies MTA-STS (trusted, the MX
    name, a host of the policy) but matches no TLSA record is refused."""
    mx = add_mx(mxs, dane, "strict.dane.test")
    srv = start_sts(dnssec="off")  # no DANE: MTA-STS alone accepts
    line = outcome(srv, "strict.dane.test", "sent", "mta-sts")
    assert "verified=yes" in line["line"], line
    assert len(wait_msgs(mx, 1, srv)) == 1
    srv = start_sts()
    line = outcome(srv, "strict.dane.test", "deferred", "dane")
    assert "dsn=4.7.5" in line["line"], line
    assert "DANE: TLSA records of _25._tcp.mx.strict.dane.test" in line["reply"], line
    assert "event=mta_sts_policy domain=strict.dane.test id=1 mode=enforce" in srv.log()
    assert len(mx.messages) == 1, "a certificate DANE refused got the message"


def test_unusable_tlsa_records_leave_mta_sts_enforce_in_force(start_sts, mxs, dane, sts_peer):
    """Only usable TLSA records take precedence: records that are all
    unusable (PKIX-EE) make TLS mandatory without authenticating anything,
    so the domain's MTA-STS policy (enforce) still decides, and refuses a
    certificate for another name."""
    mx = add_mx(mxs, dane, "weak.dane.test")
    srv = start_sts()
    line = outcome(srv, "weak.dane.test", "deferred", "mta-sts")
    assert "dsn=4.7.5" in line["line"], line
    assert "MTA-STS policy of weak.dane.test (enforce): hostname mismatch" in line["reply"], line
    assert "dest=weak.dane.test event=tls_policy mta_sts=enforce dane_hosts=1" in srv.log()
    assert mx.messages == []
