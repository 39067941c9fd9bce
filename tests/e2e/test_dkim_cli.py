"""SPEC §1 and §5: `posthorn dkim keygen|list|check|rotate`: the record in
zone-file form (strings of at most 255 octets, p= the stored key's public
half, checked with openssl), the key file's mode, list and --json, check
against the test DNS (match, missing, different, DNS failure), rotate,
--help, and every usage or runtime error with its exit code."""
import base64
import os
import re
import stat
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e_support"))
import dkim_verify  # noqa: E402
import dkim_env  # noqa: E402

ZONE_RE = re.compile(r'^([a-z0-9.-]+)\._domainkey\.([a-z0-9.-]+)\. IN TXT( "[^"]{1,255}")+$')


@pytest.fixture
def env(server_factory, tmp_path):
    with dkim_env.fresh(server_factory, tmp_path, "36h") as e:
        yield e


def pubkey_b64(pem_path, algo):
    """The public key as the record should give it, computed by openssl."""
    der = subprocess.run(["openssl", "pkey", "-in", pem_path, "-pubout", "-outform", "DER"],
                         capture_output=True, check=True).stdout
    if algo == "ed25519":
        der = der[-32:]  # SubjectPublicKeyInfo of Ed25519: a fixed prefix, then the key
    return base64.b64encode(der).decode()


def record_of(line):
    name, strings = dkim_verify.zone_line(line)
    for s in strings:
        assert 1 <= len(s.encode()) <= 255, s
    return name, "".join(strings)


# ---------------------------------------------------------------- keygen


@pytest.mark.parametrize("algo", ["rsa2048", "ed25519"])
def test_keygen_record_matches_key(env, algo):
    rc, out, err = env.srv.cli("dkim", "keygen", "example.test", "--algo", algo)
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 1 and ZONE_RE.match(lines[0]), out
    name, text = record_of(lines[0])
    ym = time.strftime("%Y%m", time.gmtime())
    assert name == f"ph{ym}._domainkey.example.test"
    k = "rsa" if algo == "rsa2048" else "ed25519"
    assert text.startswith(f"v=DKIM1; k={k}; p=")
    if algo == "rsa2048":
        assert len(lines[0].split('" "')) == 2  # 410 octets: two strings
    [key] = env.keys()
    assert key["state"] == "active" and key["algorithm"] == algo
    path = os.path.join(env.srv.data_dir, "dkim", f"ph{ym}._domainkey.example.test.pem")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert text.split("p=", 1)[1] == pubkey_b64(path, algo)
    assert key["record"] == text
    assert "active" in err and "publish" in err


def test_keygen_selectors_and_errors(env):
    ym = time.strftime("%Y%m", time.gmtime())
    env.keygen("example.test", publish=False)
    line = env.keygen("Example.TEST", "--algo=ed25519", publish=False)
    assert line.startswith(f"ph{ym}-2._domainkey.example.test. IN TXT")
    line = env.keygen("example.test", "--selector", "s1.eu", publish=False)
    assert line.startswith("s1.eu._domainkey.example.test. IN TXT")
    rc, out, err = env.srv.cli("dkim", "keygen", "example.test", "--selector", "s1.eu")
    assert rc == 1 and out == "" and "already has a key with selector 's1.eu'" in err, err
    for args, msg in [
        (["keygen"], "needs a DOMAIN"),
        (["keygen", "bad_domain!"], "invalid domain"),
        (["keygen", "example.test", "--algo", "rsa1024"], "unknown algorithm 'rsa1024'"),
        (["keygen", "example.test", "--selector", "bad_selector"], "invalid selector"),
        (["keygen", "example.test", "--selector", "-x"], "invalid selector"),
        (["keygen", "example.test", "--selector"], "--selector needs a value"),
        (["keygen", "example.test", "--json"], "unknown option '--json'"),
        (["keygen", "a.test", "b.test"], "unexpected argument 'b.test'"),
        (["list", "x.test"], "unexpected argument"),
        (["rotate", "example.test", "--selector", "s"], "unknown option"),
        (["frobnicate"], "unknown command 'dkim frobnicate'"),
        ([], "usage:"),
    ]:
        rc, out, err = env.srv.cli("dkim", *args)
        assert rc == 2 and out == "" and msg in err, (args, rc, err)
    assert len(env.keys()) == 3


def test_help(env):
    for args in (["--help"], ["keygen", "--help"], ["list", "-h"], ["check", "--help"],
                 ["rotate", "x.test", "--help"], ["help"]):
        rc, out, err = env.srv.cli("dkim", *args)
        assert rc == 0 and out.startswith("usage: posthorn dkim"), (args, rc, out, err)


# ---------------------------------------------------------------- list


