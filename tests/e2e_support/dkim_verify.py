#!/usr/bin/python3
"""Independent DKIM verifiers for the end-to-end tests, each reading the
public key from the test DNS (a dnsmasq serving TXT records):

- dkimpy (Debian python3-dkim), with a dnsfunc that asks the test dnsmasq
  through dnspython;
- opendkim-testmsg (Debian opendkim-tools). It takes no resolver option:
  libopendkim looks keys up with the C library's resolver, which reads
  /etc/resolv.conf and speaks to port 53 only. So it runs inside a fresh
  mount + network namespace (`unshare -mn` as root, `unshare -rmn` with a
  user namespace otherwise): there, the loopback
  interface is brought up, a dnsmasq serving the same zone listens on
  127.0.0.1:53, and a resolv.conf naming it is bind-mounted over
  /etc/resolv.conf. Nothing outside the namespace is touched, and no
  privilege is needed beyond what unprivileged user namespaces give.

The verifiers judge one signature at a time: opendkim-testmsg passes a
message when any one signature verifies, so for dual-signed mail each
signature is checked in a copy that keeps only it (DKIM-Signature fields
are never signed, so dropping one does not break another).

Run as a script, this file is the part inside the namespace:
  dkim_verify.py ZONE_CONF MESSAGE   (exit status of opendkim-testmsg)
"""
import fcntl
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

DNSMASQ = "/usr/sbin/dnsmasq"
TESTMSG = "/usr/sbin/opendkim-testmsg"
TXT_MAX = 255


# ---------------------------------------------------------------- records


def zone_line(line):
    """(name, [strings]) of one `NAME. IN TXT "a" "b"` line, as keygen prints it."""
    m = re.fullmatch(r'(\S+)\. IN TXT((?: "[^"\\]*")+)', line.strip())
    assert m, f"not a zone-file TXT line: {line!r}"
    return m.group(1), re.findall(r'"([^"]*)"', m.group(2))


def txt_record_line(name, strings):
    """dnsmasq's txt-record= line publishing strings at name."""
    for s in strings:
        assert len(s.encode()) <= TXT_MAX and '"' not in s and "\\" not in s, s
    return f"txt-record={name}," + ",".join(f'"{s}"' for s in strings)


# ---------------------------------------------------------------- messages

_SIG_RE = re.compile(rb"^DKIM-Signature:.*?(?=\r\n(?![ \t]))\r\n", re.S | re.M | re.I)


def header_section(msg):
    return msg.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def signature_fields(msg):
    """Each DKIM-Signature field of the header section, with its CRLF."""
    return _SIG_RE.findall(header_section(msg))


def tags(field):
    """The tags of one DKIM-Signature field: {name: value}, blanks removed."""
    value = field.split(b":", 1)[1]
    out = {}
    for part in value.split(b";"):
        part = re.sub(rb"\s+", b"", part)
        if part:
            k, v = part.split(b"=", 1)
            out[k.decode()] = v.decode()
    return out


def only_signature(msg, i):
    """msg keeping its i-th DKIM-Signature field and no other."""
    head, sep, body = msg.partition(b"\r\n\r\n")
    fields = signature_fields(msg)
    keep = fields[i]
    head += b"\r\n"
    for f in fields:
        if f is not keep:
            head = head.replace(f, b"", 1)
    return head[:-2] + sep + body


# ---------------------------------------------------------------- dkimpy


def dkimpy_verify(msg, dns_port):
    """[(selector, algorithm, ok, detail)] for every signature, by dkimpy."""
    import dkim
    import dns.resolver

    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = dns_port
    r.lifetime = 10

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        try:
            ans = r.resolve(n, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(ans[0].strings)

    out = []
    for i, field in enumerate(signature_fields(msg)):
        t = tags(field)
        try:
            ok, detail = dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc), ""
        except dkim.DKIMException as e:
            ok, detail = False, str(e)
        out.append((t["s"], t["a"], bool(ok), detail))
    return out


# ---------------------------------------------------------------- opendkim-testmsg


def opendkim_verify(msg, zone_text, workdir):
    """(ok, stderr) of opendkim-testmsg on msg (one signature), keys from zone_text."""
    fd, zone = tempfile.mkstemp(dir=workdir, suffix=".conf")
    os.write(fd, zone_text.encode())
    os.close(fd)
    fd, path = tempfile.mkstemp(dir=workdir, suffix=".eml")
    os.write(fd, msg)
    os.close(fd)
    # As root, no user namespace is needed, and none may be made inside a
    # chroot (unshare(2): EPERM); others need one for the mount and network.
    flags = "-mn" if os.geteuid() == 0 else "-rmn"
    p = subprocess.run(["unshare", flags, sys.executable or "/usr/bin/python3",
                        os.path.abspath(__file__), zone, path],
                       capture_output=True, text=True, timeout=60)
    assert "namespace:" not in p.stderr and "unshare:" not in p.stderr, (
        f"cannot run opendkim-testmsg in a namespace of its own: {p.stderr}")
    return p.returncode == 0, p.stderr + p.stdout


def _loopback_up():
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, ifr)[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))


def _dns_ready(deadline):
    q = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x05probe\x04test\x00" + \
        struct.pack(">HH", 1, 1)
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(q, ("127.0.0.1", 53))
                s.recvfrom(512)
                return
            except OSError:
                time.sleep(0.05)
    raise SystemExit("namespace: dnsmasq did not answer on 127.0.0.1:53")


def _inner(zone, path):
    """Inside the namespace: DNS on 127.0.0.1:53, resolv.conf, the verifier."""
    try:
        _loopback_up()
    except OSError as e:
        raise SystemExit(f"namespace: cannot bring lo up: {e}")
    dnsmasq = subprocess.Popen(
        [DNSMASQ, "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
         "--listen-address=127.0.0.1", "--port=53", f"--conf-file={zone}", "--pid-file=",
         "--user=root", "--log-facility=-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _dns_ready(time.monotonic() + 10)
        resolv = zone + ".resolv"
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n")
        m = subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"],
                           capture_output=True, text=True)
        if m.returncode:
            raise SystemExit(f"namespace: cannot mount resolv.conf: {m.stderr}")
        with open(path, "rb") as msg:
            return subprocess.run([TESTMSG], stdin=msg, timeout=30).returncode
    finally:
        dnsmasq.send_signal(signal.SIGTERM)
        dnsmasq.wait(10)


if __name__ == "__main__":
    sys.exit(_inner(sys.argv[1], sys.argv[2]))
