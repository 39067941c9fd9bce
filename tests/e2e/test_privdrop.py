"""SPEC §2 [server] user: started as root, the server binds its ports and
then runs as that user; its data directory is handed over to it."""
import os
import pwd
import shutil
import tempfile

import pytest

import helpers

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")


def proc_ids(pid):
    ids = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("Uid:", "Gid:")):
                k, v = line.split(":", 1)
                ids[k + ":"] = [int(x) for x in v.split()]
    return ids


@pytest.fixture
def open_dir():
    # pytest's tmp dirs are private to root; the dropped server must reach its data dir
    d = tempfile.mkdtemp(prefix="posthorn-privdrop-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_runs_as_configured_user(server_factory, open_dir):
    nobody = pwd.getpwnam("nobody")
    s = server_factory(server={"user": "nobody", "data_dir": os.path.join(open_dir, "data")})
    ids = proc_ids(s.proc.pid)
    assert ids["Uid:"] == [nobody.pw_uid] * 4, ids
    assert ids["Gid:"] == [nobody.pw_gid] * 4, ids
    assert "event=privileges_dropped user=nobody" in s.log()
    # it still works: the data dir and everything in it belong to the user now
    qid = helpers.send_raw_message(s.port, "a@example.com", ["b@example.net"],
                                   helpers.message(subject="dropped"))
    assert qid in s.queue()
    st = os.stat(os.path.join(open_dir, "data", "spool", "queue", qid))
    assert st.st_uid == nobody.pw_uid


def test_unknown_user_is_a_config_error(server_factory, open_dir):
    s = server_factory(start=False, server={"user": "no-such-user-posthorn",
                                            "data_dir": os.path.join(open_dir, "data")})
    rc, out, err = s.cli("check-config")
    assert rc == 2, (rc, err)
    assert "no-such-user-posthorn" in err
