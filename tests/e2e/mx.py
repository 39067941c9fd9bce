"""Delivery test peers: a test DNS (dnsmasq) and fake MX servers (aiosmtpd).

DNS: `Zone` collects records, `TestDNS` serves them with dnsmasq-base on
127.0.0.1:<free port> (UDP and TCP). The config holds `local=/test/`, so a
name under .test that has no record is NXDOMAIN (not REFUSED), and a name
that has records of other types is NOERROR/NODATA. A null MX (RFC 7505) is
`mx-host=DOMAIN,.,0`: dnsmasq 2.90 accepts "." as the target and answers
`DOMAIN. 0 IN MX 0 .` (checked by `TestDNS.query`, see test_delivery.py).

MX: `MXFarm` runs one asyncio loop in a thread and, on it, any number of
`FakeMX` servers, one per loopback address (127.0.0.11, .12, ... or ::1),
all on ONE shared TCP port (`farm.port`, the server's `mx_port`). Each
FakeMX has a behaviour that tests may change while it runs (plain
attributes, read at each command):

  tls            advertise STARTTLS (with the session cert), never require it
  greet_421      answer the greeting with 421 and close
  defer_first    451 at RCPT for the first N attempts of each address
                 (an int for every address, or a dict address -> N)
  defer_always   451 at RCPT, always (True, or a set of addresses)
  reject_rcpt    550 at RCPT, always (True, or a set of addresses)
  data_delay     seconds to sleep before answering the end of DATA
  data_reply     a reply to give at the end of DATA instead of 250
  data_defer_first  451 at the end of DATA for the first N transactions
  size_limit     SIZE advertised in EHLO and enforced (aiosmtpd's default
                 is 32 MiB)
  smtputf8       advertise SMTPUTF8 (aiosmtpd's enable_SMTPUTF8)
  tls_broken     advertise STARTTLS but fail every handshake (the server
                 side demands a client certificate that never comes)
  tls_context    an ssl context of its own (a certificate for its MX name)
                 instead of the farm's session certificate
  requiretls     advertise REQUIRETLS after STARTTLS and take the MAIL
                 parameter (RFC 8689), recorded in mail_options
  (construction only: size_limit, smtputf8, tls, tls_broken, tls_context)

and counts what it sees: connections, sessions in flight (and the most at
once), transactions per connection, RCPT attempts per address, and every
accepted transaction (envelope, content bytes as received after
dot-unstuffing, TLS version, connection number, the client's address and
EHLO name) in `messages`.

Nothing here sleeps for a fixed time: `wait_messages()` and friends poll
with a deadline.
"""
import asyncio
import collections
import importlib.util
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
import uuid

import pytest
from aiosmtpd.smtp import SMTP

import helpers

DNSMASQ = "/usr/sbin/dnsmasq"
WAIT = 25.0  # deadline for what should happen "soon" (the ASan build is 2-3x slower)


def _free_tcp_udp_port(host="127.0.0.1"):
    """A port free for both TCP and UDP on host (racy, like every such pick)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP+UDP port")


def poll(pred, timeout=WAIT, interval=0.05, what="condition"):
    return helpers.wait_for(pred, timeout=timeout, interval=interval, what=what)


# ---------------------------------------------------------------- DNS


class Zone:
    """dnsmasq records for the test zone."""

    def __init__(self):
        self.lines = ["local=/test/"]

    def mx(self, domain, host, pref=10):
        self.lines.append(f"mx-host={domain},{host},{pref}")
        return self

    def null_mx(self, domain):
        self.lines.append(f"mx-host={domain},.,0")
        return self

    def host(self, name, *addrs):
        self.lines.append(f"host-record={name},{','.join(addrs)}")
        return self

    def txt(self, name, *strings):
        quoted = ",".join('"' + x.replace('"', '\\"') + '"' for x in strings)
        self.lines.append(f"txt-record={name},{quoted}")
        return self

    def text(self):
        return "\n".join(self.lines) + "\n"


def mx_zone(hosts):
    """A Zone where each domain of hosts ({domain: ip}) has one MX,
    mx.<domain>, at that address: what most tests' build_zone() serves."""
    z = Zone()
    for domain, ip in hosts.items():
        z.mx(domain, f"mx.{domain}").host(f"mx.{domain}", ip)
    return z


