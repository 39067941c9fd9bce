"""README.md: its links stay inside the repository, and its quick start runs
exactly as written (every ```sh and ```console block between the quickstart
markers, in order, from the top of the repository) and prints what the
README shows. In the output shown, queue IDs, times and delays stand for
any such value."""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
README = os.path.join(ROOT, "README.md")


def read(path):
    with open(path) as f:
        return f.read()


@pytest.mark.parametrize("doc", ["README.md", "docs/cli.md", "docs/install.md",
                                 "docs/logging.md"])
def test_links_stay_inside_the_repository(doc):
    text = read(os.path.join(ROOT, doc))
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    for link in links:
        assert not re.match(r"^[a-z]+:", link), f"{doc}: link out of the repository: {link}"
        target = os.path.normpath(os.path.join(ROOT, os.path.dirname(doc), link.split("#")[0]))
        assert target.startswith(ROOT + os.sep), f"{doc}: {link} leaves the repository"
        assert os.path.exists(target), f"{doc}: {link} does not exist"
    assert "../shared" not in text


def quickstart():
    """[(kind, text)] of the blocks between the markers."""
    part = read(README).split("<!-- quickstart", 1)[1].split("<!-- /quickstart -->", 1)[0]
    blocks = re.findall(r"^```(sh|console)\n(.*?)^```$", part, re.S | re.M)
    assert blocks and any(k == "console" for k, _ in blocks)
    return blocks


def console_steps(text):
    """[(command, [expected output lines])] of a ```console block."""
    steps = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before any command: {line!r}"
            steps[-1][1].append(line)
    return steps


def script(out):
    """The quick start as one bash script; console commands' output to out/N."""
    lines = ["set -e",
             # the harness's own: never leave the demo running, note where it ran
             "trap 'kill $(jobs -p) 2>/dev/null; wait; echo \"$PWD\" > " + out + "/dir' EXIT"]
    expected = []
    for kind, text in quickstart():
        if kind == "sh":
            lines.append(text)
            continue
        for cmd, want in console_steps(text):
            if cmd.rstrip().endswith("&"):
                assert not want, f"a background command shows output: {cmd}"
                lines.append(cmd)
                continue
            n = len(expected)
            lines.append(f"{{ {cmd}\n}} > {out}/{n} 2>&1 || echo \"[exit $?]\" >> {out}/{n}")
            expected.append((cmd, want))
    return "\n".join(lines) + "\n", expected


VARYING = [(re.compile(r"\b[0-9A-Z]{16}\b"), "<ID>"),
           (re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"), "<TIME>"),
           (re.compile(r"\bdelay=\d+(?:\.\d+)?"), "delay=<N>")]


def normal(lines):
    out = []
    for line in lines:
        for rx, to in VARYING:
            line = rx.sub(to, line)
        out.append(line.rstrip())
    return out


def isolated():
    """A command prefix giving the demo its own loopback (its ports are fixed
    and other test runs may share this machine), when unshare can."""
    up = ("/usr/bin/python3 -c 'import socket, fcntl, struct; "
          "fcntl.ioctl(socket.socket(), 0x8914, struct.pack(\"16sH14x\", b\"lo\", 1 | 8 | 64))'")
    probe = subprocess.run(["unshare", "--net", "sh", "-c", up], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"no network namespace here ({probe.stderr.strip()}): the demo's ports are shared")
        return []
    return ["unshare", "--net", "sh", "-c", up + ' && exec "$0" "$@"']


def test_quickstart_runs_as_written(tmp_path):
    for tool in ("swaks", "make"):
        assert shutil.which(tool), f"{tool} is missing: scripts/deps.sh installs it"
    out = str(tmp_path / "out")
    os.mkdir(out)
    text, expected = script(out)
    (tmp_path / "quickstart.sh").write_text(text)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "POSTHORN_CONFIG")
           and not k.startswith(("ASAN_", "UBSAN_"))}
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    p = subprocess.run(isolated() + ["bash", str(tmp_path / "quickstart.sh")], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
    demo = read(f"{out}/dir").strip() if os.path.exists(f"{out}/dir") else ""
    try:
        assert p.returncode == 0, f"the quick start failed:\n{p.stdout}\n{p.stderr}"
        for n, (cmd, want) in enumerate(expected):
            got = read(f"{out}/{n}").splitlines()
            assert normal(got) == normal(want), (
                f"$ {cmd}\nREADME shows:\n" + "\n".join(want) + "\nit printed:\n" +
                "\n".join(got) + (f"\nserver log:\n{read(demo + '/posthorn.log')}"
                                  if demo and os.path.exists(demo + "/posthorn.log") else ""))
    finally:
        if re.fullmatch(r"/tmp/tmp\.\w+", demo):  # the scratch directory of mktemp -d
            shutil.rmtree(demo, ignore_errors=True)
