"""End-to-end harness: starts a real `posthorn serve` on loopback ports with a
temp config and data dir, and checks at teardown that it stops cleanly
(SIGTERM -> exit 0) and that no sanitizer report reached its stderr."""
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

import helpers
import pg

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ERROR: ThreadSanitizer", "==ERROR:")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def posthorn_bin():
    b = os.environ.get("POSTHORN_BIN")
    if not b:
        here = os.path.dirname(os.path.abspath(__file__))
        b = os.path.join(here, "..", "..", "build", "posthorn")
    return os.path.abspath(b)


_handed_out = set()


def free_port():
    """A free loopback port not handed out before in this test run: the
    kernel may give the same free port twice in a row, and two listeners of
    one config must not share one."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def sanitizer_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


def assert_no_sanitizer_report(text, who):
    for m in SANITIZER_MARKERS:
        assert m not in text, f"{who}: sanitizer report on stderr:\n{text[-6000:]}"


_pg = None


def pg_cluster():
    """The session's PostgreSQL (tests/e2e/pg.py), started on first use."""
    global _pg
    if _pg is None:
        _pg = pg.PgCluster(free_port())
    return _pg


@pytest.fixture(scope="session", autouse=True)
def _pg_stop():
    yield
    if _pg is not None:
        _pg.close()


@pytest.fixture(scope="session", autouse=True)
def _check_binary():
    b = posthorn_bin()
    if not os.access(b, os.X_OK):
        pytest.fail(f"POSTHORN_BIN {b} is missing or not executable (build it first)",
                    pytrace=False)


@pytest.fixture(scope="session")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "7",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(crt), str(key)


DEFAULT_LISTENER = {"tls": "none", "auth": "optional"}