class TestDNS:
    """dnsmasq serving a Zone on 127.0.0.1:port (UDP and TCP)."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory, zone):
        self.dir = str(directory)
        self.zone = zone
        self.conf = os.path.join(self.dir, "dnsmasq.conf")
        self.log_path = os.path.join(self.dir, "dnsmasq.log")
        self.proc = None
        self.port = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def write_zone(self):
        with open(self.conf, "w") as f:
            f.write(self.zone.text())

    def spawn(self, port, within):
        """dnsmasq on port: True once it answers, False (and stopped) when it
        exits (the port is taken) or stays silent for `within` seconds."""
        self.port = port
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [DNSMASQ, "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
             "--listen-address=127.0.0.1", f"--port={port}", f"--conf-file={self.conf}",
             "--log-queries", "--log-facility=-", "--pid-file="],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self.query("probe.test", 1, timeout=0.2)
                return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        return False

    def start(self):
        self.write_zone()
        for _ in range(5):  # a port taken meanwhile: pick another
            if self.spawn(_free_tcp_udp_port(), 10):
                return self
        raise RuntimeError(f"dnsmasq did not start:\n{self.log()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def query(self, name, qtype, timeout=2.0):
        """(rcode, answer count, raw reply) of one UDP query (qtype 1=A, 15=MX, 28=AAAA)."""
        qid = os.getpid() & 0xFFFF
        q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        for label in name.rstrip(".").split("."):
            q += bytes([len(label)]) + label.encode()
        q += b"\0" + struct.pack(">HH", qtype, 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(q, ("127.0.0.1", self.port))
            data, _ = s.recvfrom(4096)
        _, flags, _, ancount, _, _ = struct.unpack(">HHHHHH", data[:12])
        return flags & 0xF, ancount, data


# ---------------------------------------------------------------- fake MX


class Transaction:
    def __init__(self, mx, conn, mail_from, mail_options, rcpts, rcpt_options, content, tls):
        self.mx = mx
        self.ip = mx.ip
        self.conn = conn
        self.mail_from = mail_from
        self.mail_options = mail_options
        self.rcpts = rcpts
        self.rcpt_options = rcpt_options
        self.content = content  # bytes, CRLF lines, dots unstuffed
        self.tls = tls          # "TLSv1.3" etc., or None
        self.peer = None        # the client's address
        self.helo = None        # the client's EHLO name

    @property
    def headers(self):
        return self.content.split(b"\r\n\r\n", 1)[0]

    @property
    def body(self):
        parts = self.content.split(b"\r\n\r\n", 1)
        return parts[1] if len(parts) > 1 else b""

    def header(self, name):
        """The first header named name (unfolded, str) or None."""
        import email.parser
        import email.policy
        msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
            self.headers + b"\r\n\r\n")
        v = msg.get(name)
        return None if v is None else " ".join(str(v).split())

    def __repr__(self):
        return (f"Transaction(ip={self.ip}, conn={self.conn}, from={self.mail_from!r}, "
                f"rcpts={self.rcpts!r}, tls={self.tls}, {len(self.content)} bytes)")


def _matches(setting, address):
    """A behaviour switch: True/False for every address, or a set of addresses."""
    if isinstance(setting, (set, frozenset, list, tuple)):
        return address.lower() in {a.lower() for a in setting}
    return bool(setting)


def _first_n(setting, address):
    if isinstance(setting, dict):
        return {a.lower(): n for a, n in setting.items()}.get(address.lower(), 0)
    return setting


class FakeMX:
    """One fake MX on one address; see the module doc for the behaviours."""

    def __init__(self, farm, ip, tls=False, greet_421=False, defer_first=0,
                 defer_always=False, reject_rcpt=False, data_delay=0.0, data_reply=None,
                 data_defer_first=0, size_limit=None, smtputf8=False, tls_broken=False,
                 hostname=None, tls_context=None, requiretls=False):
        self.farm = farm
        self.ip = ip
        self.tls = tls
        self.greet_421 = greet_421
        self.defer_first = defer_first
        self.defer_always = defer_always
        self.reject_rcpt = reject_rcpt
        self.data_delay = data_delay
        self.data_reply = data_reply
        self.data_defer_first = data_defer_first
        self.size_limit = size_limit
        self.smtputf8 = smtputf8
        self.tls_broken = tls_broken
        self.tls_context = tls_context
        self.requiretls = requiretls
        self.data_tries = 0          # ends of DATA seen
        self.mails = []              # (conn, reverse-path, MAIL parameters) of every MAIL
        self.hostname = hostname or f"mx-{ip.replace(':', '_')}.fake"
        self.lock = threading.Lock()
        self.connections = 0         # accepted TCP connections
        self.active = 0              # sessions open now
        self.max_active = 0          # most sessions open at once
        self.txns_per_conn = collections.Counter()  # conn number -> accepted transactions
        self.rcpt_tries = collections.Counter()     # address -> RCPT commands seen
        self.replies = []            # (conn, address, reply) for every RCPT
        self.messages = []           # accepted Transactions
        self.tls_sessions = 0        # connections that completed STARTTLS
        self._protocols = set()
        self._server = None

    # ----- observation -----
    def wait_messages(self, n, timeout=WAIT):
        poll(lambda: len(self.messages) >= n, timeout,
             what=f"{n} transactions at fake MX {self.ip} (have {len(self.messages)})")
        return list(self.messages)

    def delivered_rcpts(self):
        with self.lock:
            return [r for t in self.messages for r in t.rcpts]

    def wait_rcpts(self, rcpts, timeout=WAIT):
        want = set(rcpts)
        poll(lambda: want <= set(self.delivered_rcpts()), timeout,
             what=f"{len(want)} recipients at fake MX {self.ip} "
                  f"(missing {sorted(want - set(self.delivered_rcpts()))[:5]})")

    # ----- hooks (run on the farm's loop) -----
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.requiretls and session.ssl is not None:
            responses.insert(len(responses) - 1, "250-REQUIRETLS")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if getattr(server, "requiretls_param", False):
            mail_options = list(mail_options) + ["REQUIRETLS"]
        # aiosmtpd gives "<>" for the null reverse-path (kept in the envelope:
        # aiosmtpd takes an empty mail_from for "no MAIL yet"; a Transaction has "")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        with self.lock:
            self.mails.append((server.conn_no, "" if address == "<>" else address,
                               list(mail_options)))
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.rcpt_tries[address] += 1
            tries = self.rcpt_tries[address]
        if _matches(self.reject_rcpt, address):
            reply = f"550 5.1.1 <{address}>: fake mailbox unavailable here"
        elif _matches(self.defer_always, address) or tries <= _first_n(self.defer_first, address):
            reply = f"451 4.3.0 <{address}>: fake try again later (attempt {tries})"
        else:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.append(rcpt_options)
            reply = "250 2.1.5 OK"
        with self.lock:
            self.replies.append((server.conn_no, address, reply))
        return reply

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self.lock:
            self.data_tries += 1
            n = self.data_tries
        if n <= self.data_defer_first:
            return f"451 4.3.0 fake end of DATA deferral (transaction {n})"
        if self.data_reply:
            return self.data_reply
        tls = None
        if session.ssl is not None:
            obj = server.transport.get_extra_info("ssl_object")
            tls = obj.version() if obj else "unknown"
        mail_from = "" if envelope.mail_from == "<>" else envelope.mail_from
        t = Transaction(self, server.conn_no, mail_from, list(envelope.mail_options),
                        list(envelope.rcpt_tos), list(envelope.rcpt_options),
                        bytes(envelope.original_content or envelope.content), tls)
        t.peer = session.peer[0] if session.peer else None
        t.helo = session.host_name
        with self.lock:
            self.messages.append(t)
            self.txns_per_conn[server.conn_no] += 1
        return "250 2.0.0 OK fake queued"

    # ----- connection accounting (called by _FakeSMTP) -----
    def _opened(self, proto):
        with self.lock:
            self.connections += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self._protocols.add(proto)
            return self.connections

    def _closed(self, proto):
        with self.lock:
            if proto in self._protocols:
                self._protocols.discard(proto)
                self.active -= 1

    def _tls_done(self):
        with self.lock:
            self.tls_sessions += 1


class _FakeSMTP(SMTP):
    def __init__(self, mx, loop):
        ctx = mx.farm.tls_context if mx.tls else None
        if mx.tls_context:
            ctx = mx.tls_context
        if mx.tls_broken:
            ctx = mx.farm.broken_tls_context
        kw = {}
        if mx.size_limit is not None:
            kw["data_size_limit"] = mx.size_limit
        super().__init__(mx, hostname=mx.hostname, tls_context=ctx, require_starttls=False,
                         enable_SMTPUTF8=mx.smtputf8, loop=loop, timeout=60, **kw)
        self.mx = mx
        self.conn_no = 0

    def connection_made(self, transport):
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self.conn_no = self.mx._opened(self)
        else:
            self.mx._tls_done()

    def connection_lost(self, error):
        self.mx._closed(self)
        super().connection_lost(error)

    async def smtp_MAIL(self, arg):
        # aiosmtpd refuses parameters it does not know: take REQUIRETLS off
        # (when this MX offers it) and let handle_MAIL record it
        words = (arg or "").split()
        self.requiretls_param = self.mx.requiretls and any(
            w.upper() == "REQUIRETLS" for w in words[1:])
        if self.requiretls_param:
            arg = " ".join(w for i, w in enumerate(words) if i == 0 or w.upper() != "REQUIRETLS")
        await super().smtp_MAIL(arg)

    async def _handle_client(self):
        if self.mx.greet_421:
            await self.push(f"421 4.3.2 {self.mx.hostname} fake busy, try later")
            self.transport.close()
            return
        await super()._handle_client()


class MXFarm:
    """Fake MX servers on several loopback addresses, one shared port."""

    def __init__(self, cert=None, port=None):
        self.tls_context = None
        if cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert[0], cert[1])
            self.tls_context = ctx
            bad = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            bad.load_cert_chain(cert[0], cert[1])
            # A client certificate is demanded and no client sends one. TLS 1.2
            # only: in 1.3 the client's handshake completes before the server
            # checks, and the failure shows up later, as a lost connection.
            bad.verify_mode = ssl.CERT_REQUIRED
            bad.load_verify_locations(cert[0])
            bad.maximum_version = ssl.TLSVersion.TLSv1_2
            self.broken_tls_context = bad
        self.port = port or _free_tcp_udp_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="mxfarm", daemon=True)
        self.thread.start()
        self.mxs = {}

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _call(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add(self, ip, **behaviour):
        """Starts a FakeMX listening on ip:port; returns it."""
        assert ip not in self.mxs, f"fake MX {ip} already running"
        mx = FakeMX(self, ip, **behaviour)

        async def start():
            return await self.loop.create_server(lambda: _FakeSMTP(mx, self.loop),
                                                 host=ip, port=self.port, reuse_address=True)
        mx._server = self._call(start())
        self.mxs[ip] = mx
        return mx

    def remove(self, ip):
        """Stops listening on ip and drops its open connections."""
        mx = self.mxs.pop(ip, None)
        if not mx:
            return

        async def stop():
            mx._server.close()
            for p in list(mx._protocols):
                if p.transport is not None:
                    p.transport.close()
            try:
                await asyncio.wait_for(mx._server.wait_closed(), 2)
            except asyncio.TimeoutError:
                pass
        self._call(stop())

    def stop(self):
        for ip in list(self.mxs):
            self.remove(ip)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# ---------------------------------------------------------------- pytest fixtures and server-side helpers


# A test module that imports these fixtures defines build_zone() (-> Zone)
# and SENDER_IP (the fake MX, up for the whole module, that receives DSNs).
# Optionally dns_hook(zone, farm) may add records that need a port (e.g. a
# forwarder to a fake upstream).


@pytest.fixture(scope="module")
def farm(request, cert):
    f = MXFarm(cert)
    f.add(request.module.SENDER_IP)  # receives the DSNs of every test
    yield f
    f.stop()


@pytest.fixture(scope="module")
def dns(request, tmp_path_factory, farm):
    zone = request.module.build_zone()
    hook = getattr(request.module, "dns_hook", None)
    if hook:
        hook(zone, farm)
    d = TestDNS(tmp_path_factory.mktemp("dns"), zone).start()
    yield d
    d.stop()


@pytest.fixture
def mxs(farm):
    """add(ip, **behaviour) -> FakeMX, removed at the end of the test."""
    added = []

    def add(ip, **behaviour):
        mx = farm.add(ip, **behaviour)
        added.append(ip)
        return mx

    yield add
    for ip in added:
        farm.remove(ip)


def mx_relay(dns_servers, farm, **more):
    """[relay] settings delivering to the farm's fake MX hosts through the
    DNS at dns_servers, retrying after 1 s and 2 s; more overrides them.

    The fake MX hosts live on 127.0.0.x, inside the default
    blocked_destinations: block a documentation network instead
    (192.0.2.0/24, RFC 5737), which no test uses, so that every delivery
    still goes through the check. A test wanting the default passes
    blocked_destinations=None."""
    r = {"smarthost": None, "dns_servers": dns_servers, "mx_port": str(farm.port),
         "retry": "1s, 2s", "queue_lifetime": "1h", "blocked_destinations": "192.0.2.0/24"}
    r.update(more)
    return r


@pytest.fixture
def start(server_factory, dns, farm):
    """start(relay={...}, extra="") -> a started Server delivering through the test DNS."""

    def make(relay=None, extra="", **kw):
        return server_factory(relay=mx_relay(dns.address, farm, **(relay or {})), extra=extra,
                              **kw)

    return make


# ---------------------------------------------------------------- helpers

KV_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def log_unescape(v):
    """A log value as sent: log_q writes 8-bit and control bytes as \\xNN."""
    raw = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]),
                 v.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "replace")


def deliveries(srv, qid=None, to=None):
    """The server's event=delivery log lines as dicts (reply unquoted)."""
    out = []
    for line in srv.log().splitlines():
        if "event=delivery " not in line:
            continue
        d = {}
        for k, v in KV_RE.findall(line):
            if v.startswith('"') and v.endswith('"') and len(v) >= 2:
                v = v[1:-1]
            d[k] = v
        d["line"] = line
        if qid and d.get("queue") != qid:
            continue
        # log_q quotes values with non-ASCII bytes, as \xNN: to=<"j\xc3\xbcrgen@x.test">
        if to and log_unescape(d.get("to", "").strip("<>").strip('"')).lower() != to.lower():
            continue
        out.append(d)
    return out


