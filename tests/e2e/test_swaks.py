"""swaks, an SMTP client no one here wrote, against the shared server:
trusted relay in clear, STARTTLS + AUTH on submission, implicit TLS, and
the refusals it must see."""
import re
import subprocess

import helpers


def swaks(*args):
    p = subprocess.run(["swaks", "--timeout", "20", *args], capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout + p.stderr


def queued(out):
    m = re.search(r"<[-~]\s+250 2\.0\.0 Ok: queued as (\S+)", out)
    assert m, out
    return m.group(1)


def test_trusted_relay_in_clear(srv):
    rc, out = swaks("--server", f"127.0.0.1:{srv.port_of('plain')}", "--from", "a@example.org",
                    "--to", "b@example.net", "--header", "Subject: swaks-clear")
    assert rc == 0, out
    qid = queued(out)
    assert qid in srv.queue()
    assert "Subject: swaks-clear" in srv.queue_show(qid)


def test_starttls_auth_plain_and_login(srv):
    for mech in ("PLAIN", "LOGIN"):
        rc, out = swaks("--server", f"127.0.0.1:{srv.port_of('sub')}", "--tls",
                        "--auth", mech, "--auth-user", helpers.USER,
                        "--auth-password", helpers.PASSWORD,
                        "--from", f"me@{helpers.USER_DOMAIN}", "--to", "you@example.net")
        assert rc == 0, out
        assert re.search(r"<~\s+235 2\.7\.0", out), out
        assert queued(out) in srv.queue()


def test_implicit_tls(srv):
    rc, out = swaks("--server", f"127.0.0.1:{srv.port_of('smtps')}", "--tlsc",
                    "--auth", "PLAIN", "--auth-user", helpers.USER,
                    "--auth-password", helpers.PASSWORD,
                    "--from", f"me@{helpers.USER_DOMAIN}", "--to", "you@example.net")
    assert rc == 0, out
    assert queued(out) in srv.queue()


def test_wrong_password_and_foreign_sender(srv):
    rc, out = swaks("--server", f"127.0.0.1:{srv.port_of('sub')}", "--tls",
                    "--auth", "PLAIN", "--auth-user", helpers.USER, "--auth-password", "wrong",
                    "--from", f"me@{helpers.USER_DOMAIN}", "--to", "you@example.net")
    assert rc != 0
    assert re.search(r"<~\*\s+535 5\.7\.8", out), out
    rc, out = swaks("--server", f"127.0.0.1:{srv.port_of('sub')}", "--tls",
                    "--auth", "PLAIN", "--auth-user", helpers.USER,
                    "--auth-password", helpers.PASSWORD,
                    "--from", "me@not-mine.example", "--to", "you@example.net")
    assert rc != 0
    assert re.search(r"<~\*\s+553 5\.7\.1", out), out


def test_auth_required_without_auth(srv):
    rc, out = swaks("--server", f"127.0.0.1:{srv.port_of('sub')}", "--tls",
                    "--from", "a@example.org", "--to", "b@example.net")
    assert rc != 0
    assert re.search(r"<~\*\s+530 5\.7\.0", out), out
