"""SPEC §1 and §2: the command line, exit codes and configuration errors;
which configuration is used; --help and unknown options on every command."""
import os
import re
import subprocess

import pytest

import helpers
from conftest import posthorn_bin, sanitizer_env, assert_no_sanitizer_report, free_port


def clean_env():
    env = sanitizer_env()
    env.pop("POSTHORN_CONFIG", None)
    return env


def run(*args, input=None, timeout=30, binary=None, env=None, cwd=None):
    p = subprocess.run([binary or posthorn_bin(), *args], input=input, capture_output=True,
                       text=True, timeout=timeout, env=env or clean_env(), cwd=cwd)
    assert_no_sanitizer_report(p.stderr, "posthorn " + " ".join(args))
    return p.returncode, p.stdout, p.stderr


def write_conf(tmp_path, body):
    f = tmp_path / "bad.conf"
    f.write_text(body)
    return str(f)


def good_conf(tmp_path):
    return (f"[server]\nhostname = relay.test\ndata_dir = {tmp_path}/data\n"
            f"[listener.mx]\naddress = 127.0.0.1:{free_port()}\ntls = none\nauth = optional\n"
            f"[http]\naddress = 127.0.0.1:{free_port()}\n")


def test_check_config_ok(tmp_path):
    f = write_conf(tmp_path, good_conf(tmp_path))
    rc, out, err = run("-c", f, "check-config")
    assert rc == 0, err


def test_check_config_unknown_key_names_file_and_line(tmp_path):
    body = good_conf(tmp_path).splitlines()
    body.insert(3, "no_such_key = 1")  # line 4
    f = write_conf(tmp_path, "\n".join(body) + "\n")
    rc, out, err = run("-c", f, "check-config")
    assert rc == 2, (rc, err)
    assert f"{f}:4:" in err, err
    assert "no_such_key" in err, err


def test_check_config_bad_values_all_reported(tmp_path):
    body = good_conf(tmp_path).splitlines()
    body += ["[listener.bad]", "address = 127.0.0.1:1",
             "tls = sometimes",            # second to last line
             "max_message_size = 12q"]     # last line
    f = write_conf(tmp_path, "\n".join(body) + "\n")
    rc, out, err = run("-c", f, "check-config")
    assert rc == 2, (rc, err)
    n = len(body)
    assert f"{f}:{n - 1}:" in err, err
    assert f"{f}:{n}:" in err, err


def test_check_config_unknown_section(tmp_path):
    f = write_conf(tmp_path, good_conf(tmp_path) + "[nonsense]\nx = 1\n")
    rc, out, err = run("-c", f, "check-config")
    assert rc == 2, (rc, err)
    assert re.search(re.escape(f) + r":\d+:", err), err


def test_serve_with_bad_config_exits_2(tmp_path):
    body = good_conf(tmp_path) + "bogus_key = yes\n"
    f = write_conf(tmp_path, body)
    rc, out, err = run("-c", f, "serve", timeout=15)
    assert rc == 2, (rc, err)
    assert f"{f}:" in err, err


def test_missing_config_file_is_an_error(tmp_path):
    rc, out, err = run("-c", str(tmp_path / "nope.conf"), "check-config")
    assert rc == 2, (rc, err)


def test_unknown_command_is_usage_error(tmp_path):
    rc, out, err = run("frobnicate")
    assert rc == 2


def test_user_add_list_del(server_factory):
    s = server_factory(start=False)
    s.add_user("carol", "pw-carol", ("carol.test", "Carol2.test"))
    s.add_user("dave", "pw-dave", ())
    rc, out, err = s.cli("user", "list")
    assert rc == 0, err
    users = {}
    for line in out.splitlines():
        name, _, doms = line.partition("\t")
        users[name] = set(d for d in doms.split(",") if d)
    assert {d.lower() for d in users["carol"]} == {"carol.test", "carol2.test"}, out
    assert users["dave"] == set(), out
    # duplicate add is a runtime error
    rc, out, err = s.cli("user", "add", "carol", "--password-stdin", input="x\n")
    assert rc == 1, (rc, err)
    # delete
    rc, out, err = s.cli("user", "del", "dave")
    assert rc == 0, err
    rc, out, err = s.cli("user", "list")
    assert "dave" not in [l.split("\t")[0] for l in out.splitlines()], out
    rc, out, err = s.cli("user", "del", "dave")
    assert rc == 1, (rc, err)


