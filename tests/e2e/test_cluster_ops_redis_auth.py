"""A Redis that wants a password (docs/cluster.md, "Redis"): `[cluster]
redis = redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`, against a real
redis-server started with requirepass, or with an ACL user and the default
user off. The right password: the quota is shared across the nodes. A
wrong one: the node stays on its 1/N fallback, logs redis_auth_error once
with Redis's answer and never the password (nor the URL with it)."""
import socket
import time
from urllib.parse import quote

import helpers
from redisfix import Redis
from test_cluster_redis import metric, send, wait_out_of_hour_end

# characters a URL must percent-encode, and one '%'
PASSWORD = "s3/cr@t#p%w:x?"
ACL_PASSWORD = "acl-pw/2@"


def resp(port, *cmds):
    """The commands on one connection; every reply but the last must be +OK.
    Returns the last as Redis.cmd does."""
    req = b""
    for cmd in cmds:
        req += f"*{len(cmd)}\r\n".encode()
        req += b"".join(f"${len(str(a).encode())}\r\n{a}\r\n".encode() for a in cmd)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req)
        f = s.makefile("rb")
        for cmd in cmds[:-1]:
            assert f.readline() == b"+OK\r\n", cmd[0]
        line = f.readline().rstrip(b"\r\n")
        if not line.startswith(b"$"):
            return line
        n = int(line[1:])
        return None if n < 0 else f.read(n + 2)[:n]


class AuthRedis(Redis):
    """A Redis whose test-side commands AUTH first."""

    def __init__(self, base_dir, auth, extra=()):
        super().__init__(base_dir, extra=extra)
        self.auth = list(auth)

    def url_with(self, user, password, db=""):
        return (f"redis://{quote(user, safe='')}:{quote(password, safe='')}"
                f"@127.0.0.1:{self.port}{db}")

    def cmd(self, *args, db=0):
        return resp(self.port, ["AUTH", *self.auth], ["SELECT", db], list(args))


ACL = ["--user", "posthorn", "on", f">{ACL_PASSWORD}", "~*", "&*", "+@all",
       "--user", "default", "off"]


def started(tmp_path, name, auth, extra):
    d = tmp_path / name
    d.mkdir()
    return AuthRedis(d, auth, extra).start()


def nodes(server_factory, url, hour=6):
    extra = f"[quota]\nhour = {hour}\n[cluster]\nredis = {url}\nnodes = 2"
    return [server_factory(extra=extra) for _ in range(2)]


def up(*srvs):
    for s in srvs:
        helpers.wait_for(lambda s=s: "event=redis_up" in s.log(), 10, what="redis_up")


def quota_key():
    return f"posthorn:quota:{{default}}:h:{int(time.time()) // 3600 * 3600}"


def connections(r):
    info = r.cmd("INFO", "stats").decode()
    return int(info.split("total_connections_received:")[1].split()[0])


def assert_no_secret(srv, *secrets):
    log = srv.log()
    for s in secrets:
        assert s not in log and quote(s, safe="") not in log, f"{s!r} in the log"


def test_requirepass_the_right_password_shares_the_quota(server_factory, tmp_path):
    wait_out_of_hour_end()
    r = started(tmp_path, "redis-pw", [PASSWORD], ["--requirepass", PASSWORD])
    try:
        a, b = nodes(server_factory, r.url_with("", PASSWORD, "/3"))
        up(a, b)
        # shared: 6 in all across the two nodes (alone each would take 3)
        assert send(a, [f"a{j}@nowhere.test" for j in range(4)], "pw-a") == (4, 0)
        assert send(b, [f"b{j}@nowhere.test" for j in range(4)], "pw-b") == (2, 2)
        assert r.cmd("GET", quota_key(), db=3) == b"6"
        assert r.cmd("GET", quota_key()) is None  # database 3, as the URL says
        for s in (a, b):
            assert f"redis=redis://127.0.0.1:{r.port}/3 " in s.log()
            assert "event=redis_auth_error" not in s.log()
            assert metric(s, "posthorn_redis_up") == 1
            assert_no_secret(s, PASSWORD)
    finally:
        r.stop()


def test_an_acl_user_shares_the_quota(server_factory, tmp_path):
    wait_out_of_hour_end()
    r = started(tmp_path, "redis-acl", ["posthorn", ACL_PASSWORD], ACL)
    try:
        a, b = nodes(server_factory, r.url_with("posthorn", ACL_PASSWORD))
        up(a, b)
        assert send(a, [f"a{j}@nowhere.test" for j in range(5)], "acl-a") == (5, 0)
        assert send(b, [f"b{j}@nowhere.test" for j in range(3)], "acl-b") == (1, 2)
        assert r.cmd("GET", quota_key()) == b"6"
        for s in (a, b):
            assert f"redis=redis://posthorn@127.0.0.1:{r.port}/0 " in s.log()
            assert_no_secret(s, ACL_PASSWORD)
    finally:
        r.stop()


def test_a_wrong_password_is_logged_once_and_the_node_falls_back(server_factory, tmp_path):
    r = started(tmp_path, "redis-wrong", ["posthorn", ACL_PASSWORD], ACL)
    wrong = "not/" + ACL_PASSWORD
    try:
        a, b = nodes(server_factory, r.url_with("posthorn", wrong), hour=4)
        helpers.wait_for(lambda: "event=redis_auth_error" in a.log(), 10,
                         what="redis_auth_error")
        # alone: 4/2 = 2 for this node
        assert send(a, [f"w{j}@nowhere.test" for j in range(3)], "wrong") == (2, 1)
        before = connections(r)
        time.sleep(2)  # dialled again meanwhile (backoff from 100 ms), never up
        assert connections(r) - before - 1 >= 2  # this INFO's own connection is 1
        log = a.log()
        assert log.count("event=redis_auth_error") == 1, log
        assert "level=error event=redis_auth_error" in log, log  # the node is degraded
        assert 'user=posthorn error="WRONGPASS invalid username-password pair' in log
        assert log.count("event=redis_down") == 1
        assert "event=redis_up" not in log
        assert "event=quota_fallback" in log
        assert metric(a, "posthorn_redis_up") == 0
        assert r.cmd("GET", quota_key()) is None  # nothing counted in Redis
        for s in (a, b):
            assert_no_secret(s, wrong, ACL_PASSWORD)
    finally:
        r.stop()


def test_no_password_for_a_redis_that_wants_one_is_logged_once(server_factory, tmp_path):
    """The URL gives no password and Redis answers NOAUTH: a refused AUTH,
    logged once (not each setup command at each redial), the node on its
    fallback."""
    r = started(tmp_path, "redis-noauth", ["default", PASSWORD], ["--requirepass", PASSWORD])
    try:
        a, _ = nodes(server_factory, f"redis://127.0.0.1:{r.port}", hour=4)
        helpers.wait_for(lambda: "event=redis_auth_error" in a.log(), 10,
                         what="redis_auth_error")
        before = connections(r)
        time.sleep(2)  # dialled again meanwhile, never up
        assert connections(r) - before - 1 >= 2
        log = a.log()
        assert log.count("event=redis_auth_error") == 1, log
        assert "NOAUTH" in log
        assert "event=redis_setup_error" not in log, log
        assert "event=redis_up" not in log
        assert metric(a, "posthorn_redis_up") == 0
    finally:
        r.stop()
