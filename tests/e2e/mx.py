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
  defer_always   451 at RCPT, always (True, or a set of addresses)
  reject_rcpt    550 at RCPT, always (True, or a set of addresses)
  data_delay     seconds to sleep before answering the end of DATA
  data_reply     a reply to give at the end of DATA instead of 250

and counts what it sees: connections, sessions in flight (and the most at
once), transactions per connection, RCPT attempts per address, and every
accepted transaction (envelope, content bytes as received after
dot-unstuffing, TLS version, connection number) in `messages`.

Nothing here sleeps for a fixed time: `wait_messages()` and friends poll
with a deadline.
"""
import asyncio
import collections
import os
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

from aiosmtpd.smtp import SMTP

DNSMASQ = "/usr/sbin/dnsmasq"
WAIT = 20.0  # generous: the ASan build is 2-3x slower


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
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


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

    def text(self):
        return "\n".join(self.lines) + "\n"


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

    def start(self):
        with open(self.conf, "w") as f:
            f.write(self.zone.text())
        for _ in range(5):
            self.port = _free_tcp_udp_port()
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [DNSMASQ, "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
                 "--listen-address=127.0.0.1", f"--port={self.port}",
                 f"--conf-file={self.conf}", "--log-queries", "--log-facility=-",
                 "--pid-file="],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            log.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break  # port taken meanwhile: pick another
                try:
                    self.query("probe.test", 1, timeout=0.2)
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
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


class FakeMX:
    """One fake MX on one address; see the module doc for the behaviours."""

    def __init__(self, farm, ip, tls=False, greet_421=False, defer_first=0,
                 defer_always=False, reject_rcpt=False, data_delay=0.0, data_reply=None,
                 hostname=None):
        self.farm = farm
        self.ip = ip
        self.tls = tls
        self.greet_421 = greet_421
        self.defer_first = defer_first
        self.defer_always = defer_always
        self.reject_rcpt = reject_rcpt
        self.data_delay = data_delay
        self.data_reply = data_reply
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
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # aiosmtpd gives "<>" for the null reverse-path (kept in the envelope:
        # aiosmtpd takes an empty mail_from for "no MAIL yet"; a Transaction has "")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.rcpt_tries[address] += 1
            tries = self.rcpt_tries[address]
        if _matches(self.reject_rcpt, address):
            reply = f"550 5.1.1 <{address}>: fake mailbox unavailable here"
        elif _matches(self.defer_always, address) or tries <= self.defer_first:
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
        super().__init__(mx, hostname=mx.hostname, tls_context=ctx, require_starttls=False,
                         loop=loop, timeout=60)
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
