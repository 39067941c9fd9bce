"""make install / make uninstall (docs/install.md): the tree under DESTDIR,
the systemd unit (checked by systemd-analyze verify when it can run here),
the manual pages (man -l), and, as root, a real install in a private mount
namespace where /etc, /usr and /var are overlays, so that the machine's own
files are never touched."""
import os
import re
import shutil
import stat
import subprocess

import pytest

from conftest import posthorn_bin, sanitizer_env, assert_no_sanitizer_report
from test_cli import LEAVES

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def make(*args, check=True):
    env = sanitizer_env()
    for k in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "POSTHORN_CONFIG"):
        env.pop(k, None)
    # the binary under test, already built: make must not rebuild it
    p = subprocess.run(["make", "-C", ROOT, f"BUILD={os.path.dirname(posthorn_bin())}", *args],
                       capture_output=True, text=True, timeout=300, env=env)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("destdir"))
    make("install", f"DESTDIR={d}")
    return d


def unit_of(tree, prefix="/usr/local"):
    with open(f"{tree}{prefix}/lib/systemd/system/posthorn.service") as f:
        return f.read()


def test_tree(tree):
    files = sorted(os.path.relpath(os.path.join(r, f), tree)
                   for r, _, fs in os.walk(tree) for f in fs)
    assert files == ["etc/posthorn/posthorn.conf", "usr/local/lib/systemd/system/posthorn.service",
                     "usr/local/sbin/posthorn", "usr/local/share/man/man5/posthorn.conf.5",
                     "usr/local/share/man/man8/posthorn.8"], files
    assert mode(f"{tree}/usr/local/sbin/posthorn") == 0o755
    assert mode(f"{tree}/etc/posthorn/posthorn.conf") == 0o640  # may hold smarthost_auth
    assert mode(f"{tree}/usr/local/lib/systemd/system/posthorn.service") == 0o644
    p = subprocess.run([f"{tree}/usr/local/sbin/posthorn", "version"], capture_output=True,
                       text=True, env=sanitizer_env())
    assert p.returncode == 0 and p.stdout.startswith("posthorn "), p


