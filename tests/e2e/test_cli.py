"""SPEC §1 and §2: the command line, exit codes and configuration errors."""
import re
import subprocess

import helpers
from conftest import posthorn_bin, sanitizer_env, assert_no_sanitizer_report, free_port


def run(*args, input=None, timeout=30):
    p = subprocess.run([posthorn_bin(), *args], input=input, capture_output=True, text=True,
                       timeout=timeout, env=sanitizer_env())
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


def test_check_config_embedded_default(tmp_path):
    rc, out, err = run("check-config")
    assert rc == 0, err


def test_user_add_without_tty_or_stdin_flag_does_not_hang(server_factory):
    s = server_factory(start=False)
    p = subprocess.run([posthorn_bin(), "-c", s.conf, "user", "add", "zed"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20,
                       env=sanitizer_env())
    assert p.returncode != 0, (p.returncode, p.stderr)
    rc, out, err = s.cli("user", "list")
    assert "zed" not in [l.split("\t")[0] for l in out.splitlines()]
