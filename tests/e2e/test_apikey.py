"""`posthorn apikey create|list|revoke` on a real data directory: the key
printed alone and once, only its hash stored, listing, revocation, help,
and clear errors."""
import re
import sqlite3

import pytest

from httpapi import KEY_RE, create_key, request


@pytest.fixture
def s(server_factory):
    return server_factory(start=False)  # the CLI works on a stopped server's data


def test_create_prints_the_key_alone(s):
    rc, out, err = s.cli("apikey", "create", "default", "--name", "deploy")
    assert rc == 0, err
    assert KEY_RE.match(out.rstrip("\n")) and out.count("\n") == 1
    assert "shown only this once" in err and out.strip() not in err
    db = sqlite3.connect(s.data_dir + "/posthorn.db")
    rows = db.execute("SELECT key_hash, name, admin FROM api_keys").fetchall()
    db.close()
    assert rows == [(rows[0][0], "deploy", 0)]
    assert re.fullmatch(r"[0-9a-f]{64}", rows[0][0]) and out.strip() not in rows[0][0]


def test_list_shows_everything_but_the_key(s):
    s.add_user("bob", domains=())
    k1 = create_key(s, "default", "--name", "ci")
    k2 = create_key(s, "bob", "--admin")
    rc, out, err = s.cli("apikey", "list")
    assert rc == 0, err
    lines = [ln.split("\t") for ln in out.splitlines()]
    assert [ln[:4] for ln in lines] == [["1", "default", "ci", "-"], ["2", "bob", "-", "admin"]]
    for ln in lines:
        assert len(ln) == 7
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ln[4])
        assert ln[5] == "never" and ln[6] == "active"
    assert k1 not in out and k2 not in out
    rc, out, err = s.cli("apikey", "list", "--account", "bob")
    assert rc == 0 and [ln.split("\t")[0] for ln in out.splitlines()] == ["2"]
    rc, out, err = s.cli("apikey", "list", "--account", "nobody")
    assert rc == 1 and "no such account 'nobody'" in err


def test_revoke(s):
    create_key(s)
    rc, out, err = s.cli("apikey", "revoke", "1")
    assert rc == 0 and out == "" and "revoked" in err
    rc, out, err = s.cli("apikey", "list")
    assert out.split("\t")[6].startswith("revoked 20")
    rc, out, err = s.cli("apikey", "revoke", "1")
    assert rc == 1 and "already revoked" in err
    rc, out, err = s.cli("apikey", "revoke", "7")
    assert rc == 1 and "no such API key 7" in err
    rc, out, err = s.cli("apikey", "revoke", "seven")
    assert rc == 2 and "invalid key ID" in err


def test_errors_and_usage(s):
    rc, out, err = s.cli("apikey", "create", "nobody")
    assert rc == 1 and "no such account 'nobody'" in err and out == ""
    for args in (["apikey"], ["apikey", "create"], ["apikey", "create", "a", "b"],
                 ["apikey", "frobnicate"], ["apikey", "list", "--admin"],
                 ["apikey", "create", "default", "--name"]):
        rc, out, err = s.cli(*args)
        assert rc == 2, args
        assert "usage: posthorn apikey" in err and out == ""
    rc, out, err = s.cli("apikey", "create", "default", "--name", "a\tb")
    assert rc == 2 and "invalid --name" in err


@pytest.mark.parametrize("args", [["apikey", "--help"], ["apikey", "create", "--help"],
                                  ["apikey", "list", "--help"], ["apikey", "revoke", "-h"]])
def test_help(s, args):
    rc, out, err = s.cli(*args)
    assert rc == 0
    # a command's own usage; the group's lists every command below it
    assert out.startswith("usage: posthorn apikey" +
                          ("" if args[1].startswith("-") else " " + args[1])), out
    if args[1].startswith("-"):
        assert "apikey create ACCOUNT" in out and "apikey revoke ID" in out


def test_key_works_on_a_running_server(s):
    s.start()
    key = create_key(s)
    assert request(s, "GET", "/v1/account", key=key).status == 200