class Server:
    """One posthorn process (restartable) with its own config and data dir."""

    def __init__(self, base_dir, cert, listeners=None, server=None, relay=None,
                 tls=True, extra="", tls_keys=None, cluster=None):
        self.dir = str(base_dir)
        self.bin = posthorn_bin()
        self.data_dir = os.path.join(self.dir, "data")
        self.conf = os.path.join(self.dir, "posthorn.conf")
        self.log_path = os.path.join(self.dir, "server.stderr")
        self.out_path = os.path.join(self.dir, "server.stdout")
        self.proc = None
        self.listeners = {}
        self._auto_ports = []  # listeners whose port we picked (re-picked on a clash)
        listeners = listeners or {"mx": {}}
        for name, opts in listeners.items():
            o = dict(DEFAULT_LISTENER)
            o.update(opts)
            if "address" not in o:
                self._auto_ports.append(name)
                o["address"] = f"127.0.0.1:{free_port()}"
            self.listeners[name] = o
        self._server = {"hostname": "relay.test", "data_dir": self.data_dir,
                        "min_free_space": "1m"}
        self._server.update(server or {})
        # Mail must stay queued: any delivery attempt goes to a closed port.
        self._relay = {"trusted_networks": "127.0.0.0/8, ::1/128",
                       "smarthost": f"127.0.0.1:{free_port()}",
                       "dns_servers": f"127.0.0.1:{free_port()}"}
        self._relay.update(relay or {})
        self._tls = cert if tls else None
        self._tls_keys = dict(tls_keys or {})  # more [tls] keys (ca_file)
        self._extra = extra
        # [cluster] keys. POSTHORN_TEST_PG=1 runs every server on a fresh
        # PostgreSQL database instead of SQLite (the store's second backend).
        self._cluster = dict(cluster or {})
        if os.environ.get("POSTHORN_TEST_PG") == "1" and "postgres" not in self._cluster:
            self._cluster["postgres"] = pg_cluster().new_db()
        self.http_address = f"127.0.0.1:{free_port()}"
        self.write_conf()

    def write_conf(self):
        lines = ["; written by tests/e2e/conftest.py", "[server]"]
        lines += [f"{k} = {v}" for k, v in self._server.items()]
        for name, o in self.listeners.items():
            lines.append(f"[listener.{name}]")
            lines += [f"{k} = {v}" for k, v in o.items()]
        if self._tls or self._tls_keys:
            lines.append("[tls]")
        if self._tls:
            lines += [f"cert = {self._tls[0]}", f"key = {self._tls[1]}"]
        lines += [f"{k} = {v}" for k, v in self._tls_keys.items()]
        lines.append("[relay]")
        lines += [f"{k} = {v}" for k, v in self._relay.items() if v is not None]
        lines += ["[http]", f"address = {self.http_address}"]
        if self._extra:  # may go on with [http] keys: [cluster] comes after it
            lines.append(self._extra)
        if self._cluster:
            lines.append("[cluster]")
            lines += [f"{k} = {v}" for k, v in self._cluster.items()]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _repick_ports(self):
        for name in self._auto_ports:
            self.listeners[name]["address"] = f"127.0.0.1:{free_port()}"
        self.http_address = f"127.0.0.1:{free_port()}"
        self.write_conf()

    # ----- ports -----
    def port_of(self, name):
        return int(self.listeners[name]["address"].rsplit(":", 1)[1])

    def host_of(self, name):
        return self.listeners[name]["address"].rsplit(":", 1)[0].strip("[]")

    @property
    def port(self):
        return self.port_of(next(iter(self.listeners)))

    # ----- lifecycle -----
    def start(self, wait=True):
        for attempt in range(3):
            self._spawn()
            if not wait:
                return self
            if self.wait_ready(retry_on_clash=(attempt < 2 and self._auto_ports)):
                return self
            # another process took one of our free ports meanwhile: new ports, again
            self._repick_ports()
        return self

    def _spawn(self):
        assert self.proc is None or self.proc.poll() is not None
        # The server answers at once and reads its queue meanwhile
        # (docs/delivery.md); ready means both, as tests assume.
        self._loaded_before = self.log().count("queue_loaded")
        self._err = open(self.log_path, "ab")
        self._out = open(self.out_path, "ab")
        self.proc = subprocess.Popen([self.bin, "serve", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=sanitizer_env(), cwd=self.dir)

    def _probe(self, name):
        o = self.listeners[name]
        try:
            r = helpers.RawSMTP(self.port_of(name), host=self.host_of(name),
                                tls=(o["tls"] == "implicit"), timeout=2)
        except (OSError, ssl.SSLError, ConnectionError):
            return False
        try:
            ok = r.greeting.code == 220
            r.send("QUIT\r\n")
            r.reply()
            r.closed(timeout=5)
        except (OSError, ConnectionError, AssertionError):
            pass
        finally:
            r.close()
        return ok

    def wait_ready(self, retry_on_clash=False):
        deadline = time.monotonic() + START_TIMEOUT
        pending = list(self.listeners)
        while pending:
            rc = self.proc.poll()
            if rc is not None:
                self._close_files()
                if retry_on_clash and "in use" in self.log()[-2000:]:
                    return False
                pytest.fail(f"posthorn serve exited with {rc} during start-up:\n{self.log()}",
                            pytrace=False)
            if self._probe(pending[0]):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                self.kill9()
                pytest.fail(f"posthorn serve not answering 220 within {START_TIMEOUT}s:\n"
                            f"{self.log()}", pytrace=False)
            time.sleep(0.05)
        quiet = (self._server.get("log_level", "info") not in ("debug", "info") or
                 self._server.get("log", "stderr") != "stderr")  # the line is elsewhere
        while not quiet and self.log().count("queue_loaded") <= self._loaded_before:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"posthorn serve did not read its queue within {START_TIMEOUT}s:\n"
                            f"{self.log()[-4000:]}", pytrace=False)
            time.sleep(0.02)
        return True

    def _close_files(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f:
                f.close()

    def stop(self, check=True):
        """SIGTERM; asserts exit 0 within STOP_TIMEOUT and a clean stderr."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
            self._close_files()
            if check:
                assert_no_sanitizer_report(self.log(), "posthorn serve")
                assert rc in (None, 0, -9), f"server had exited with {rc}:\n{self.log()[-4000:]}"
            return rc
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._close_files()
            if check:
                pytest.fail(f"posthorn serve did not exit within {STOP_TIMEOUT}s of SIGTERM "
                            f"(killed):\n{self.log()[-4000:]}", pytrace=False)
            return None
        self._close_files()
        if check:
            assert_no_sanitizer_report(self.log(), "posthorn serve")
            assert rc == 0, f"posthorn serve exited {rc} after SIGTERM:\n{self.log()[-4000:]}"
        return rc

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._close_files()

    def restart(self):
        if self.proc and self.proc.poll() is None:
            self.stop()
        self.proc = None
        return self.start()

    # ----- introspection -----
    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def cli(self, *args, input=None, timeout=60):
        p = subprocess.run([self.bin, "-c", self.conf, *args], input=input,
                           capture_output=True, text=True, timeout=timeout,
                           env=sanitizer_env(), cwd=self.dir)
        assert_no_sanitizer_report(p.stderr, "posthorn " + " ".join(args))
        return p.returncode, p.stdout, p.stderr

    def add_user(self, name=helpers.USER, password=helpers.PASSWORD, domains=(helpers.USER_DOMAIN,)):
        args = ["user", "add", name, "--password-stdin"]
        for d in domains:
            args += ["--domain", d]
        rc, out, err = self.cli(*args, input=password + "\n")
        assert rc == 0, f"user add failed ({rc}): {err}"

    def queue(self):
        rc, out, err = self.cli("queue", "list", "--json")
        assert rc == 0, f"queue list failed ({rc}): {err}"
        return helpers.parse_queue_list(out)

    def queue_show(self, qid):
        rc, out, err = self.cli("queue", "show", qid)
        assert rc == 0, f"queue show {qid} failed ({rc}): {err}"
        return out


@pytest.fixture
def server_factory(tmp_path, cert):
    """make(**kw) -> a started Server; all are stopped (and checked) at teardown."""
    made = []

    def make(start=True, **kw):
        d = tmp_path / f"srv{len(made)}"
        d.mkdir()
        s = Server(d, cert, **kw)
        made.append(s)
        if start:
            s.start()
        return s

    yield make
    errors = []
    for s in made:
        try:
            s.stop()
        except BaseException as e:  # report every server, not only the first
            errors.append(e)
    if errors:
        raise errors[0]


# The shared server: one per test module, for tests that do not change config.
SHARED_LISTENERS = {
    "plain": {"tls": "none", "auth": "optional"},
    "sub": {"tls": "starttls", "auth": "required"},
    "smtps": {"tls": "implicit", "auth": "required"},
    "off": {"tls": "none", "auth": "off"},
    "small": {"tls": "none", "auth": "optional", "max_message_size": "64k",
              "max_recipients": "5"},
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory, cert):
    s = Server(tmp_path_factory.mktemp("shared"), cert, listeners=SHARED_LISTENERS)
    s.add_user()  # before start: the CLI works on a stopped server's data dir
    s.start()
    yield s
    s.stop()