def test_list_text_and_json(env):
    env.keygen("b.test", "--selector", "s1", publish=False)
    env.keygen("a.test", "--selector", "s2", "--algo", "ed25519", publish=False)
    rc, out, err = env.srv.cli("dkim", "list")
    assert rc == 0, err
    rows = [l.split("\t") for l in out.splitlines()]
    assert [r[:4] for r in rows] == [["a.test", "s2", "ed25519", "active"],
                                    ["b.test", "s1", "rsa2048", "active"]]
    for r in rows:
        assert len(r) == 6 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r[4]), r
        assert r[5] == "-"
    j = env.keys()
    assert [(k["domain"], k["selector"]) for k in j] == [("a.test", "s2"), ("b.test", "s1")]
    assert j[0]["created"] == rows[0][4] and j[0]["retired"] is None
    assert j[0]["record"].startswith("v=DKIM1; k=ed25519; p=")


def test_list_empty(env):
    rc, out, err = env.srv.cli("dkim", "list")
    assert (rc, out) == (0, "")


# ---------------------------------------------------------------- check


def check(env, domain):
    rc, out, err = env.srv.cli("dkim", "check", domain)
    return rc, [l.split("\t") for l in out.splitlines()], err


def test_check_match_missing_different(env):
    env.keygen("c.test", "--selector", "good")
    env.keygen("c.test", "--selector", "gone", "--algo", "ed25519", publish=False)
    rc, rows, err = check(env, "c.test")
    assert rc == 1, err
    assert sorted(rows) == [["gone", "ed25519", "active", "missing"],
                            ["good", "rsa2048", "active", "match"]]
    assert "gone._domainkey.c.test: missing" in err
    # the record of another key at the name
    other = env.keygen("other.test", "--selector", "gone", "--algo", "ed25519", publish=False)
    env.publish(other.replace("other.test", "c.test"))
    rc, rows, err = check(env, "c.test")
    assert rc == 1 and ["gone", "ed25519", "active", "different"] in rows, (rows, err)
    assert "another public key" in err
    # an rsa record where an ed25519 key is expected
    env.publish(env.keygen("x.test", "--selector", "gone", publish=False).replace("x.test",
                                                                                 "c.test"))
    rc, rows, err = check(env, "c.test")
    assert rc == 1 and "wrong key type" in err, err
    # both right: exit 0 (the record as `dkim list --json` gives it)
    [rec] = [k["record"] for k in env.keys() if (k["domain"], k["selector"]) == ("c.test", "gone")]
    env.records["gone._domainkey.c.test"] = [rec[i:i + 255] for i in range(0, len(rec), 255)]
    env.restart_dns()
    rc, rows, err = check(env, "c.test")
    assert rc == 0, err
    assert sorted(rows) == [["gone", "ed25519", "active", "match"],
                            ["good", "rsa2048", "active", "match"]]


def test_check_errors(env):
    rc, rows, err = check(env, "nokeys.test")
    assert rc == 1 and "no DKIM keys for nokeys.test" in err, err
    rc, rows, err = check(env, "bad domain")
    assert rc == 2 and "invalid domain" in err
    # DNS down: the port answers nothing
    env.keygen("d.test", "--selector", "s")
    env.dns.stop()
    t0 = time.monotonic()
    rc, rows, err = check(env, "d.test")
    assert rc == 1 and rows == [["s", "rsa2048", "active", "error"]], (rows, err)
    assert "cannot check" in err and "could not be looked up" in err, err
    assert time.monotonic() - t0 < 30


# ---------------------------------------------------------------- rotate


def test_rotate_prints_pending_record(env):
    env.keygen("r.test", "--selector", "old")
    env.keygen("r.test", "--selector", "olded", "--algo", "ed25519")
    rc, out, err = env.srv.cli("dkim", "rotate", "r.test")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and all(ZONE_RE.match(l) for l in lines), out
    assert "v=DKIM1; k=rsa;" in lines[0] and "v=DKIM1; k=ed25519;" in lines[1]
    assert "pending" in err and "36h" in err and "'old' is retired then" in err, err
    states = {(k["selector"], k["state"]) for k in env.keys()}
    assert ("old", "active") in states and ("olded", "active") in states
    assert sum(1 for _, s in states if s == "pending") == 2
    # the new keys' records match their files
    for line in lines:
        name, text = record_of(line)
        sel = name.split("._domainkey.")[0]
        path = os.path.join(env.srv.data_dir, "dkim", f"{sel}._domainkey.r.test.pem")
        algo = "ed25519" if "k=ed25519" in text else "rsa2048"
        assert text.split("p=", 1)[1] == pubkey_b64(path, algo)
    # one rotation at a time
    rc, out, err = env.srv.cli("dkim", "rotate", "r.test")
    assert rc == 1 and out == "" and "a rotation is pending already" in err, err


def test_rotate_errors(env):
    rc, out, err = env.srv.cli("dkim", "rotate", "none.test")
    assert rc == 1 and "no DKIM keys for none.test" in err
    env.keygen("o.test", "--selector", "s")
    rc, out, err = env.srv.cli("dkim", "rotate", "o.test", "--algo", "ed25519")
    assert rc == 1 and "no active key for that algorithm" in err, err
    rc, out, err = env.srv.cli("dkim", "rotate", "o.test", "--algo", "dsa")
    assert rc == 2 and "unknown algorithm" in err
    rc, out, err = env.srv.cli("dkim", "rotate", "o.test", "--algo", "rsa2048")
    assert rc == 0 and out.count("IN TXT") == 1, err
