"""A real redis-server for the cluster tests, on a free loopback port in a
temporary directory (append-only file on, so that a restart keeps the
counters as a production Redis with persistence does)."""
import os
import shutil
import socket
import subprocess
import time

import pytest

import helpers
from conftest import free_port

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"


class Redis:
    def __init__(self, base_dir, extra=()):
        self.dir = str(base_dir)
        self.extra = list(extra)  # more redis-server arguments
        self.port = free_port()
        self.proc = None
        self.log_path = os.path.join(self.dir, "redis.log")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        args = [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                "--daemonize", "no", "--logfile", self.log_path] + self.extra
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        helpers.wait_for(self._answers, 10, what=f"redis-server on port {self.port}")
        return self

    def _answers(self):
        assert self.proc.poll() is None, f"redis-server exited: {open(self.log_path).read()}"
        try:
            return self.cmd("PING") in (b"+PONG", b"-NOAUTH Authentication required.")
        except OSError:
            return False

    def cmd(self, *args):
        """One command in RESP: a status, error or integer reply's line
        (b"+PONG"), or a bulk string's value (None for nil)."""
        req = f"*{len(args)}\r\n" + "".join(f"${len(str(a))}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(req.encode())
            f = s.makefile("rb")
            line = f.readline().rstrip(b"\r\n")
            if not line.startswith(b"$"):
                return line
            n = int(line[1:])
            return None if n < 0 else f.read(n + 2)[:n]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def wait_out_of_hour_end(margin=90):
    """The quota counts per clock hour: a test that must stay in one window
    waits for the next one when this one ends within margin seconds."""
    left = 3600 - time.time() % 3600
    if left < margin:
        time.sleep(left + 1)


def start_nodes(server_factory, n, **kw):
    """n nodes made by server_factory(**kw), started together; returned
    once each is ready and has logged Redis up."""
    nodes = [server_factory(start=False, **kw) for _ in range(n)]
    for s in nodes:
        s.start(wait=False)
    for s in nodes:
        assert s.wait_ready(), s.log()
    for s in nodes:
        helpers.wait_for(lambda s=s: "event=redis_up" in s.log(), 10, what="redis_up")
    return nodes


@pytest.fixture
def redis(tmp_path):
    """A started Redis (stopped at teardown)."""
    d = tmp_path / "redis"
    d.mkdir()
    r = Redis(d).start()
    yield r
    r.stop()
