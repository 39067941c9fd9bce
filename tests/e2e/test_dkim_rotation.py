"""SPEC §5, key rotation: a key made by `dkim rotate` is pending and does
not sign until its record is seen in the test DNS (dnsmasq TXT), by `dkim
check` or by the server's watch (dkim_watch, run here through
build/tests/dkim-tool watch); then it signs, the key it replaces stops
signing and is retired, the CLI says until when the old record must stay
published ([dkim] rotation_grace), and during that grace period mail
signed by either selector verifies with dkimpy and opendkim-testmsg."""
import calendar
import os
import re
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e_support"))
import dkim_verify  # noqa: E402
import dkim_env  # noqa: E402

GRACE_S = 2 * 86400 + 3 * 3600  # rotation_grace = 51h


def message(domain, n):
    return (f"From: Sender <sender@{domain}>\r\nTo: rcpt@example.net\r\n"
            f"Subject: rotation {n}\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <rot.{n}@{domain}>\r\n\r\nbody {n}\r\n").encode()


@pytest.fixture
def env(server_factory, tmp_path):
    with dkim_env.fresh(server_factory, tmp_path, "51h") as e:
        yield e


def keys(env):
    return {k["selector"]: k for k in env.keys()}


def signed_by(env, domain, n):
    rc, signed, result = env.sign(message(domain, n))
    assert (rc, result) == (0, "signed"), result
    return signed, sorted(dkim_verify.tags(f)["s"] for f in dkim_verify.signature_fields(signed))


def utc_seconds(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def rotate(env, domain, *opts):
    rc, out, err = env.srv.cli("dkim", "rotate", domain, *opts)
    assert rc == 0, err
    return out.strip().splitlines()


@pytest.mark.parametrize("activate_by", ["cli", "watch"])
def test_rotation(env, activate_by):
    env.keygen("rot.test", "--selector", "old")
    old_msg, sels = signed_by(env, "rot.test", 1)
    assert sels == ["old"]
    [new_line] = rotate(env, "rot.test")
    new = new_line.split("._domainkey.")[0]
    assert keys(env)[new]["state"] == "pending"

    # not published yet: the pending key does not sign, check leaves it pending
    _, sels = signed_by(env, "rot.test", 2)
    assert sels == ["old"]
    if activate_by == "cli":
        rc, out, err = env.srv.cli("dkim", "check", "rot.test")
        assert rc == 0, err  # the active key's record is fine
        assert f"{new}\trsa2048\tpending\tmissing" in out, out
    else:
        got, err = env.watch_once()
        assert (got["activated"], got["signing"]) == ("0", "1"), (got, err)
    assert keys(env)[new]["state"] == "pending"
    _, sels = signed_by(env, "rot.test", 3)
    assert sels == ["old"]

    # published: seen, activated; the old key is retired and stops signing
    env.publish(new_line)
    t0 = int(time.time())
    if activate_by == "cli":
        rc, out, err = env.srv.cli("dkim", "check", "rot.test")
        assert rc == 0, err
        assert f"{new}\trsa2048\tactive\tmatch" in out and "old\trsa2048\tretired\tmatch" in out
        m = re.search(r"key 'old' of rot\.test is retired: it no longer signs; keep its record "
                      r"published until (\S+) \(\[dkim\] rotation_grace 51h\)", err)
        assert m, err
        until = utc_seconds(m.group(1))
    else:
        got, err = env.watch_once()
        assert (got["activated"], got["signing"]) == ("1", "1"), (got, err)
        assert "event=dkim_key_activated domain=rot.test selector=" + new in err, err
        assert "event=dkim_key_retired domain=rot.test selector=old" in err, err
        until = utc_seconds(keys(env)["old"]["keep_record_until"])
    k = keys(env)
    assert k[new]["state"] == "active" and k["old"]["state"] == "retired"
    retired = utc_seconds(k["old"]["retired"])
    assert t0 - 2 <= retired <= time.time() + 2
    assert until == retired + GRACE_S
    assert k["old"]["keep_record_until"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                          time.gmtime(until))

    new_msg, sels = signed_by(env, "rot.test", 4)
    assert sels == [new]
    # grace period: both records published, mail of either key verifies
    env.assert_verifies(old_msg, ["old"])
    env.assert_verifies(new_msg, [new])

    # `dkim list` and `dkim check` tell when the old record may go
    rc, out, err = env.srv.cli("dkim", "list")
    row = [l.split("\t") for l in out.splitlines() if l.split("\t")[1] == "old"][0]
    assert row[3:] == ["retired", row[4], k["old"]["keep_record_until"]], row
    rc, out, err = env.srv.cli("dkim", "check", "rot.test")
    assert rc == 0 and "key 'old' is retired: keep its record published until" in err, err
    # the old record removed during the grace period: said, not fatal
    env.unpublish("old._domainkey.rot.test")
    rc, out, err = env.srv.cli("dkim", "check", "rot.test")
    assert rc == 0 and "old\trsa2048\tretired\tmissing" in out, (out, err)


def test_dual_rotation_one_algorithm(env):
    """A domain signing with both algorithms rotates its ed25519 key alone:
    the rsa key goes on signing throughout."""
    env.keygen("dual.test", "--selector", "r")
    env.keygen("dual.test", "--selector", "e", "--algo", "ed25519")
    [line] = rotate(env, "dual.test", "--algo", "ed25519")
    new = line.split("._domainkey.")[0]
    _, sels = signed_by(env, "dual.test", 1)
    assert sels == ["e", "r"]
    env.publish(line)
    got, err = env.watch_once()
    assert got["activated"] == "1", (got, err)
    k = keys(env)
    assert (k["r"]["state"], k["e"]["state"], k[new]["state"]) == ("active", "retired", "active")
    msg, sels = signed_by(env, "dual.test", 2)
    assert sels == sorted([new, "r"])
    env.assert_verifies(msg, [new, "r"])


def test_wrong_record_does_not_activate(env):
    """A record that is there but is not the pending key's: still pending."""
    env.keygen("w.test", "--selector", "old")
    [line] = rotate(env, "w.test")
    new = line.split("._domainkey.")[0]
    other = env.keygen("elsewhere.test", "--selector", new, publish=False)
    env.publish(other.replace("elsewhere.test", "w.test"))
    rc, out, err = env.srv.cli("dkim", "check", "w.test")
    assert rc == 0 and f"{new}\trsa2048\tpending\tdifferent" in out, (out, err)
    got, err = env.watch_once()
    assert got["activated"] == "0"
    assert keys(env)[new]["state"] == "pending"
    _, sels = signed_by(env, "w.test", 1)
    assert sels == ["old"]


def test_watch_timers(env):
    """The watch's timers, as the server runs them: a key made while it
    runs is loaded within a second, and a pending key whose record is
    published is activated by a timed round."""
    env.keygen("t.test", "--selector", "old")
    [line] = rotate(env, "t.test")
    env.publish(line)
    p = env.watch(ms=2500)
    time.sleep(0.8)
    env.keygen("later.test", "--selector", "k1")
    got, err = env.watch_result(p)
    assert got["activated"] == "1", (got, err)
    # t.test's new key and later.test's key; the old one retired
    assert got["signing"] == "2", (got, err)
    assert int(got["rounds"]) >= 3, got
    assert err.count("event=dkim_key_activated") == 1, err
    assert keys(env)["old"]["state"] == "retired"