def check_alive(srv):
    """Fails at once (instead of at a deadline) when the server has died."""
    rc = srv.proc.poll() if srv.proc else None
    if rc is not None:
        raise AssertionError(f"posthorn serve exited unexpectedly with {rc} (a signal "
                             f"from outside the test if the log shows event=shutdown):\n"
                             f"{log_excerpt(srv, n=30)}")


def alive_poll(srv, pred, timeout, what, interval=0.05):
    def p():
        check_alive(srv)
        return pred()
    return poll(p, timeout, interval=interval, what=what)


def log_excerpt(srv, *needles, n=40):
    lines = [l for l in srv.log().splitlines() if not needles or any(x in l for x in needles)]
    return "\n".join(lines[-n:])


def wait_status(srv, qid, to, status, timeout=WAIT):
    """Waits for a delivery line of qid/to with status; returns it."""
    def pred():
        for d in deliveries(srv, qid, to):
            if d.get("status") == status:
                return d
        return None
    try:
        return alive_poll(srv, pred, timeout, what=f"status={status} for {to} ({qid})")
    except AssertionError as e:
        raise AssertionError(f"{e}\nserver log:\n{log_excerpt(srv, n=60)}") from None


def wait_rcpts(mx, rcpts, srv, timeout=WAIT):
    """mx.wait_rcpts, with the server's log in the failure message."""
    want = set(rcpts)
    try:
        alive_poll(srv, lambda: want <= set(mx.delivered_rcpts()), timeout,
                   what=f"{len(want)} recipients at fake MX {mx.ip}")
    except AssertionError as e:
        missing = sorted(want - set(mx.delivered_rcpts()))
        raise AssertionError(f"{e} (missing {len(missing)}: {missing[:5]})\nserver log:\n"
                             f"{log_excerpt(srv, n=60)}") from None


