"""What the DKIM end-to-end tests share: a data directory with keys made
by the real CLI, a test DNS (dnsmasq) publishing their records, the test
signer (build/tests/dkim-tool, the stream API as the accept path will use
it) and both verifiers (dkim_verify.py).

Imported by tests/e2e/test_dkim*.py (which put this folder on sys.path);
mx and conftest come from tests/e2e.
"""
import json
import os
import subprocess

import mx
from conftest import assert_no_sanitizer_report, sanitizer_env

import dkim_verify


def tool_path():
    d = os.environ.get("POSTHORN_TOOLS") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tests")
    p = os.path.abspath(os.path.join(d, "dkim-tool"))
    assert os.access(p, os.X_OK), f"{p} is missing: make e2e builds it"
    return p


class DkimEnv:
    """A posthorn config (server not started) whose [relay] dns_servers is
    a dnsmasq publishing the TXT records given to publish()."""

    def __init__(self, server, workdir):
        self.srv = server
        self.dir = str(workdir)
        self.records = {}  # name -> [strings]
        self.dns = None
        self.restart_dns()

    # ----- DNS
    def zone(self):
        z = mx.Zone()
        z.lines += [dkim_verify.txt_record_line(n, s) for n, s in self.records.items()]
        return z

    def zone_text(self):
        return self.zone().text()

    def restart_dns(self):
        """(Re)starts dnsmasq with the records; it may get a new port, so
        the config is rewritten to point at it."""
        if self.dns:
            self.dns.stop()
        self.n_dns = getattr(self, "n_dns", 0) + 1
        d = os.path.join(self.dir, f"dns{self.n_dns}")
        os.mkdir(d)
        self.dns = mx.TestDNS(d, self.zone()).start()
        self.srv._relay["dns_servers"] = self.dns.address
        self.srv.write_conf()

    def publish(self, zone_line, restart=True):
        name, strings = dkim_verify.zone_line(zone_line)
        self.records[name] = strings
        if restart:
            self.restart_dns()

    def unpublish(self, name):
        self.records.pop(name, None)
        self.restart_dns()

    def stop(self):
        if self.dns:
            self.dns.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ----- keys
    def keys(self):
        """`dkim list --json`, one dict per key."""
        rc, out, err = self.srv.cli("dkim", "list", "--json")
        assert rc == 0, err
        return [json.loads(l) for l in out.splitlines()]

    def keygen(self, domain, *opts, publish=True):
        rc, out, err = self.srv.cli("dkim", "keygen", domain, *opts)
        assert rc == 0, f"dkim keygen {domain} {opts}: {rc} {err}"
        line = out.strip()
        if publish:
            self.publish(line)
        return line

    # ----- signing
    def sign(self, msg, chunk=4096):
        """(exit code, signed message, result name) from dkim-tool sign."""
        p = subprocess.run([tool_path(), "sign", self.srv.data_dir, str(chunk)], input=msg,
                           capture_output=True, timeout=60, env=sanitizer_env())
        err = p.stderr.decode("utf-8", "replace")
        assert_no_sanitizer_report(err, "dkim-tool sign")
        result = [w.split("=", 1)[1] for w in err.split() if w.startswith("result=")]
        assert result, f"dkim-tool sign said nothing: {err}"
        return p.returncode, p.stdout, result[-1]

    def watch(self, ms=None):
        """The server's watch (dkim_watch): one rotation round, or its timers
        for ms milliseconds; ({activated, signing, rounds}, stderr)."""
        args = [tool_path(), "watch", self.srv.data_dir, self.dns.address]
        p = subprocess.Popen(args + ([str(ms)] if ms else []), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=sanitizer_env())
        return p

    def watch_result(self, p):
        out, err = p.communicate(timeout=60)
        assert_no_sanitizer_report(err, "dkim-tool watch")
        assert p.returncode == 0, f"dkim-tool watch: exit {p.returncode}: {err}"
        return dict(l.split("=", 1) for l in out.split()), err

    def watch_once(self):
        return self.watch_result(self.watch())

    # ----- verifying
    def verify(self, signed):
        """{selector: (dkimpy ok, opendkim ok, details)} for every signature."""
        out = {}
        for i, (sel, algo, ok, detail) in enumerate(dkim_verify.dkimpy_verify(signed,
                                                                             self.dns.port)):
            one = dkim_verify.only_signature(signed, i)
            ok2, detail2 = dkim_verify.opendkim_verify(one, self.zone_text(), self.dir)
            out[sel] = (ok, ok2, f"{algo}: dkimpy: {detail} opendkim: {detail2}")
        return out

    def assert_verifies(self, signed, selectors):
        """Exactly these selectors signed, and both verifiers pass each."""
        v = self.verify(signed)
        assert sorted(v) == sorted(selectors), (sorted(v), selectors)
        for sel, (ok, ok2, detail) in v.items():
            assert ok and ok2, f"{sel} does not verify: {detail}"
        return v


def fresh(server_factory, tmp_path, grace):
    """A DkimEnv for one test: a config with [dkim] rotation_grace = grace."""
    d = tmp_path / "dns"
    d.mkdir()
    return DkimEnv(server_factory(start=False, extra=f"[dkim]\nrotation_grace = {grace}"), d)
