"""Spool recovery against queue entries that are not regular files
(docs/spool.md, Recovery). An operator, a restore or a stray process can
leave anything in DATA_DIR/spool/queue: a FIFO must not hang the start (nor
`queue list`), a directory must not stop it, and a symbolic link must never
be followed (the relay appends to queue files: a link would make it write
wherever the link points). Each is moved to quarantine/, never deleted, and
the relay starts and serves."""
import hashlib
import os
import stat

import helpers

# Names that are valid queue IDs (16 characters of the ID alphabet, util.h).
FIFO_ID = "000000000000FFF1"
DIR_ID = "000000000000DDD1"
LINK_ID = "000000000000SYM1"
DANGLING_ID = "000000000000SYM2"
CLI_TIMEOUT = 15


def spool(s, *parts):
    return os.path.join(s.data_dir, "spool", *parts)


def queued_message(server_factory):
    """A server that has one good message queued, stopped."""
    s = server_factory()
    qid = helpers.send_raw_message(s.port, "a@example.com", ["b@example.net"],
                                   helpers.message("kept"))
    s.stop()
    return s, qid


def queue_list_returns(s):
    """`posthorn queue list` on the stopped server: returns, lists only good
    messages, warns about the odd entry."""
    rc, out, err = s.cli("queue", "list", "--json", timeout=CLI_TIMEOUT)
    assert rc == 0, f"queue list failed ({rc}): {err}"
    return helpers.parse_queue_list(out), err


def assert_quarantined(s, name, kind):
    moved = spool(s, "quarantine", name)
    assert os.path.lexists(moved), f"{name} not in quarantine/: {os.listdir(spool(s, 'quarantine'))}"
    assert kind(os.lstat(moved).st_mode), f"quarantine/{name} is not what was put in the queue"
    assert not os.path.lexists(spool(s, "queue", name))
    log = s.log()
    assert f"queue={name} event=quarantined" in log, log[-3000:]


def assert_serves(s, kept_id):
    assert "event=start_error" not in s.log()
    assert kept_id in s.queue()
    qid = helpers.send_raw_message(s.port, "c@example.com", ["d@example.net"],
                                   helpers.message("after"))
    assert qid in s.queue()


def test_fifo_in_queue(server_factory):
    s, kept = queued_message(server_factory)
    os.mkfifo(spool(s, "queue", FIFO_ID), 0o600)
    q, err = queue_list_returns(s)  # before the fix: blocked in open(2)
    assert kept in q and FIFO_ID not in q
    assert f"queue={FIFO_ID} event=spool_unreadable" in err, err
    assert "not a regular file" in err, err
    rc, out, err = s.cli("queue", "show", FIFO_ID, timeout=CLI_TIMEOUT)
    assert rc != 0 and "not a regular file" in err, (rc, out, err)
    s.restart()  # before the fix: no 220 within the start timeout
    assert_quarantined(s, FIFO_ID, stat.S_ISFIFO)
    assert_serves(s, kept)


def test_directory_in_queue(server_factory):
    s, kept = queued_message(server_factory)
    os.mkdir(spool(s, "queue", DIR_ID), 0o700)
    with open(spool(s, "queue", DIR_ID, "inside"), "w") as f:
        f.write("operator's file\n")
    q, err = queue_list_returns(s)  # before the fix: failed with EISDIR
    assert kept in q and DIR_ID not in q
    s.restart()  # before the fix: recovery failed and the server exited
    assert_quarantined(s, DIR_ID, stat.S_ISDIR)
    with open(spool(s, "quarantine", DIR_ID, "inside")) as f:
        assert f.read() == "operator's file\n"  # moved whole, never emptied
    assert_serves(s, kept)


def test_symlinks_in_queue(server_factory, tmp_path):
    """A link to a real spool file (outside the spool) is not followed: the
    message behind it is not taken in, and its bytes stay untouched. A
    dangling link goes to quarantine as well."""
    s, kept = queued_message(server_factory)
    outside = tmp_path / "outside"
    outside.mkdir()
    # a second, valid message file, moved out of the queue under its own ID
    s.start()
    other = helpers.send_raw_message(s.port, "e@example.com", ["f@example.net"],
                                     helpers.message("outside"))
    s.stop()
    target = outside / other
    os.rename(spool(s, "queue", other), target)
    os.symlink(target, spool(s, "queue", other))
    os.symlink(outside / "nothing-here", spool(s, "queue", DANGLING_ID))
    before = hashlib.sha256(target.read_bytes()).hexdigest()

    q, err = queue_list_returns(s)  # before the fix: the link was followed
    assert kept in q and other not in q and DANGLING_ID not in q
    assert f"queue={other} event=spool_unreadable" in err, err
    s.restart()
    assert_quarantined(s, other, stat.S_ISLNK)
    assert_quarantined(s, DANGLING_ID, stat.S_ISLNK)
    assert os.readlink(spool(s, "quarantine", other)) == str(target)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == before
    assert_serves(s, kept)
    assert other not in s.queue()