def wait_msgs(mx, n, srv, timeout=WAIT):
    """mx.wait_messages (n transactions at least), checking the server lives."""
    try:
        alive_poll(srv, lambda: len(mx.messages) >= n, timeout,
                   what=f"{n} transactions at fake MX {mx.ip}")
    except AssertionError as e:
        raise AssertionError(f"{e} (have {len(mx.messages)})\nserver log:\n"
                             f"{log_excerpt(srv, n=60)}") from None
    return list(mx.messages)


def wait_queue_empty(srv, timeout=WAIT):
    last = {}

    def pred():
        nonlocal last
        last = srv.queue()
        return not last
    try:
        alive_poll(srv, pred, timeout, interval=0.2, what="an empty queue")
    except AssertionError as e:
        raise AssertionError(f"{e}: still queued {last}\nserver log:\n"
                             f"{log_excerpt(srv, n=60)}") from None


def msg_bytes(frm, to, subject, body=b"Hello there.\r\n", msgid=None, extra=b""):
    msgid = msgid or f"<{uuid.uuid4().hex}@sender.test>"
    to_h = ", ".join(f"<{t}>" for t in ([to] if isinstance(to, str) else to))
    head = (f"From: <{frm}>\r\nTo: {to_h}\r\nSubject: {subject}\r\n"
            f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: {msgid}\r\n").encode()
    return head + extra + b"\r\n" + body


def submit(srv, frm, rcpts, data):
    """One message over smtplib; returns the queue ID."""
    return helpers.send_raw_message(srv.port, frm, rcpts, data)


def submit_many(srv, items):
    """Several messages [(frm, rcpts, data)] in ONE client session; queue IDs."""
    ids = []
    with helpers.smtp(srv.port) as s:
        s.ehlo("client.test")
        for frm, rcpts, data in items:
            code, text = s.mail(frm)
            assert code == 250, (code, text)
            for r in rcpts:
                code, text = s.rcpt(r)
                assert code == 250, (code, text)
            code, text = s.data(data)
            assert code == 250, (code, text)
            ids.append(helpers.queued_id(text))
    return ids


def dsns_to(farm, addr):
    """Null-sender transactions at any fake MX addressed to addr."""
    out = []
    for mx in list(farm.mxs.values()):
        with mx.lock:
            out += [t for t in mx.messages
                    if t.mail_from == "" and addr.lower() in [r.lower() for r in t.rcpts]]
    return out


def wait_dsn(farm, addr, srv, timeout=WAIT):
    """The first DSN to addr; fails at once if the log says it was dropped."""
    dropped = f"event=bounce_dropped to=<{addr}>"

    def pred():
        got = dsns_to(farm, addr)
        if not got and dropped in srv.log():
            raise AssertionError(f"the DSN to {addr} was not delivered and was dropped")
        return got
    try:
        return alive_poll(srv, pred, timeout, what=f"a DSN to {addr}")[0]
    except AssertionError as e:
        raise AssertionError(f"{e}\nserver log:\n{log_excerpt(srv, n=60)}") from None


_parse_dsn = None


def parse_dsn(raw):
    """tests/e2e_support/parse_dsn.py's reading of a DSN."""
    global _parse_dsn
    if _parse_dsn is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e_support",
                            "parse_dsn.py")
        spec = importlib.util.spec_from_file_location("parse_dsn", path)
        _parse_dsn = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_parse_dsn)
    return _parse_dsn.parse(raw)


