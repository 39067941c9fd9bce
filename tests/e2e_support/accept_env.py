"""What the accept-path tests (test_dkim_accept.py, test_unsubscribe.py)
share: a real `posthorn serve` whose mail goes to fake MX servers
(tests/e2e/mx.py) found through a test DNS (dnsmasq) that also publishes
the DKIM records of keys made by the real CLI, and both independent
verifiers (dkim_verify.py: dkimpy, and opendkim-testmsg in a namespace of
its own).

The DNS restarts on the same port when records change (a rotation
publishes a record while the server runs, and the server's dns_servers
cannot change without a restart).

Imported by the tests, which put this folder on sys.path; mx, helpers and
conftest come from tests/e2e.
"""
import os
import re
import time

import dkim_verify
import helpers
import mx
from conftest import Server

WAIT = mx.WAIT


class SamePortDNS(mx.TestDNS):
    """A TestDNS that restarts on the port it first had."""

    __test__ = False

    def restart(self):
        port = self.port
        self.stop()
        self.write_zone()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the port may not be free yet
            if self.spawn(port, 2):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"dnsmasq did not restart on port {port}:\n{self.log()}")


class AcceptEnv:
    """A server (not started) with a farm of fake MX servers and a DNS.

    mx_table: {domain: (ip, behaviour dict)}; keys: [(domain, selector,
    algo)] made with `dkim keygen` and published before the start."""

    def __init__(self, base_dir, cert, mx_table, keys=(), public_url="https://relay.test",
                 extra=""):
        self.dir = str(base_dir)
        self.farm = mx.MXFarm(cert)
        self.mxs = {}
        self.zone = mx.Zone()
        self.txt = {}  # record name -> [strings]
        for domain, (ip, behaviour) in mx_table.items():
            host = f"mx.{domain}"
            self.zone.mx(domain, host).host(host, ip)
            if ip not in self.mxs:
                self.mxs[ip] = self.farm.add(ip, **behaviour)
        http = f"public_url = {public_url}\n" if public_url else ""
        os.makedirs(os.path.join(self.dir, "srv"), exist_ok=True)
        # the fake MX hosts are on 127.0.0.x, inside the default
        # blocked_destinations: a documentation network is blocked instead
        self.srv = Server(os.path.join(self.dir, "srv"), cert,
                          relay={"smarthost": None, "dns_servers": "127.0.0.1:1",
                                 "mx_port": str(self.farm.port), "retry": "1s, 2s",
                                 "queue_lifetime": "1h",
                                 "blocked_destinations": "192.0.2.0/24"},
                          extra=http + "[dkim]\ncheck_interval = 1s\n" + extra)
        for domain, selector, algo in keys:
            self.publish(self.keygen(domain, selector, algo), restart=False)
        d = os.path.join(self.dir, "dns")
        os.makedirs(d, exist_ok=True)
        self.dns = SamePortDNS(d, self._zone()).start()
        self.srv._relay["dns_servers"] = self.dns.address
        self.srv.write_conf()

    # ----- DNS
    def _zone(self):
        z = mx.Zone()
        z.lines = list(self.zone.lines) + [dkim_verify.txt_record_line(n, s)
                                           for n, s in self.txt.items()]
        return z

    def zone_text(self):
        return self._zone().text()

    def publish(self, zone_line, restart=True):
        name, strings = dkim_verify.zone_line(zone_line)
        self.txt[name] = strings
        if restart:
            self.dns.zone = self._zone()
            self.dns.restart()

    # ----- keys
    def keygen(self, domain, selector, algo="rsa2048"):
        rc, out, err = self.srv.cli("dkim", "keygen", domain, "--selector", selector,
                                    "--algo", algo)
        assert rc == 0, f"dkim keygen {domain}: {err}"
        return out.strip()

    def stop(self):
        """Stops everything; then every line of the server's log has one identity
        (helpers.check_identities: the DKIM and List-Unsubscribe lines are the message's)."""
        errors = []
        for step in (self.srv.stop, lambda: helpers.check_identities(self.srv.log()),
                     self.dns.stop, self.farm.stop):
            try:
                step()
            except BaseException as e:  # stop everything, report the first
                errors.append(e)
        if errors:
            raise errors[0]

    # ----- mail
    def send(self, frm, rcpts, data, mail_options=(), login=None):
        """One message over smtplib (AUTH PLAIN with login=(user, pw));
        (queue ID, reply text)."""
        text = helpers.send_ok(self.srv.port, frm, rcpts, data, mail_options, login)
        return helpers.queued_id(text), text.decode()

    def received(self, ip, rcpt, n=1, timeout=WAIT):
        """The transactions at fake MX ip addressed to rcpt, once there are n."""
        m = self.mxs[ip]

        def got():
            with m.lock:
                found = [t for t in m.messages if rcpt.lower() in [r.lower() for r in t.rcpts]]
            return found if len(found) >= n else None
        try:
            return mx.alive_poll(self.srv, got, timeout, what=f"{n} message(s) to {rcpt}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nserver log:\n{mx.log_excerpt(self.srv, n=40)}") \
                from None

    # ----- verifying
    def verify(self, msg):
        """{selector: (dkimpy ok, opendkim ok, details)} for every signature."""
        out = {}
        for i, (sel, algo, ok, detail) in enumerate(dkim_verify.dkimpy_verify(msg,
                                                                             self.dns.port)):
            one = dkim_verify.only_signature(msg, i)
            ok2, detail2 = dkim_verify.opendkim_verify(one, self.zone_text(), self.dir)
            out[sel] = (ok, ok2, f"{algo}: dkimpy: {detail} opendkim: {detail2}")
        return out

    def assert_verifies(self, msg, selectors):
        v = self.verify(msg)
        assert sorted(v) == sorted(selectors), (sorted(v), selectors)
        for sel, (ok, ok2, detail) in v.items():
            assert ok and ok2, f"{sel} does not verify: {detail}"
        return v


def selectors(msg):
    return sorted(dkim_verify.tags(f)["s"] for f in dkim_verify.signature_fields(msg))


def log_lines(srv, needle):
    return [l for l in srv.log().splitlines() if needle in l]


def wait_log(srv, pattern, timeout=WAIT, more_than=0):
    """The log lines matching pattern, once there are more than more_than."""
    rx = re.compile(pattern)

    def found():
        lines = [l for l in srv.log().splitlines() if rx.search(l)]
        return lines if len(lines) > more_than else None
    return mx.alive_poll(srv, found, timeout, what=f"a log line matching {pattern!r}")


def count_log(srv, pattern):
    rx = re.compile(pattern)
    return len([l for l in srv.log().splitlines() if rx.search(l)])
