"""SIGTERM while work is still in flight (issue 8, "Shutdown and recovery
bugs"). The server must exit 0 without a sanitizer report (in the ASan
build a use-after-free is a failure here) and must not lose what it had
decided: a recipient whose bounce report was being committed is final after
the restart, so the sender hears of it once, not twice.

Peers: the test DNS and fake MX servers of mx.py; a DNS server that never
answers (a UDP socket that reads and drops); and, to hold a bounce report's
commit open at the moment SIGTERM arrives, a small LD_PRELOAD library that
makes fdatasync() and fsync() of files in the spool's tmp/ folder sleep
while a flag file exists (only the report is committed at that moment).
"""
import os
import socket
import subprocess
import threading
import time
import uuid

import pytest

from mx import (deliveries, dns, dsns_to, farm, msg_bytes, mx_zone, mxs, poll, start,  # noqa: F401
                submit, wait_queue_empty, wait_status)

SENDER_IP = "127.0.0.11"
BOUNCE_IP = "127.0.0.12"


def build_zone():
    return mx_zone({"sender.test": SENDER_IP, "bounce.test": BOUNCE_IP})


class BlackholeDNS:
    """A DNS server that never answers: reads each query and drops it."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.queries = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                self.sock.recvfrom(4096)
            except OSError:
                return
            self.queries += 1

    def stop(self):
        self.sock.close()


def test_sigterm_while_mx_lookup_pending(server_factory):
    """The resolver's cancel callback must not reach a freed destination."""
    hole = BlackholeDNS()
    try:
        srv = server_factory(relay={"smarthost": None, "dns_servers": hole.address})
        qid = submit(srv, "a@sender.test", ["u@pending.test"],
                     msg_bytes("a@sender.test", "u@pending.test", "pending lookup"))
        poll(lambda: hole.queries > 0, what="the MX query at the silent DNS server")
        srv.stop()  # exit 0 within the deadline, no sanitizer report
        assert "event=stopped" in srv.log()
        # nothing decided, nothing lost: still queued for the next start
        assert list(srv.queue()) == [qid]
    finally:
        hole.stop()


SLOW_SYNC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* While the file named by $POSTHORN_TEST_SLOW_SYNC exists, a sync of a
 * file in spool/tmp/ (a message being committed) first sleeps for the
 * number of milliseconds the flag file holds. */
static void maybe_sleep(int fd)
{
	const char *flag = getenv("POSTHORN_TEST_SLOW_SYNC");
	char link[64], path[4096];
	FILE *f;
	long ms = 0;
	ssize_t n;

	if (!flag || !(f = fopen(flag, "r")))
		return;
	if (fscanf(f, "%ld", &ms) != 1)
		ms = 0;
	fclose(f);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return;
	path[n] = '\0';
	if (strstr(path, "/spool/tmp/"))
		usleep((useconds_t)ms * 1000);
}

int fdatasync(int fd)
{
	static int (*real)(int);

	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	maybe_sleep(fd);
	return real(fd);
}

int fsync(int fd)
{
	static int (*real)(int);

	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	maybe_sleep(fd);
	return real(fd);
}
"""


@pytest.fixture(scope="module")
def slow_sync(tmp_path_factory):
    d = tmp_path_factory.mktemp("slowsync")
    src, lib = d / "slow_sync.c", d / "slow_sync.so"
    src.write_text(SLOW_SYNC_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(lib), str(src), "-ldl"],
                   check=True, capture_output=True)
    return str(lib)


def test_sigterm_while_bounce_report_commits(start, mxs, farm, slow_sync, tmp_path,
                                             monkeypatch):
    """The recipient bounced and its report is being committed when SIGTERM
    comes; the drain gives up (drain_timeout = 1s) before the commit ends.
    After the restart the sender has exactly one bounce."""
    flag = tmp_path / "slow-sync-ms"
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    # the library comes before the ASan runtime: allow it
    monkeypatch.setenv("ASAN_OPTIONS", asan + ":verify_asan_link_order=0")
    monkeypatch.setenv("LD_PRELOAD", slow_sync)
    monkeypatch.setenv("POSTHORN_TEST_SLOW_SYNC", str(flag))
    sender = f"s-{uuid.uuid4().hex[:8]}@sender.test"
    mx = mxs(BOUNCE_IP, defer_always=True)
    srv = start(relay={"retry": "1s"}, server={"drain_timeout": "1s"})
    qid = submit(srv, sender, ["u@bounce.test"], msg_bytes(sender, "u@bounce.test", "once"))
    wait_status(srv, qid, "u@bounce.test", "deferred")
    # the next attempt bounces, and the report's commit sleeps 4 s
    flag.write_text("4000")
    mx.reject_rcpt = True
    mx.defer_always = False
    wait_status(srv, qid, "u@bounce.test", "bounced")
    t0 = time.monotonic()
    srv.stop()  # exit 0, no sanitizer report
    assert time.monotonic() - t0 >= 2, "the report's commit was not in flight"
    assert "event=drain_timeout" in srv.log()
    flag.unlink()
    monkeypatch.delenv("LD_PRELOAD")
    srv.restart()
    wait_queue_empty(srv)
    poll(lambda: dsns_to(farm, sender), what=f"the bounce to {sender}")
    time.sleep(2)  # a second report would be on its way by now
    assert len(dsns_to(farm, sender)) == 1, srv.log()[-4000:]
    # the recipient was not tried again after the restart
    bounced = [d for d in deliveries(srv, qid) if d["status"] == "bounced"]
    assert len(bounced) == 1, srv.log()[-4000:]