def test_user_del_default_refused(server_factory):
    s = server_factory(start=False)
    rc, out, err = s.cli("user", "del", "default")
    assert rc != 0, (rc, out, err)
    assert err.strip(), "a refusal should say why on stderr"


def test_user_usage_errors(server_factory):
    s = server_factory(start=False)
    rc, out, err = s.cli("user", "add")
    assert rc == 2, (rc, err)
    rc, out, err = s.cli("user", "frob")
    assert rc == 2, (rc, err)


def test_user_passwd_takes_effect_on_running_server(server_factory):
    s = server_factory()
    s.add_user("erin", "old-password", ("erin.test",))

    def auth(pw):
        with helpers.smtp(s.port) as c:
            c.ehlo("client.test")
            try:
                c.login("erin", pw)
                return True
            except helpers.smtplib.SMTPAuthenticationError as e:
                assert e.smtp_code == 535, e
                return False

    assert auth("old-password")
    rc, out, err = s.cli("user", "passwd", "erin", "--password-stdin", input="new-password\n")
    assert rc == 0, err
    assert helpers.wait_for(lambda: auth("new-password"), timeout=5, what="new password")
    assert not auth("old-password")
    rc, out, err = s.cli("user", "passwd", "nobody", "--password-stdin", input="x\n")
    assert rc == 1, (rc, err)


def test_user_deleted_while_running_cannot_auth(server_factory):
    s = server_factory()
    s.add_user("frank", "frank-pw", ("frank.test",))
    rc, out, err = s.cli("user", "del", "frank")
    assert rc == 0, err

    def refused():
        with helpers.smtp(s.port) as c:
            c.ehlo("client.test")
            try:
                c.login("frank", "frank-pw")
                return False
            except helpers.smtplib.SMTPAuthenticationError:
                return True

    helpers.wait_for(refused, timeout=5, what="deleted user refused")


def test_queue_commands_on_stopped_server(server_factory):
    s = server_factory()
    qid = helpers.send_raw_message(s.port, "a@example.com", ["b@example.net"],
                                   helpers.message(subject="stopped-server"))
    s.stop()
    q = s.queue()
    assert qid in q
    assert "stopped-server" in s.queue_show(qid)
    rc, out, err = s.cli("queue", "delete", qid)
    assert rc == 0, err
    assert qid not in s.queue()
    rc, out, err = s.cli("queue", "show", qid)
    assert rc == 1, (rc, out, err)
    # and the server starts again on that data dir
    s.restart()
    assert qid not in s.queue()


