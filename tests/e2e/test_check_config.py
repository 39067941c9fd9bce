"""`posthorn check-config` beyond the file (docs/cli.md): the TLS certificate
and key (a pair; expired is an error, ending within 14 days a warning), that
[server] user can read them when run as root, and listeners that can never
accept mail, each reported as FILE:LINE."""
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from conftest import posthorn_bin, sanitizer_env, assert_no_sanitizer_report, free_port


def run(*args):
    env = sanitizer_env()
    env.pop("POSTHORN_CONFIG", None)
    p = subprocess.run([posthorn_bin(), *args], capture_output=True, text=True, timeout=30,
                       env=env)
    assert_no_sanitizer_report(p.stderr, "posthorn " + " ".join(args))
    return p.returncode, p.stdout, p.stderr


def openssl(*args, cwd=None):
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


def make_cert(d, name, days=365):
    crt, key = os.path.join(d, f"{name}.crt"), os.path.join(d, f"{name}.key")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
            "-days", str(days), "-subj", "/CN=localhost")
    return crt, key


def make_expired_cert(d):
    """Self-signed, valid for one day in 2020 (openssl ca takes explicit dates)."""
    ca = os.path.join(d, "ca")
    os.mkdir(ca)
    with open(os.path.join(ca, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
                "serial = serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n")
    open(os.path.join(ca, "index.txt"), "w").close()
    with open(os.path.join(ca, "serial"), "w") as f:
        f.write("01\n")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "old.key", "-out",
            "old.csr", "-subj", "/CN=localhost", cwd=ca)
    openssl("ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "old.key", "-in",
            "old.csr", "-out", "old.crt", "-startdate", "20200101000000Z", "-enddate",
            "20200102000000Z", cwd=ca)
    return os.path.join(ca, "old.crt"), os.path.join(ca, "old.key")