def assert_failure_dsn(t, rcpt, status_re, diag_contains=None, subject=None):
    """Common checks on a DSN transaction t for one failed recipient."""
    info = parse_dsn(t.content)
    assert info["content_type"] == "multipart/report", info
    assert info["report_type"] == "delivery-status", info
    rs = [r for r in info["recipients"] if rcpt.lower() in (r["final_recipient"] or "").lower()]
    assert rs, f"no per-recipient block for {rcpt}: {info['recipients']}"
    r = rs[0]
    assert (r["action"] or "").strip().lower() == "failed", r
    assert re.fullmatch(status_re, (r["status"] or "").strip()), r
    if diag_contains:
        assert diag_contains in (r["diagnostic_code"] or ""), r
    if subject:
        assert info["returned_headers"] and subject in (info["returned_headers"]["Subject"] or ""), \
            info
    return info




class FakeUpstreamDNS:
    """A UDP DNS server that answers every query with one rcode (2 SERVFAIL,
    5 REFUSED): the upstream of a dnsmasq `server=/DOMAIN/127.0.0.1#PORT`
    line, to make temporary DNS failures for one domain."""

    def __init__(self, rcode=2):
        self.rcode = rcode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.thread = threading.Thread(target=self._run, name="fakeupstream", daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if len(data) < 12:
                continue
            self.queries += 1
            qid, flags = struct.unpack(">HH", data[:4])
            flags = 0x8000 | (flags & 0x0100) | 0x0080 | self.rcode  # QR, RD copied, RA
            reply = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 0) + data[12:]
            # keep the question section only
            q = data[12:]
            end = q.index(b"\0") + 5 if b"\0" in q else len(q)
            reply = reply[:12] + q[:end]
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                return

    def stop(self):
        self.sock.close()
