"""A real PostgreSQL 15 for the tests: an unprivileged cluster in a temp dir
(initdb and pg_ctl from Debian's postgresql-15, run as the `postgres` user,
since initdb refuses root), listening on one loopback port only, its unix
socket in the temp dir. One cluster per test session; each test makes its
own database (new_db), so tests never see each other's rows."""
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile

PG_BIN = "/usr/lib/postgresql/15/bin"
USER = "posthorn"


def available():
    return os.path.exists(os.path.join(PG_BIN, "initdb"))


def _as_owner(cmd, owner):
    if os.getuid() == 0:
        return ["runuser", "-u", owner, "--", *cmd]
    return cmd


class PgCluster:
    def __init__(self, port):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="posthorn-pg-")
        self.owner = "postgres" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
        if os.getuid() == 0:
            pw = pwd.getpwnam(self.owner)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self._n = itertools.count(1)
        self._run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", USER,
                   "--auth=trust", "-E", "UTF8", "--no-sync"])
        self.start()

    def _run(self, cmd, timeout=60):
        p = subprocess.run(_as_owner(cmd, self.owner), capture_output=True, text=True,
                           timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {p.stdout}{p.stderr}")
        return p.stdout

    def start(self):
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                f"-c unix_socket_directories={self.dir} -c fsync=off "
                f"-c synchronous_commit=off -c max_connections=200")
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l", self.log,
                   "-w", "-t", "30", "-o", opts, "start"])

    def stop(self):
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-w", "-t", "30",
                   "-m", "fast", "stop"])

    def url(self, db):
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{db}"

    def new_db(self):
        """A fresh, empty database; returns its URL."""
        name = f"t{next(self._n)}"
        self.sql("postgres", f"CREATE DATABASE {name}")
        return self.url(name)

    def sql(self, db, query):
        """Runs query with psql in database db; returns its rows as text."""
        p = subprocess.run([os.path.join(PG_BIN, "psql"), "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", USER, "-d", db, "-At",
                            "-v", "ON_ERROR_STOP=1", "-c", query],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"psql: {p.stderr}")
        return p.stdout

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
