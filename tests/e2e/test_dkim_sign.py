"""SPEC §5, DKIM signing: messages signed by src/dkim/ (through
build/tests/dkim-tool, the stream API the accept path will use) verify with
two independent verifiers, dkimpy and opendkim-testmsg, each reading the
key from the test DNS (dnsmasq TXT): rsa-sha256, ed25519-sha256 and both
at once, on 7-bit, 8-bit, SMTPUTF8 and multipart messages and on one with
long folded headers. A tampered message fails both (so they can fail)."""
import base64
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e_support"))
import dkim_verify  # noqa: E402
from dkim_env import DkimEnv  # noqa: E402

DOMAINS = {"rsa.test": ["r1"], "ed.test": ["e1"], "dual.test": ["r1", "e1"]}
SIGNED = ["from", "to", "cc", "subject", "date", "message-id", "reply-to", "mime-version",
          "content-type", "content-transfer-encoding", "list-unsubscribe",
          "list-unsubscribe-post"]


@pytest.fixture(scope="module")
def env(tmp_path_factory, cert):
    from conftest import Server
    e = DkimEnv(Server(tmp_path_factory.mktemp("dkimsign"), cert),
                tmp_path_factory.mktemp("dkimsign-dns"))
    for d in ("rsa.test", "dual.test"):
        e.publish(e.keygen(d, "--selector", "r1", publish=False), restart=False)
    for d in ("ed.test", "dual.test"):
        e.publish(e.keygen(d, "--selector", "e1", "--algo", "ed25519", publish=False),
                  restart=False)
    e.restart_dns()
    yield e
    e.stop()


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


# What Posthorn adds where a message lacks them, before it signs (SPEC §3);
# opendkim-testmsg also insists on exactly one Date.
DATE = "Date: Sat, 28 Nov 2026 10:00:00 +0000\n"


def msg_7bit(domain):
    return crlf(f"""From: Sender <sender@{domain}>
To: rcpt@example.net
Cc: other@example.net
Subject: plain 7-bit
Date: Sat, 28 Nov 2026 10:00:00 +0000
Message-ID: <7bit.1@{domain}>
Reply-To: replies@{domain}
List-Unsubscribe: <https://relay.test/u/TOKEN>, <mailto:unsub@{domain}>
List-Unsubscribe-Post: List-Unsubscribe=One-Click
X-Not-Signed: anything

Hello,

a short body with  double  spaces and a trailing blank \t
and an empty line at the end.


""")


def msg_8bit(domain):
    return crlf(f"""From: sender@{domain}
To: rcpt@example.net
Subject: 8-bit body
{DATE}Message-ID: <8bit.1@{domain}>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Grüße aus Köln, naïve café, 日本語のテキスト.
""") + b"latin-1 bytes: \xe9\xe8\xff\r\n"


def msg_smtputf8(domain):
    return crlf(f"""From: "Jöhn Dœ" <jöhn.dœ@{domain}>
To: "Ünïcødé" <ünïcødé@exämple.net>
Subject: Grüße 你好 — SMTPUTF8 headers
Date: Sat, 28 Nov 2026 10:00:00 +0000
Message-ID: <ütf8.1@{domain}>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Ein Text in UTF-8: ½ ¾ ✓.
""")


def msg_multipart(domain):
    att = base64.encodebytes(bytes(range(256)) * 8).decode().replace("\n", "\r\n")
    return crlf(f"""From: =?utf-8?q?J=C3=B6hn?= <sender@{domain}>
To: rcpt@example.net
Subject: =?utf-8?b?TXVsdGlwYXJ0IMOkIMO2?=
{DATE}Message-ID: <multi.1@{domain}>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer-boundary"

This is a multi-part message in MIME format.
--outer-boundary
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=us-ascii

plain part
--inner
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>html part =C3=A4</p>
--inner--
--outer-boundary
Content-Type: application/octet-stream; name="blob.bin"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="blob.bin"

{att}
--outer-boundary--
""")


