"""A validating resolver for the DANE tests: unbound (Debian `unbound`),
run in the foreground with a config of its own, serving two zones from
files as its upstream data (auth-zone, for-upstream):

  - a DNSSEC-signed zone (keys made by ldns-keygen, signed by
    ldns-signzone from Debian `ldnsutils`) whose DS record is unbound's
    only trust anchor: answers from it come with the AD bit;
  - an unsigned zone: answers from it are insecure (no AD).

Nothing touches the system: no root trust anchor is fetched (there is no
auto-trust-anchor-file), no root hints are needed, no privileges are
dropped (username ""), no chroot, no pid file, no syslog; it listens on
127.0.0.1:<free port> (UDP and TCP), which the server under test uses as
its dns_servers with dnssec = trust_ad.

A record can be made bogus after signing (corrupt()), so the resolver
answers SERVFAIL for it: the TLSA lookup failure of RFC 7672 2.2.
"""
import os
import subprocess
import time

import dns.flags
import dns.message
import dns.query

from mx import TestDNS, _free_tcp_udp_port

UNBOUND = "/usr/sbin/unbound"


def _run(*args, cwd):
    return subprocess.run(list(args), check=True, capture_output=True, cwd=cwd,
                          text=True).stdout


class Zone:
    """Zone file lines for one origin (names relative to it, or absolute)."""

    def __init__(self, origin):
        self.origin = origin.rstrip(".")
        self.lines = [f"@ IN SOA ns.{self.origin}. hostmaster.{self.origin}. 1 3600 600 86400 60",
                      f"@ IN NS ns.{self.origin}.", "ns IN A 127.0.0.1"]
        self.bogus = []

    def add(self, line):
        self.lines.append(line)
        return self

    def corrupt(self, owner, rtype):
        """After signing, the RRSIG over (owner, rtype) is damaged: bogus."""
        self.bogus.append((owner.rstrip(".") + ".", rtype))
        return self

    def text(self):
        return f"$ORIGIN {self.origin}.\n$TTL 60\n" + "\n".join(self.lines) + "\n"


def _corrupt_rrsigs(path, bogus):
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            for owner, rtype in bogus:
                if len(parts) > 5 and parts[0] == owner and parts[3] == "RRSIG" \
                        and parts[4] == rtype:
                    sig = parts[-1]
                    parts[-1] = ("A" if sig[0] != "A" else "B") + sig[1:]
                    line = "\t".join(parts) + "\n"
            out.append(line)
    with open(path, "w") as f:
        f.writelines(out)


def sign(directory, zone):
    """Writes and signs zone; returns (signed file, DS record text)."""
    d = str(directory)
    name = zone.origin
    plain = os.path.join(d, f"{name}.zone")
    with open(plain, "w") as f:
        f.write(zone.text())
    ksk = _run("ldns-keygen", "-a", "ECDSAP256SHA256", "-k", name, cwd=d).strip()
    zsk = _run("ldns-keygen", "-a", "ECDSAP256SHA256", name, cwd=d).strip()
    _run("ldns-signzone", plain, zsk, ksk, cwd=d)
    signed = plain + ".signed"
    _corrupt_rrsigs(signed, zone.bogus)
    with open(os.path.join(d, ksk + ".ds")) as f:
        ds = f.read().split()
    # "name. IN DS tag alg digesttype digest" (the class may be left out)
    ds = [x for x in ds if x != "IN"]
    return signed, " ".join(ds)


class Unbound:
    __test__ = False

    def __init__(self, directory, signed_zone, plain_zone):
        self.dir = str(directory)
        self.signed_zone = signed_zone
        self.plain_zone = plain_zone
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.dir, "unbound.log")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _conf(self, signed_file, ds, plain_file):
        return f"""server:
  interface: 127.0.0.1
  port: {self.port}
  do-ip6: no
  use-syslog: no
  logfile: ""
  verbosity: 1
  val-log-level: 2
  username: ""
  chroot: ""
  directory: "{self.dir}"
  pidfile: ""
  do-daemonize: no
  do-not-query-localhost: no
  module-config: "validator iterator"
  trust-anchor: "{ds}"
  local-zone: "test." nodefault
  cache-max-ttl: 5
  cache-max-negative-ttl: 5
auth-zone:
  name: "{self.signed_zone.origin}."
  zonefile: "{signed_file}"
  for-downstream: no
  for-upstream: yes
auth-zone:
  name: "{self.plain_zone.origin}."
  zonefile: "{plain_file}"
  for-downstream: no
  for-upstream: yes
"""

    def start(self):
        signed_file, ds = sign(self.dir, self.signed_zone)
        plain_file = os.path.join(self.dir, f"{self.plain_zone.origin}.zone")
        with open(plain_file, "w") as f:
            f.write(self.plain_zone.text())
        for _ in range(5):
            self.port = _free_tcp_udp_port()
            conf = os.path.join(self.dir, "unbound.conf")
            with open(conf, "w") as f:
                f.write(self._conf(signed_file, ds, plain_file))
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen([UNBOUND, "-d", "-c", conf], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
            log.close()
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"unbound did not start:\n{self.log()}")

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                self.query(f"ns.{self.signed_zone.origin}", "A", timeout=0.3)
                return True
            except Exception:
                time.sleep(0.1)
        return False

    def query(self, name, rtype, timeout=2.0):
        """(rcode, AD set, answer RRsets) of one query asking for AD."""
        q = dns.message.make_query(name, rtype)
        q.flags |= dns.flags.AD
        r = dns.query.udp(q, "127.0.0.1", port=self.port, timeout=timeout)
        return r.rcode(), bool(r.flags & dns.flags.AD), r.answer

    # the same process handling as the dnsmasq of mx.py
    stop = TestDNS.stop
    log = TestDNS.log