def conf_file(d, tls=None, listeners=None, relay="", server=""):
    """A config; returns (path, {name: line}) with the line of each listener's auth key."""
    lines = ["[server]", "hostname = relay.test", f"data_dir = {d}/data"]
    lines += server.splitlines()
    where = {}
    for name, opts in (listeners or {"mx": {"tls": "none", "auth": "optional"}}).items():
        lines.append(f"[listener.{name}]")
        lines.append(f"address = {opts.get('address', f'127.0.0.1:{free_port()}')}")
        for k, v in opts.items():
            if k != "address":
                lines.append(f"{k} = {v}")
                if k == "auth":
                    where[name] = len(lines)
    if tls:
        lines += ["[tls]", f"cert = {tls[0]}", f"key = {tls[1]}"]
        where["cert"], where["key"] = len(lines) - 1, len(lines)
    lines += ["[relay]"] + relay.splitlines()
    path = os.path.join(d, "check.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, where


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    good = make_cert(d, "good", 365)
    other = make_cert(d, "other", 365)
    soon = make_cert(d, "soon", 7)
    return {"good": good, "other": other, "soon": soon, "old": make_expired_cert(d)}


def test_good_pair_is_ok(tmp_path, certs):
    path, _ = conf_file(tmp_path, tls=certs["good"])
    rc, out, err = run("-c", path, "check-config")
    assert rc == 0, err
    assert err.strip() == f"{path}: ok", err


def test_key_of_another_certificate_is_an_error(tmp_path, certs):
    path, where = conf_file(tmp_path, tls=(certs["good"][0], certs["other"][1]))
    rc, out, err = run("-c", path, "check-config")
    assert rc == 2, (rc, err)
    assert f"{path}:{where['key']}: " in err and "does not belong" in err, err


def test_certificate_ending_within_14_days_is_a_warning(tmp_path, certs):
    path, where = conf_file(tmp_path, tls=certs["soon"])
    rc, out, err = run("-c", path, "check-config")
    assert rc == 0, (rc, err)
    assert f"{path}:{where['cert']}: warning: " in err and "within 14 days" in err, err
    assert "(with warnings)" in err


def test_expired_certificate_is_an_error(tmp_path, certs):
    path, where = conf_file(tmp_path, tls=certs["old"])
    rc, out, err = run("-c", path, "check-config")
    assert rc == 2, (rc, err)
    assert f"{path}:{where['cert']}: " in err and "expired on 2020-01-02" in err, err


def test_file_that_is_not_pem_is_an_error(tmp_path, certs):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    path, where = conf_file(tmp_path, tls=(str(junk), certs["good"][1]))
    rc, out, err = run("-c", path, "check-config")
    assert rc == 2, (rc, err)
    assert f"{path}:{where['cert']}: " in err and "no PEM certificate" in err, err


@pytest.mark.skipif(os.geteuid() != 0, reason="reading as another user needs root")
def test_key_the_server_user_cannot_read_is_an_error(certs):
    nobody = pwd.getpwnam("nobody")
    d = tempfile.mkdtemp(prefix="posthorn-check-")
    try:
        os.chmod(d, 0o755)
        crt, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        shutil.copy(certs["good"][0], crt)
        shutil.copy(certs["good"][1], key)
        os.chmod(crt, 0o644)
        os.chmod(key, 0o600)  # root's alone
        path, where = conf_file(d, tls=(crt, key), server="user = nobody")
        rc, out, err = run("-c", path, "check-config")
        assert rc == 2, (rc, err)
        assert f"{path}:{where['key']}: " in err and "user nobody" in err, err
        assert f"{path}:{where['cert']}: " not in err, err
        # its group may read it: the check uses the user's groups as well
        os.chown(key, 0, nobody.pw_gid)
        os.chmod(key, 0o640)
        rc, out, err = run("-c", path, "check-config")
        assert rc == 0, (rc, err)
        # a directory on the way it may not enter
        os.chmod(d, 0o700)
        rc, out, err = run("-c", path, "check-config")
        assert rc == 2 and "user nobody" in err, (rc, err)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# (tls, auth, trusted_networks, address, [bounces] domain) -> can it accept mail?
LISTENERS = [
    ("none", "required", "", "127.0.0.1", None, False),
    ("none", "required", "127.0.0.0/8", "127.0.0.1", None, True),  # trusted may AUTH in clear
    ("none", "required", "10.0.0.0/8", "127.0.0.1", None, False),  # no 10.x client on loopback
    ("none", "required", "10.0.0.0/8", "0.0.0.0", None, True),
    ("none", "optional", "", "127.0.0.1", None, False),
    ("none", "off", "", "0.0.0.0", None, False),
    ("none", "off", "::1/128", "127.0.0.1", None, False),  # IPv6 network, IPv4 listener
    ("none", "off", "::1/128", "[::1]", None, True),
    ("none", "off", "127.0.0.1/32", "[::]", None, True),  # IPv4 clients reach [::]
    ("none", "off", "127.0.0.5/32", "127.0.0.1", None, True),
    ("starttls", "required", "", "0.0.0.0", None, True),
    ("implicit", "optional", "", "127.0.0.1", None, True),
    ("starttls", "off", "", "0.0.0.0", None, False),
    ("none", "required", "", "127.0.0.1", "bounces.example.com", True),  # VERP bounces
]


@pytest.mark.parametrize("tls,auth,trusted,address,bounces,ok", LISTENERS)
def test_listener_that_can_never_accept_mail(tmp_path, certs, tls, auth, trusted, address,
                                             bounces, ok):
    listeners = {"app": {"address": f"{address}:{free_port()}", "tls": tls, "auth": auth}}
    relay = f"trusted_networks = {trusted}"
    extra = f"\n[bounces]\ndomain = {bounces}" if bounces else ""
    path, where = conf_file(tmp_path, tls=certs["good"], listeners=listeners,
                            relay=relay + extra)
    rc, out, err = run("-c", path, "check-config")
    if ok:
        assert rc == 0, (rc, err)
    else:
        assert rc == 2, (rc, err)
        assert f"{path}:{where['app']}: [listener.app] can never accept mail" in err, err


def test_each_dead_listener_is_reported(tmp_path):
    listeners = {"a": {"tls": "none", "auth": "required"}, "b": {"tls": "none", "auth": "off"},
                 "c": {"tls": "none", "auth": "optional"}}
    path, where = conf_file(tmp_path, listeners=listeners, relay="trusted_networks =")
    rc, out, err = run("-c", path, "check-config")
    assert rc == 2, (rc, err)
    for name in "abc":
        assert f"{path}:{where[name]}: [listener.{name}] can never accept mail" in err, err


# (section, key, bad value, what check-config must say is wrong with it)
BAD_ADDRESSES = [
    ("listener.a", "address", "127.0.0.1:99999", "the port must be a number from 1 to 65535"),
    ("listener.a", "address", "127.0.0.1:0", "the port must be a number from 1 to 65535"),
    ("listener.a", "address", "127.0.0.1:smtp", "the port must be a number from 1 to 65535"),
    ("listener.a", "address", "not an address", "no port"),
    ("listener.a", "address", "127.0.0.1", "no port"),
    ("listener.a", "address", "localhost:2525", "'localhost' is not an IP address"),
    ("listener.a", "address", "300.1.1.1:25", "'300.1.1.1' is not an IP address"),
    ("listener.a", "address", "::1:25", "an IPv6 address goes in brackets"),
    ("listener.a", "address", "[::1]", "no port after"),
    ("listener.a", "address", "[::1:25", "no closing ']'"),
    ("listener.a", "address", "[127.0.0.1]:25", "brackets are for IPv6"),
    ("listener.a", "address", ":25", "no IP address before the port"),
    ("listener.a", "address", "", "empty"),
    ("http", "address", "localhost:8025", "'localhost' is not an IP address"),
    ("http", "address", "127.0.0.1:70000", "the port must be a number from 1 to 65535"),
    ("relay", "dns_servers", "127.0.0.1:53, 127.0.0.1:99999",
     "'127.0.0.1:99999': the port must be a number from 1 to 65535"),
    ("relay", "dns_servers", "ns1.example.com:53", "'ns1.example.com' is not an IP address"),
    ("relay", "trusted_networks", "127.0.0.0/8, 10.0.0.0/33",
     "'10.0.0.0/33': the prefix must be a number from 0 to 32"),
    ("relay", "trusted_networks", "localnet", "'localnet' is not an IP address"),
    ("relay", "blocked_destinations", "::1/129",
     "'::1/129': the prefix must be a number from 0 to 128"),
    ("relay", "smarthost", "[localhost]:99999", "port: 1 to 65535"),
    ("events", "webhook_blocked_destinations", "10.1.0.0/8", "bits set beyond its /8 prefix"),
    ("pool.p", "source_addresses", "192.0.2.1, mta.example.com",
     "'mta.example.com' is not an IP address"),
]


@pytest.mark.parametrize("section,key,value,why", BAD_ADDRESSES)
def test_bad_address_says_what_is_wrong(tmp_path, section, key, value, why):
    """A present but invalid address is reported at its own line with what is wrong with it,
    and never as a missing one."""
    lines = ["[server]", "hostname = relay.test", f"data_dir = {tmp_path}/data"]
    if section != "listener.a":
        lines += ["[listener.a]", f"address = 127.0.0.1:{free_port()}", "tls = none",
                  "auth = off"]
    if section == "pool.p":
        lines += ["[pool.p]", "ehlo_names = a.example.com, b.example.com"]
    else:
        lines += [f"[{section}]"]
    lines += [f"{key} = {value}"]
    if section == "listener.a":
        lines += ["tls = none", "auth = off"]
    path = tmp_path / "bad.conf"
    path.write_text("\n".join(lines) + "\n")
    line = lines.index(f"{key} = {value}") + 1
    rc, out, err = run("-c", str(path), "check-config")
    assert rc == 2, (rc, err)
    assert f"{path}:{line}: {key} in [{section}]: " in err, err
    assert why in err, err
    assert "needs an address" not in err, err
    assert len(err.strip().splitlines()) == 1, err  # one mistake, one error


# (tls, auth, trusted_networks, listener address) -> may passwords cross a network in clear?
CLEARTEXT_AUTH = [
    ("none", "required", "10.0.0.0/8", "0.0.0.0", True),
    ("none", "optional", "127.0.0.0/8, 192.168.0.0/16", "0.0.0.0", True),
    ("none", "required", "127.0.0.0/8, ::1/128, 192.168.0.0/16", "[::]", True),
    ("none", "required", "0.0.0.0/0", "192.0.2.1", True),
    ("none", "required", "127.0.0.0/8, ::1/128", "0.0.0.0", False),  # loopback stays here
    ("none", "required", "127.0.0.0/8, ::1/128", "[::]", False),
    ("none", "optional", "127.0.0.0/8, 10.0.0.0/8", "127.0.0.1", False),  # only loopback reaches it
    ("none", "off", "10.0.0.0/8", "0.0.0.0", False),  # no AUTH at all
    ("starttls", "required", "10.0.0.0/8", "0.0.0.0", False),  # AUTH only after STARTTLS
    ("implicit", "optional", "10.0.0.0/8", "0.0.0.0", False),
]


@pytest.mark.parametrize("tls,auth,trusted,address,warn", CLEARTEXT_AUTH)
def test_cleartext_auth_beyond_loopback_is_a_warning(tmp_path, certs, tls, auth, trusted,
                                                     address, warn):
    """docs/smtp.md: a tls = none listener takes AUTH in clear from trusted clients; when
    such a client can be on another machine, passwords cross the network in clear."""
    listeners = {"app": {"address": f"{address}:{free_port()}", "tls": tls, "auth": auth}}
    path, where = conf_file(tmp_path, tls=certs["good"], listeners=listeners,
                            relay=f"trusted_networks = {trusted}")
    rc, out, err = run("-c", path, "check-config")
    assert rc == 0, (rc, err)
    if warn:
        assert f"{path}:{where['app']}: warning: [listener.app] takes AUTH passwords in " \
               "clear text from trusted_networks beyond this machine" in err, err
        assert "(with warnings)" in err, err
    else:
        assert err.strip() == f"{path}: ok", err


# ---- [cluster] secret_key_file -------------------------------------------------------


def secret_conf(d, secret, mode=0o600, content=None):
    """A config whose [cluster] names secret (written with content and mode
    unless content is None: then the file is missing); returns (path, line
    of secret_key_file)."""
    if content is not None:
        with open(secret, "w") as f:
            f.write(content)
        os.chmod(secret, mode)
    path, _ = conf_file(d)
    with open(path) as f:
        n = len(f.read().splitlines())
    with open(path, "a") as f:
        f.write("[cluster]\npostgres = postgresql://posthorn@127.0.0.1:1/posthorn\n"
                f"secret_key_file = {secret}\n")
    return path, n + 3


def test_secret_key_file_good_is_ok(tmp_path):
    path, _ = secret_conf(tmp_path, str(tmp_path / "secret.key"), content="ab" * 32 + "\n")
    rc, out, err = run("-c", path, "check-config")
    assert rc == 0 and err.strip() == f"{path}: ok", (rc, err)


def test_secret_key_file_missing_is_an_error_saying_how_to_make_one(tmp_path):
    secret = str(tmp_path / "nowhere.key")
    path, line = secret_conf(tmp_path, secret)
    rc, out, err = run("-c", path, "check-config")
    assert rc == 2, (rc, err)
    assert f"{path}:{line}: cannot read {secret}: No such file or directory" in err, err
    assert "openssl rand -hex 32" in err and "chmod 600" in err, err


def test_secret_key_file_not_hex_is_an_error_that_never_quotes_it(tmp_path):
    path, line = secret_conf(tmp_path, str(tmp_path / "secret.key"), content="hunter2-NOT-HEX\n")
    rc, out, err = run("-c", path, "check-config")
    assert rc == 2, (rc, err)
    assert f"{path}:{line}: " in err and "expected 64 hex digits" in err, err
    assert "hunter2" not in err + out


def test_secret_key_file_readable_by_others_is_a_warning(tmp_path):
    secret = str(tmp_path / "secret.key")
    path, line = secret_conf(tmp_path, secret, mode=0o644, content="cd" * 32)
    rc, out, err = run("-c", path, "check-config")
    assert rc == 0, (rc, err)
    assert f"{path}:{line}: warning: '{secret}' can be read by other users (mode 0644): " \
           f"chmod 600 {secret}" in err, err
    assert err.strip().endswith(f"{path}: ok (with warnings)"), err