def msg_folded(domain):
    to = ",\r\n  ".join(f"Person {i} <person{i}@example.net>" for i in range(40))
    subject = "\r\n\t".join(f"part {i} of a very long subject line that goes on" for i in range(8))
    return crlf(f"""From:
  "A Sender With A Long Name"
  <sender@{domain}>
To: {to}
Subject: {subject}
Content-Type: text/plain;
  charset=us-ascii;
  format=flowed
References: {" ".join(f"<ref{i}@example.net>" for i in range(30))}
{DATE}Message-ID:
 <folded.1@{domain}>

body
""")


MESSAGES = {"7bit": msg_7bit, "8bit": msg_8bit, "smtputf8": msg_smtputf8,
            "multipart": msg_multipart, "folded": msg_folded}
CHUNKS = {"7bit": 4096, "8bit": 1, "smtputf8": 7, "multipart": 100, "folded": 3}


@pytest.mark.parametrize("kind", sorted(MESSAGES))
@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_signature_verifies(env, domain, kind):
    msg = MESSAGES[kind](domain)
    rc, signed, result = env.sign(msg, CHUNKS[kind])
    assert (rc, result) == (0, "signed"), (rc, result)
    assert signed.endswith(msg), "the message itself must be unchanged"
    v = env.assert_verifies(signed, DOMAINS[domain])
    for field in dkim_verify.signature_fields(signed):
        t = dkim_verify.tags(field)
        assert t["d"] == domain and t["c"] == "relaxed/relaxed", t
        assert t["a"] == ("ed25519-sha256" if t["s"] == "e1" else "rsa-sha256"), t
        h = t["h"].lower().split(":")
        present = [n.split(b":")[0].strip().lower().decode()
                   for n in dkim_verify.header_section(msg).split(b"\r\n")
                   if n and n[:1] not in (b" ", b"\t")]
        want = [n for n in present if n in SIGNED]
        # every signed field present, in order; From once more (oversigned)
        assert h == want + ["from"], (h, want)
    assert len(v) == len(DOMAINS[domain])


def test_tampered_fails_both_verifiers(env):
    msg = msg_7bit("dual.test")
    rc, signed, result = env.sign(msg)
    assert rc == 0
    for tampered in (signed.replace(b"a short body", b"a sh0rt body"),
                     signed.replace(b"Subject: plain 7-bit", b"Subject: plain 8-bit"),
                     # a second From, added after signing: the oversigned From catches it
                     signed.replace(b"From: Sender", b"From: evil@dual.test\r\nFrom: Sender")):
        v = env.verify(tampered)
        assert sorted(v) == ["e1", "r1"]
        for sel, (ok, ok2, detail) in v.items():
            assert not ok and not ok2, f"{sel} verified a tampered message: {detail}"


def test_key_not_in_dns_fails(env):
    """The verifiers really read DNS: without the record they fail."""
    rc, signed, result = env.sign(msg_7bit("rsa.test"))
    assert rc == 0
    saved = dict(env.records)
    try:
        env.unpublish("r1._domainkey.rsa.test")
        v = env.verify(signed)
        assert not v["r1"][0] and not v["r1"][1], v
    finally:
        env.records = saved
        env.restart_dns()


@pytest.mark.parametrize("msg,result", [
    (b"To: a@example.net\r\n\r\nno From\r\n", "no_from"),
    (b"From: a@rsa.test, b@rsa.test\r\n\r\ntwo addresses\r\n", "multiple_from"),
    (b"From: a@rsa.test\r\nFrom: a@rsa.test\r\n\r\ntwo fields\r\n", "multiple_from"),
    (b"From: a@nokey.test\r\n\r\nno key\r\n", "no_key"),
    (b"From: undisclosed-recipients:;\r\n\r\nno address\r\n", "no_from"),
])
def test_unsigned(env, msg, result):
    rc, signed, got = env.sign(msg)
    assert (rc, got) == (3, result)
    assert signed == msg and not dkim_verify.signature_fields(signed)
