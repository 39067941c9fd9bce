"""`posthorn suppress list|add|remove` on a real data directory: one entry
a line (address, reason, RFC 3339 time) or one JSON object a line, what
happened on stderr, idempotent adds, per-account lists, lists longer than
a page, help for every subcommand, and clear errors with their exit codes
(2 usage and bad addresses, 1 unknown accounts and absent entries)."""
import json
import re
import sqlite3

import pytest

RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


@pytest.fixture
def s(server_factory):
    return server_factory(start=False)  # the CLI works on a stopped server's data


def lines(out):
    return [ln.split("\t") for ln in out.splitlines()]


def test_add_list_remove(s):
    rc, out, err = s.cli("suppress", "add", "John.Doe@Example.COM", "--reason", "hard bounce: 550")
    assert rc == 0, err
    (entry,) = lines(out)
    assert entry[:2] == ["John.Doe@example.com", "hard bounce: 550"]
    assert re.fullmatch(RFC3339, entry[2])
    assert "added to the suppression list of account default" in err
    assert "John.Doe" not in err.split("posthorn: ")[0]  # messages only on stderr
    rc, out2, err = s.cli("suppress", "add", "john.doe@example.com", "--reason=other")
    assert rc == 0 and out2 == out  # the first reason and time stay
    assert "already on the suppression list" in err
    rc, out, err = s.cli("suppress", "add", "<a@example.org>")
    assert rc == 0 and lines(out)[0][:2] == ["a@example.org", "manual"]
    rc, out, err = s.cli("suppress", "list")
    assert rc == 0 and [ln[0] for ln in lines(out)] == ["a@example.org", "John.Doe@example.com"]
    assert all(len(ln) == 3 for ln in lines(out))
    rc, out, err = s.cli("suppress", "list", "--search", "JOHN")
    assert rc == 0 and [ln[0] for ln in lines(out)] == ["John.Doe@example.com"]
    rc, out, err = s.cli("suppress", "remove", "JOHN.DOE@example.com")
    assert rc == 0 and lines(out)[0][:2] == ["John.Doe@example.com", "hard bounce: 550"]
    assert "removed" in err
    rc, out, err = s.cli("suppress", "remove", "john.doe@example.com")
    assert rc == 1 and out == ""
    assert "john.doe@example.com is not on the suppression list of account default" in err
    rc, out, err = s.cli("suppress", "list")
    assert [ln[0] for ln in lines(out)] == ["a@example.org"]


def test_json_lines(s):
    rc, out, err = s.cli("suppress", "add", "x@example.org", "--reason", 'say "hi"\\', "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["address"] == "x@example.org" and doc["reason"] == 'say "hi"\\'
    assert re.fullmatch(RFC3339, doc["created_at"])
    s.cli("suppress", "add", "y@example.org")
    rc, out, err = s.cli("suppress", "list", "--json")
    assert rc == 0
    docs = [json.loads(ln) for ln in out.splitlines()]
    assert [d["address"] for d in docs] == ["x@example.org", "y@example.org"]
    assert all(set(d) == {"address", "reason", "created_at"} for d in docs)
    rc, out, err = s.cli("suppress", "remove", "y@example.org", "--json")
    assert rc == 0 and json.loads(out)["address"] == "y@example.org"


def test_accounts(s):
    s.add_user("bob", domains=())
    assert s.cli("suppress", "add", "a@x.org", "--account", "bob", "--reason", "bob's")[0] == 0
    rc, out, err = s.cli("suppress", "list")
    assert rc == 0 and out == ""
    rc, out, err = s.cli("suppress", "list", "--account", "bob")
    assert lines(out)[0][:2] == ["a@x.org", "bob's"]
    rc, out, err = s.cli("suppress", "remove", "a@x.org")
    assert rc == 1
    for args in (["list"], ["add", "a@x.org"], ["remove", "a@x.org"]):
        rc, out, err = s.cli("suppress", *args, "--account", "nobody")
        assert rc == 1 and "no such account 'nobody'" in err and out == "", args


def test_a_list_longer_than_a_page(s):
    s.cli("suppress", "list")  # creates the database
    db = sqlite3.connect(s.data_dir + "/posthorn.db")
    with db:
        db.executemany("INSERT INTO suppressions VALUES (1, ?, ?, 'bulk', 1700000000)",
                       [(f"u{i:05}@example.com",) * 2 for i in range(2500)])
    db.close()
    rc, out, err = s.cli("suppress", "list")
    assert rc == 0, err
    got = [ln[0] for ln in lines(out)]
    assert got == [f"u{i:05}@example.com" for i in range(2500)]
    assert lines(out)[0][2] == "2023-11-14T22:13:20Z"


def test_bad_addresses_and_usage(s):
    for addr, words in (("nobody", "no '@'"), ("a b@x.org", "unquoted local part"),
                        ("a@x..org", "not a valid RFC 5321 address"), ("", "no '@'")):
        rc, out, err = s.cli("suppress", "add", addr)
        assert rc == 2 and out == "" and f"invalid address '{addr}': " in err, addr
        assert words in err, addr
    rc, out, err = s.cli("suppress", "remove", "nobody")
    assert rc == 2 and "invalid address 'nobody'" in err
    for args in (["suppress"], ["suppress", "add"], ["suppress", "add", "a@x.org", "b@x.org"],
                 ["suppress", "remove"], ["suppress", "list", "a@x.org"],
                 ["suppress", "frobnicate"], ["suppress", "list", "--reason", "x"],
                 ["suppress", "add", "a@x.org", "--reason"],
                 ["suppress", "remove", "a@x.org", "--search", "x"]):
        rc, out, err = s.cli(*args)
        assert rc == 2, args
        assert "usage: posthorn suppress" in err and out == "", args
    rc, out, err = s.cli("suppress", "add", "a@x.org", "--reason", "a\nb")
    assert rc == 2 and "control characters" in err
    rc, out, err = s.cli("suppress", "add", "a@x.org", "--reason", "r" * 513)
    assert rc == 2 and "longer than 512" in err
    rc, out, err = s.cli("suppress", "list")
    assert out == ""


@pytest.mark.parametrize("args", [["suppress", "--help"], ["suppress", "help"],
                                  ["suppress", "list", "--help"], ["suppress", "add", "-h"],
                                  ["suppress", "remove", "--help"],
                                  ["suppress", "add", "a@x.org", "--help"]])
def test_help(s, args):
    rc, out, err = s.cli(*args)
    assert rc == 0
    # a command's own usage; the group's lists every command below it
    verb = args[1] if args[1] in ("list", "add", "remove") else None
    assert out.startswith("usage: posthorn suppress" + (f" {verb}" if verb else "")), out
    if not verb:
        assert "suppress add ADDR" in out and "suppress remove ADDR" in out
        assert "suppress list" in out


def test_main_usage_names_suppress(s):
    rc, out, err = s.cli("--help")
    assert rc == 0 and "suppress list" in out
