"""The smarthost: every form of SPEC 2 reaches it, DNS trouble defers (never
bounces), and its certificate is verified before the credentials go out
(smarthost_tls = verify | encrypt | none). The peer is aiosmtpd with
STARTTLS and AUTH, which records every AUTH it is sent; certificates come
from a test CA made here with openssl."""
import asyncio
import os
import ssl
import subprocess
import threading

import pytest
from aiosmtpd.smtp import SMTP, AuthResult

import helpers
from conftest import free_port
from mx import TestDNS, Zone
from pki import PKI

USER, PASSWORD = "relayuser", "s3cret-pass"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


class _Handler:
    def __init__(self, peer):
        self.peer = peer

    async def handle_DATA(self, server, session, envelope):
        self.peer.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                   session.ssl is not None))
        return "250 2.0.0 OK smarthost queued"


class Smarthost:
    """aiosmtpd with STARTTLS (cert) and AUTH PLAIN/LOGIN on ip:port.
    auths lists every (login, password) it was sent, good or not."""

    def __init__(self, cert=None, ip="127.0.0.1"):
        self.ip, self.port = ip, free_port()
        self.auths, self.messages, self.tls_sessions = [], [], 0
        self.ctx = None
        if cert:
            self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ctx.load_cert_chain(*cert)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def _auth(self, server, session, envelope, mechanism, data):
        login, password = data.login.decode(), data.password.decode()
        self.auths.append((login, password))
        return AuthResult(success=(login, password) == (USER, PASSWORD))

    async def _start(self):
        def factory():
            return SMTP(_Handler(self), hostname="smarthost.test", tls_context=self.ctx,
                        require_starttls=False, auth_require_tls=False,
                        authenticator=self._auth, auth_required=False)
        return await self.loop.create_server(factory, self.ip, self.port)

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def smarthosts():
    made = []

    def make(**kw):
        s = Smarthost(**kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def send(srv, to="rcpt@dest.example"):
    helpers.send_raw_message(srv.port, "sender@example.com", [to],
                             helpers.message(frm="sender@example.com", to=to))


def delivery_lines(srv, status):
    return [ln for ln in srv.log().splitlines()
            if "event=delivery" in ln and f"status={status}" in ln]


def wait_log(srv, text, timeout=20):
    helpers.wait_for(lambda: text in srv.log(), timeout, what=f"{text!r} in the log")


def relay(sh, **extra):
    r = {"smarthost": f"{sh.ip}:{sh.port}", "smarthost_auth": f"{USER}:{PASSWORD}"}
    r.update(extra)
    return r


def test_verified_by_ip_san_sends_auth_and_delivers(server_factory, smarthosts, pki):
    sh = smarthosts(cert=pki.leaf("good-ip", "IP:127.0.0.1"))
    srv = server_factory(relay=relay(sh), tls_keys={"ca_file": pki.ca})
    send(srv)
    helpers.wait_for(lambda: sh.messages, 20, what="delivery to the smarthost")
    assert sh.auths == [(USER, PASSWORD)]
    assert sh.messages[0][2], "delivered without TLS"
    wait_log(srv, "status=sent")


@pytest.mark.parametrize("leaf,reason", [
    (dict(name="selfsigned", san="IP:127.0.0.1", self_signed=True), "self-signed certificate"),
    (dict(name="wrongname", san="DNS:other.example"), "IP address mismatch"),
    (dict(name="expired", san="IP:127.0.0.1", expired=True), "certificate has expired"),
])
def test_unverified_certificate_gets_no_credentials(server_factory, smarthosts, pki, leaf,
                                                    reason):
    """The attack: someone on the path answers with a certificate of their
    own. Before: AUTH went to it. Now: nothing is sent, the mail waits."""
    sh = smarthosts(cert=pki.leaf(**leaf))
    srv = server_factory(relay=relay(sh), tls_keys={"ca_file": pki.ca})
    send(srv)
    wait_log(srv, "event=tls_verify_failed")
    wait_log(srv, "status=deferred")
    log = srv.log()
    assert reason in log, log[-3000:]
    assert f"host={sh.ip}" in log
    assert sh.auths == [] and sh.messages == []
    line = delivery_lines(srv, "deferred")[0]
    assert "dsn=4.7.5" in line and reason in line and "not verified" in line, line


def test_unknown_ca_without_ca_file(server_factory, smarthosts, pki):
    """A certificate from a CA the system store does not hold."""
    sh = smarthosts(cert=pki.leaf("noca", "IP:127.0.0.1"))
    srv = server_factory(relay=relay(sh))
    send(srv)
    wait_log(srv, "event=tls_verify_failed")
    assert "unable to get local issuer certificate" in srv.log()
    assert sh.auths == []


def test_encrypt_sends_credentials_over_unverified_tls(server_factory, smarthosts, pki):
    sh = smarthosts(cert=pki.leaf("selfsigned2", "IP:127.0.0.1", self_signed=True))
    srv = server_factory(relay=relay(sh, smarthost_tls="encrypt"))
    send(srv)
    helpers.wait_for(lambda: sh.messages, 20, what="delivery to the smarthost")
    assert sh.auths == [(USER, PASSWORD)]
    assert sh.messages[0][2]


def test_encrypt_and_verify_never_fall_back_to_plain_text(server_factory, smarthosts):
    """No STARTTLS offered: with encrypt (and verify) nothing is sent."""
    sh = smarthosts(cert=None)
    srv = server_factory(relay=relay(sh, smarthost_tls="encrypt"))
    send(srv)
    wait_log(srv, "status=deferred")
    assert sh.auths == [] and sh.messages == []
    assert "dsn=4.7.4" in delivery_lines(srv, "deferred")[0]


def test_none_with_credentials_is_a_config_error(server_factory, smarthosts):
    """none never verifies, so the password would go to whoever answers:
    check-config refuses the file and names the line."""
    sh = smarthosts(cert=None)
    srv = server_factory(relay=relay(sh, smarthost_tls="none"), start=False)
    rc, _, err = srv.cli("check-config")
    assert rc == 2, err
    assert "needs smarthost_tls = verify (or encrypt)" in err, err
    assert ".conf:" in err, err


def test_none_without_auth_delivers_in_plain_text(server_factory, smarthosts):
    sh = smarthosts(cert=None)
    srv = server_factory(relay={"smarthost": f"{sh.ip}:{sh.port}", "smarthost_tls": "none"})
    send(srv)
    helpers.wait_for(lambda: sh.messages, 20, what="delivery to the smarthost")
    assert not sh.messages[0][2]


@pytest.fixture
def dns(tmp_path):
    z = Zone()
    z.host("smarthost.test", "127.0.0.1")
    (tmp_path / "dns").mkdir()
    d = TestDNS(str(tmp_path / "dns"), z)
    d.start()
    yield d
    d.stop()


@pytest.mark.parametrize("form", ["smarthost.test:{port}", "[smarthost.test]:{port}",
                                  "[localhost]:{port}", "localhost:{port}"])
def test_name_forms_resolve_a_and_verify_the_name(server_factory, smarthosts, pki, dns, form):
    """Postfix relayhost syntax with brackets works; a name is looked up as
    A/AAAA (dnsmasq has no MX for it) and its certificate checked by name."""
    host = form.split(":")[0].strip("[]")
    sh = smarthosts(cert=pki.leaf(f"name-{host}", f"DNS:{host}"))
    srv = server_factory(relay={"smarthost": form.format(port=sh.port),
                                "smarthost_auth": f"{USER}:{PASSWORD}",
                                "dns_servers": dns.address},
                         tls_keys={"ca_file": pki.ca})
    send(srv)
    helpers.wait_for(lambda: sh.messages, 20, what=f"delivery through {form}")
    assert sh.auths == [(USER, PASSWORD)]
    wait_log(srv, f"relay={host}[127.0.0.1]:{sh.port}")


def test_unresolvable_smarthost_defers_and_names_it(server_factory, dns):
    """Before: 5.1.2 bounce naming "[smarthost]". Now: deferred 4.4.3."""
    srv = server_factory(relay={"smarthost": "[nowhere.test]:2527", "dns_servers": dns.address})
    send(srv)
    wait_log(srv, "status=deferred")
    line = delivery_lines(srv, "deferred")[0]
    assert "dsn=4.4.3" in line and "nowhere.test" in line, line
    assert "[smarthost]" not in srv.log()
    assert "status=bounced" not in srv.log()


def test_unreachable_smarthost_defers(server_factory):
    srv = server_factory(relay={"smarthost": f"[127.0.0.1]:{free_port()}"})
    send(srv)
    wait_log(srv, "status=deferred")
    assert "dsn=4.4.1" in delivery_lines(srv, "deferred")[0]


@pytest.mark.parametrize("value", ["smtp.example.net:", "[smtp.example.net", "host:99999",
                                   "bad_name!:25", "[]:25"])
def test_check_config_refuses_bad_forms(server_factory, value):
    srv = server_factory(relay={"smarthost": value}, start=False)
    rc, _, err = srv.cli("check-config")
    assert rc == 2, err
    assert "smarthost in [relay]" in err and "[host]:port" in err, err


def test_check_config_refuses_unreadable_ca_file(server_factory, tmp_path):
    srv = server_factory(start=False, tls_keys={"ca_file": f"{tmp_path}/missing.pem"})
    rc, _, err = srv.cli("check-config")
    assert rc == 2 and "ca_file in [tls]" in err, err