def test_unit(tree):
    unit = unit_of(tree)
    keys = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            keys.setdefault(k, []).append(v)
    assert keys["ExecStart"] == ["/usr/local/sbin/posthorn -c /etc/posthorn/posthorn.conf serve"]
    assert keys["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert keys["User"] == ["posthorn"]
    assert keys["ProtectSystem"] == ["strict"]
    assert keys["ReadWritePaths"] == ["/var/lib/posthorn"]
    assert keys["StateDirectory"] == ["posthorn"]
    assert keys["NoNewPrivileges"] == ["yes"]
    assert keys["PrivateTmp"] == ["yes"]
    assert keys["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert keys["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert "@" not in unit.replace("$MAINPID", ""), "a placeholder was left"


def test_systemd_analyze_verify(tree, tmp_path):
    sa = shutil.which("systemd-analyze")
    if not sa:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # The unit names /usr/local/sbin/posthorn, which lives under DESTDIR here:
    # verify a copy that points there, with the pages under DESTDIR on MANPATH
    # so that its Documentation= is checked too.
    unit = tmp_path / "posthorn.service"
    unit.write_text(unit_of(tree).replace("ExecStart=/usr/local/sbin/",
                                          f"ExecStart={tree}/usr/local/sbin/"))
    env = dict(os.environ, MANPATH=f"{tree}/usr/local/share/man", SYSTEMD_LOG_COLOR="0")
    p = subprocess.run([sa, "verify", str(unit)], capture_output=True, text=True, env=env,
                       timeout=120)
    out = p.stdout + p.stderr
    if p.returncode != 0 and re.search(r"Failed to (initialize|create|connect)|"
                                       r"not found\.|No such file or directory.*proc", out):
        print(f"systemd-analyze verify cannot run here: {out}")
        pytest.skip(f"systemd-analyze verify cannot run here: {out.strip()[:300]}")
    assert p.returncode == 0 and out == "", out
    # and it does find mistakes
    unit.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivileges=perhaps"))
    p = subprocess.run([sa, "verify", str(unit)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert "posthorn.service:" in p.stderr and "perhaps" in p.stderr, p.stderr


def man(path):
    env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8")
    p = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "", f"troff warnings for {path}:\n{p.stderr}"
    return re.sub(r".\x08", "", p.stdout)  # no overstrike, if any


def test_man_posthorn_8_lists_every_command(tree):
    text = " ".join(man(f"{tree}/usr/local/share/man/man8/posthorn.8").split())
    assert text.startswith("POSTHORN(8)"), text[:80]
    for section in ("NAME", "SYNOPSIS", "COMMANDS", "SIGNALS", "EXIT STATUS", "FILES"):
        assert f" {section} " in text, section
    for leaf in LEAVES:
        assert re.search(rf"\b{re.escape(leaf)}\b", text), f"posthorn(8) lacks '{leaf}'"


def test_man_posthorn_conf_5_lists_every_key(tree):
    text = man(f"{tree}/usr/local/share/man/man5/posthorn.conf.5")
    assert text.startswith("POSTHORN.CONF(5)"), text[:80]
    with open(os.path.join(ROOT, "docs", "config.md")) as f:
        doc = f.read()
    sections = re.split(r"^## \[(\S+)\]$", doc, flags=re.M)[1:]
    assert sections
    for name, body in zip(sections[::2], sections[1::2]):
        assert f"[{name}]" in text, name
        for key in re.findall(r"^\| `([a-z_]+)` \|", body, re.M):
            assert re.search(rf"^ {{7}}{key}\b", text, re.M), f"{key} of [{name}] missing"


def test_prefix_and_uninstall(tmp_path):
    d = str(tmp_path)
    make("install", f"DESTDIR={d}", "PREFIX=/opt/ph")
    assert os.access(f"{d}/opt/ph/sbin/posthorn", os.X_OK)
    assert os.path.exists(f"{d}/opt/ph/share/man/man8/posthorn.8")
    assert "ExecStart=/opt/ph/sbin/posthorn " in unit_of(d, "/opt/ph")
    assert os.path.exists(f"{d}/etc/posthorn/posthorn.conf")  # /etc whatever the prefix
    # an edited configuration survives a second install and the uninstall
    conf = f"{d}/etc/posthorn/posthorn.conf"
    with open(conf, "a") as f:
        f.write("; edited by the operator\n")
    p = make("install", f"DESTDIR={d}", "PREFIX=/opt/ph")
    assert "kept" in p.stdout
    make("uninstall", f"DESTDIR={d}", "PREFIX=/opt/ph")
    left = sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)
    assert left == ["etc/posthorn/posthorn.conf"], left
    with open(conf) as f:
        assert f.read().endswith("; edited by the operator\n")


def test_installed_config_is_valid(tree, tmp_path):
    # as written, but without the posthorn user (this machine may not have it)
    text = open(f"{tree}/etc/posthorn/posthorn.conf").read()
    assert re.search(r"^user = posthorn\b", text, re.M)
    text = re.sub(r"^user = posthorn.*$", "user =", text, flags=re.M)
    text = text.replace("data_dir = /var/lib/posthorn", f"data_dir = {tmp_path}/data")
    conf = tmp_path / "posthorn.conf"
    conf.write_text(text)
    p = subprocess.run([posthorn_bin(), "-c", str(conf), "check-config"], capture_output=True,
                       text=True, env=sanitizer_env())
    assert_no_sanitizer_report(p.stderr, "check-config")
    assert p.returncode == 0, p.stderr


ROOT_INSTALL = """set -e
for d in etc usr var; do
  mount -t overlay overlay -o lowerdir=/$d,upperdir={t}/$d.up,workdir={t}/$d.work /$d
done
make -C {root} BUILD={build} install >{t}/install.out 2>&1
getent passwd posthorn
stat -c '%U:%G %a %n' /var/lib/posthorn /etc/posthorn/posthorn.conf
/usr/local/sbin/posthorn check-config 2>&1
/usr/local/sbin/posthorn queue list
stat -c '%U %n' /var/lib/posthorn/spool
make -C {root} BUILD={build} install >{t}/install2.out 2>&1
getent passwd posthorn | wc -l
"""


def test_install_as_root_creates_the_user(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (a private mount namespace with overlays)")
    t = str(tmp_path)
    for d in ("etc", "usr", "var"):
        os.mkdir(f"{t}/{d}.up")
        os.mkdir(f"{t}/{d}.work")
    script = ROOT_INSTALL.format(t=t, root=ROOT, build=os.path.dirname(posthorn_bin()))
    env = sanitizer_env()
    for k in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "POSTHORN_CONFIG"):
        env.pop(k, None)
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=300, env=env)
    if p.returncode != 0 and "mount" in p.stderr and not os.path.exists(f"{t}/install.out"):
        pytest.skip(f"no private mount namespace with overlays here: {p.stderr.strip()}")
    assert p.returncode == 0, p.stdout + p.stderr + open(f"{t}/install.out").read()
    out = p.stdout.splitlines()
    assert re.match(r"^posthorn:x:\d+:\d+:[^:]*:/var/lib/posthorn:/usr/sbin/nologin$", out[0])
    assert out[1] == "posthorn:posthorn 750 /var/lib/posthorn", out
    assert out[2] == "root:posthorn 640 /etc/posthorn/posthorn.conf", out
    assert out[3] == "/etc/posthorn/posthorn.conf: ok", out  # the file as installed
    assert out[4].startswith("-- 0 messages"), out
    assert out[5] == "posthorn /var/lib/posthorn/spool", out  # root's CLI became posthorn
    assert out[6] == "1", out  # a second install makes no second user
    # nothing of it reached the machine
    assert not os.path.exists("/usr/local/sbin/posthorn") or \
        os.path.getmtime("/usr/local/sbin/posthorn") < os.path.getmtime(f"{t}/install.out")
