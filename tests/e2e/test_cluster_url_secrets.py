"""Passwords in `[cluster] postgres` and `redis` URLs never reach an error
(docs/cluster.md, "Redis" and "The connection"): a URL written without
@HOST (postgresql://user:pw, redis://user:pw), without its scheme, with a
password= parameter or otherwise malformed is quoted with "****" in its
place by `posthorn check-config` and `posthorn serve` (FILE:LINE), and
the connection error of a PostgreSQL that cannot be reached names the URL
without it."""
import pytest

from conftest import free_port
from test_check_config import run

SECRET = "Zq7S3cretPw"


def conf(tmp_path, key, value):
    path = tmp_path / "posthorn.conf"
    path.write_text("[server]\nhostname = relay.test\n"
                    f"data_dir = {tmp_path}/data\n"
                    "[listener.mx]\n"
                    f"address = 127.0.0.1:{free_port()}\ntls = none\nauth = optional\n"
                    "[cluster]\n"
                    f"{key} = {value}\n")
    return str(path), 9  # the line of the [cluster] key


BAD = [
    ("postgres", f"postgresql://posthorn:{SECRET}", "postgresql://posthorn:****"),
    ("postgres", f"postgres://posthorn:{SECRET}/db", "postgres://posthorn:****"),
    ("postgres", f"postgresql://db1:5432,posthorn:{SECRET}/db", "postgresql://db1:5432,posthorn:****"),
    ("redis", f"redis://posthorn:{SECRET}", "redis://posthorn:****"),
    ("redis", f"redis://:{SECRET}", "redis://:****"),
    ("redis", f"redis://posthorn:{SECRET}@cache:0", "redis://posthorn:****@cache:0"),
    ("redis", f"posthorn:{SECRET}@cache", "posthorn:****@cache"),
    ("redis", f"rediss://posthorn:{SECRET}@cache", "rediss://posthorn:****@cache"),
    ("redis", f"redis://{SECRET}@cache?x=1", "redis://****@cache?x=1"),
    ("redis", f"redis://phuser:s3/{SECRET}@cache", "redis://phuser:****@cache"),
    ("redis", f"redis://phuser:s#{SECRET}@cache", "redis://phuser:****@cache"),
    ("redis", f"redis://phuser:a@{SECRET}@cache", "redis://phuser:****@cache"),
]


@pytest.mark.parametrize("key,value,shown", BAD, ids=[f"{k}-{i}" for i, (k, _, _) in
                                                        enumerate(BAD)])
def test_a_bad_url_is_quoted_without_its_password(tmp_path, key, value, shown):
    path, line = conf(tmp_path, key, value)
    for cmd in ("check-config", "serve"):
        rc, out, err = run("-c", path, cmd)
        assert rc != 0, (cmd, out, err)
        assert SECRET not in err and SECRET not in out, (cmd, err)
        assert f"{path}:{line}: {key} in [cluster]: " in err, (cmd, err)
        assert f"got '{shown}'" in err, (cmd, err)


def test_an_unreachable_postgres_is_named_without_its_password(tmp_path):
    # a valid URL with the password as a parameter; nothing listens on the port
    url = (f"postgresql://posthorn@127.0.0.1:{free_port()}/posthorn?password={SECRET}"
           "&connect_timeout=2")
    path, _ = conf(tmp_path, "postgres", url)
    rc, out, err = run("-c", path, "check-config")
    assert rc == 0, err
    rc, out, err = run("-c", path, "serve")
    assert rc != 0 and "cannot connect" in err, err
    assert SECRET not in err and SECRET not in out, err
    assert "/posthorn?password=****&connect_timeout=2: cannot connect" in err, err


# Percent-encoding the PostgreSQL client library would refuse with the raw
# piece quoted (the password), or a parameter name it would decode to
# "password" that the mask would not see: refused by the config check,
# before the library sees the URL. (alice@ alone is masked as ****@: it may
# be a password.)
PG = "postgresql://alice{}@127.0.0.1:1/db{}"
ALONE = "postgresql://****@127.0.0.1:1/db{}"
ENCODING = [
    (PG.format(f":{SECRET}%zz", ""), PG.format(":****", ""), "%XX"),
    (PG.format(f":S%zz{SECRET}", ""), PG.format(":****", ""), "%XX"),
    (PG.format(f":{SECRET}%5", ""), PG.format(":****", ""), "%XX"),
    (PG.format(f":{SECRET}%", ""), PG.format(":****", ""), "%XX"),
    (PG.format(f":{SECRET}%00x", ""), PG.format(":****", ""), "%00"),
    (PG.format("", f"?password={SECRET}%zz"), ALONE.format("?password=****"), "%XX"),
    (PG.format("", f"?password={SECRET}%00"), ALONE.format("?password=****"), "%00"),
    (PG.format("", f"?passw%6Frd={SECRET}"), ALONE.format("?passw%6Frd=****"), "name"),
    (PG.format("", f"?x=1&%70assword={SECRET}"), ALONE.format("?x=1&%70assword=****"), "name"),
    (PG.format(f":{SECRET}", "%zz"), PG.format(":****", "%zz"), "%XX"),
    # a '/', '?', '#' or '@' in the password: the library would quote pieces
    # of it as a port or a host name
    (PG.format(f":Tr0{SECRET}/Horse", ""), PG.format(":****", ""), "%2F"),
    (PG.format(f":Tr0{SECRET}?Horse", ""), PG.format(":****", ""), "%2F"),
    (PG.format(f":My@{SECRET}", ""), PG.format(":****", ""), "%40"),
    (PG.format(f":p@ss:{SECRET}", ""), PG.format(":****", ""), "%40"),
]


@pytest.mark.parametrize("value,shown,why", ENCODING,
                         ids=[f"pg-{i}" for i in range(len(ENCODING))])
def test_a_bad_escape_in_the_postgres_url_is_refused_without_its_password(tmp_path, value,
                                                                          shown, why):
    path, line = conf(tmp_path, "postgres", value)
    for cmd in (["check-config"], ["serve"], ["cluster", "status"]):
        rc, out, err = run("-c", path, *cmd)
        assert rc != 0, (cmd, out, err)
        assert SECRET not in err and SECRET not in out, (cmd, err)
        assert f"{path}:{line}: postgres in [cluster]: " in err, (cmd, err)
        assert f"got '{shown}'" in err, (cmd, err)
        assert why in err, (cmd, err)