def test_user_add_without_tty_or_stdin_flag_does_not_hang(server_factory):
    s = server_factory(start=False)
    p = subprocess.run([posthorn_bin(), "-c", s.conf, "user", "add", "zed"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20,
                       env=sanitizer_env())
    assert p.returncode != 0, (p.returncode, p.stderr)
    rc, out, err = s.cli("user", "list")
    assert "zed" not in [l.split("\t")[0] for l in out.splitlines()]


# ---- which configuration (SPEC §1) -------------------------------------------------
#
# The product binary looks for /etc/posthorn/posthorn.conf. These tests run
# build/.../etc-test/posthorn instead, the same main.c built with that path
# moved under the build directory (see the Makefile), so that they neither
# depend on the machine's /etc nor write to it, and the product keeps no
# override for tests.

def etc_test_bin():
    b = os.path.join(os.path.dirname(posthorn_bin()), "etc-test", "posthorn")
    if not os.access(b, os.X_OK):
        pytest.fail(f"{b} is missing: `make e2e` builds it", pytrace=False)
    return b


@pytest.fixture
def etc(tmp_path):
    """(run(*args, env_config=None) in a scratch cwd, path of the system file)."""
    binary = etc_test_bin()
    system = os.path.join(os.path.dirname(binary), "posthorn.conf")
    if os.path.exists(system):
        os.unlink(system)  # left by an interrupted run
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    def go(*args, env_config=None):
        env = clean_env()
        if env_config is not None:
            env["POSTHORN_CONFIG"] = env_config
        return run(*args, binary=binary, env=env, cwd=str(cwd))

    go.cwd = str(cwd)
    yield go, system
    if os.path.exists(system):
        os.unlink(system)


def small_conf(path, data_dir):
    path.write_text(f"[server]\ndata_dir = {data_dir}\nhostname = relay.test\n")
    return str(path)


def test_config_order_c_then_env_then_system_file_then_default(etc, tmp_path):
    go, system = etc
    a = small_conf(tmp_path / "a.conf", tmp_path / "da")
    b = small_conf(tmp_path / "b.conf", tmp_path / "db")
    with open(system, "w") as f:
        f.write(f"[server]\ndata_dir = {tmp_path}/dc\nhostname = relay.test\n")
    rc, out, err = go("-c", a, "check-config", env_config=b)
    assert rc == 0 and f"{a}: ok" in err, err
    rc, out, err = go("check-config", env_config=b)
    assert rc == 0 and f"{b}: ok" in err, err
    rc, out, err = go("check-config", env_config="")  # empty: as if unset
    assert rc == 0 and f"{system}: ok" in err, err
    assert "embedded default" not in err
    os.unlink(system)
    rc, out, err = go("check-config")
    assert rc == 0 and "embedded default: ok" in err, err


def test_config_named_but_missing_is_an_error_not_a_fallback(etc, tmp_path):
    go, system = etc
    missing = str(tmp_path / "nope.conf")
    rc, out, err = go("queue", "list", env_config=missing)
    assert rc == 2, (rc, err)
    assert missing in err and "embedded default" not in err, err
    assert not os.path.exists(os.path.join(go.cwd, "posthorn-data"))


# Every command that loads the configuration, with arguments it accepts.
LOADS_CONFIG = [
    ["check-config"],
    ["queue", "list"],
    ["queue", "list", "--json"],
    ["queue", "show", "0000000000000000"],
    ["queue", "delete", "0000000000000000"],
    ["queue", "retry", "--all"],
    ["stats"],
    ["user", "list"],
    ["user", "del", "nobody"],
    ["user", "domain", "add", "nobody", "example.com"],
    ["apikey", "list"],
    ["dkim", "list"],
    ["suppress", "list"],
    ["tls", "status", "example.com"],
    ["serve", "--not-an-option"],  # announced, then refused before it starts
]


@pytest.mark.parametrize("args", LOADS_CONFIG, ids=" ".join)
def test_embedded_default_is_announced_with_its_data_dir(etc, args):
    go, system = etc
    rc, out, err = go(*args)
    want = (f"using the embedded default configuration, data directory "
            f"{go.cwd}/posthorn-data")
    lines = [l for l in err.splitlines() if "using the embedded default" in l]
    assert len(lines) == 1 and want in lines[0], err
    assert "embedded default" not in out


@pytest.mark.parametrize("args", [["--help"], ["version"], ["queue", "list", "--help"]],
                         ids=" ".join)
def test_commands_that_load_nothing_announce_nothing(etc, args):
    go, system = etc
    rc, out, err = go(*args)
    assert rc == 0, err
    assert err == "", err


# ---- --help, usage texts and unknown options ------------------------------------------

LEAVES = ["serve", "check-config", "user add", "user list", "user del", "user passwd",
          "user domain add", "user domain del", "user set", "user resume", "queue list", "queue show",
          "queue hold", "queue release", "queue delete", "queue retry", "stats",
          "apikey create", "apikey list", "apikey revoke", "dkim keygen", "dkim list",
          "dkim check", "dkim rotate", "suppress list", "suppress add", "suppress remove",
          "tls status", "pause", "resume", "cluster status", "cluster forget", "version", "help"]
GROUPS = ["user", "user domain", "queue", "apikey", "dkim", "suppress", "tls", "cluster"]


def usage_paths(text):
    """The command paths a usage text lists ("usage: posthorn PATH ARGS")."""
    found = []
    for line in text.splitlines():
        m = re.match(r"^(?:usage:|      ) posthorn ((?:[a-z-]+ ?)+)", line)
        if m:
            words = [w for w in m.group(1).split() if re.fullmatch(r"[a-z][a-z-]*", w)]
            path = " ".join(words)
            # the longest listed prefix is the command; the rest are operands
            while path and path not in LEAVES:
                path = path.rsplit(" ", 1)[0] if " " in path else ""
            found.append(path)
    return found


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_root_usage_lists_every_command(flag):
    rc, out, err = run(flag)
    assert rc == 0 and err == "", (rc, err)
    assert sorted(usage_paths(out)) == sorted(LEAVES), out
    rc2, out2, err2 = run("help")
    assert rc2 == 0 and out2 == out


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("path", LEAVES + GROUPS)
def test_every_command_answers_help(path, flag):
    rc, out, err = run(*path.split(), flag)
    assert rc == 0, (rc, out, err)
    assert err == "", err
    listed = usage_paths(out)
    below = [l for l in LEAVES if l == path or l.startswith(path + " ")]
    assert sorted(listed) == sorted(below), out
    assert out.startswith(f"usage: posthorn {path}"), out


def test_help_after_operands_still_helps():
    rc, out, err = run("user", "add", "somebody", "--domain", "x.test", "--help")
    assert rc == 0 and out.startswith("usage: posthorn user add"), (rc, out, err)


@pytest.mark.parametrize("path", LEAVES)
def test_unknown_option_is_a_usage_error(path, tmp_path):
    conf = write_conf(tmp_path, good_conf(tmp_path))
    rc, out, err = run("-c", conf, *path.split(), "--no-such-option")
    assert rc == 2, (rc, out, err)
    assert "--no-such-option" in err, err
    assert out == "", out


@pytest.mark.parametrize("group", [""] + GROUPS)
def test_unknown_subcommand_is_a_usage_error(group):
    rc, out, err = run(*group.split(), "frobnicate")
    assert rc == 2, (rc, out, err)
    assert "frobnicate" in err and "usage: posthorn" in err, err
    rc, out, err = run(*group.split())
    assert rc == 2 and "usage: posthorn" in err, (rc, out, err)


# ---- root runs the admin commands as [server] user ----------------------------------

def pty_run(argv, answers, timeout=30):
    """Runs argv on a new terminal (its controlling tty), answering each
    prompt in answers; returns (exit code, everything it wrote)."""
    import pty
    import select
    import time
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, clean_env())
    out, pending, deadline = b"", list(answers), time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if pending and out.rstrip().endswith(pending[0][0].encode()):
            os.write(fd, pending.pop(0)[1].encode() + b"\n")
    done, status = os.waitpid(pid, os.WNOHANG)
    if not done:  # still waiting for something: never hang the suite
        os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_root_admin_commands_become_the_server_user():
    import pwd
    import shutil
    import tempfile
    nobody = pwd.getpwnam("nobody")
    d = tempfile.mkdtemp(prefix="posthorn-asuser-")
    try:
        os.chmod(d, 0o755)  # nobody must reach its data dir
        conf = os.path.join(d, "p.conf")
        with open(conf, "w") as f:
            f.write(f"[server]\nhostname = relay.test\nuser = nobody\ndata_dir = {d}/data\n")
        # the password prompt still works: the terminal was opened as root
        rc, out = pty_run([posthorn_bin(), "-c", conf, "user", "add", "bob", "--domain",
                           "b.test"], [("Password for bob:", "s3cret"),
                                       ("Repeat password:", "s3cret")])
        assert rc == 0, out
        for path in (f"{d}/data", f"{d}/data/posthorn.db"):
            assert os.stat(path).st_uid == nobody.pw_uid, path
        rc, out, err = run("-c", conf, "queue", "list")
        assert rc == 0, err
        assert os.stat(f"{d}/data/spool").st_uid == nobody.pw_uid
        rc, out, err = run("-c", conf, "user", "list")
        assert rc == 0 and "bob\tb.test\n" in out, (out, err)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_new_data_directory_says_one_migration_line(tmp_path):
    """The first command on a new data directory creates its database: one
    event=store_migrate line (from 0 to the current version), not one per step;
    the next command says nothing about it."""
    f = write_conf(tmp_path, good_conf(tmp_path))
    rc, out, err = run("-c", f, "user", "add", "app", "--domain", "example.com",
                       "--password-stdin", input="a long password\n")
    assert rc == 0, err
    lines = [l for l in err.splitlines() if "event=store_migrate" in l]
    assert len(lines) == 1 and re.search(r" from=0 to=\d+$", lines[0]), err
    rc, out, err = run("-c", f, "user", "list")
    assert rc == 0 and "event=store_migrate" not in err, err
