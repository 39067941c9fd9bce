"""Differential test of Posthorn's Mustache renderer (src/tmpl/) against
mustache.js, the reference the API promises to match byte for byte.

The corpus is tests/tmpl/corpus.json (hand-written, one case per spec
topic and per mustache.js rule) plus the adversarial cases built below
(huge loops, deep nesting, big templates and data). Both sides render
every case in HTML and TEXT mode: build/tmpl-render (tests/tmpl/render.c,
built by `make e2e`, with the sanitizers in the second pass of `make
test`) and node tests/tmpl/render.js with the mustache.js that
tests/tmpl/package-lock.json pins. A seeded generator adds random
templates (every tag type, delimiters, whitespace, unicode, odd names)
over random data, which must come out the same from both. A case says
what must hold:
  - by default: the same bytes from both, or both refuse the template
    (Posthorn with a syntax error); optional "error_at" [line, column]
    and "warnings" (Posthorn's, HTML mode) are checked too;
  - "posthorn_error": Posthorn stops with that bound's error, whatever
    mustache.js does ("js": "skip" where mustache.js would take minutes);
  - "divergence": mustache.js throws where Posthorn renders "posthorn"
    (docs/templates.md lists these).
"""
import base64
import json
import os
import random
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TMPL_DIR = os.path.normpath(os.path.join(HERE, "..", "tmpl"))
CORPUS = os.path.join(TMPL_DIR, "corpus.json")
RUN_TIMEOUT = 600
MODES = ("html", "text")


def nest(depth, name="a", body="x"):
    return "{{#%s}}" % name * depth + body + "{{/%s}}" % name * depth


def deep_object(depth):
    d = "bottom"
    for _ in range(depth):
        d = {"a": d}
    return d


def adversarial_cases():
    thousand = list(range(1000))
    return [
        # 1,000 x 1,000 x 1,000 iterations: the output bound stops it (4 MiB)
        {"name": "adv/loop-1000^3-output", "template": nest(3, body="x"),
         "data": {"a": thousand}, "posthorn_error": "output_size", "js": "skip"},
        # the same with nothing to write: the step bound stops it
        {"name": "adv/loop-1000^3-steps", "template": nest(3, body=""),
         "data": {"a": thousand}, "posthorn_error": "steps", "js": "skip"},
        {"name": "adv/loop-1000^3-steps-comment", "template": nest(3, body="{{! c }}"),
         "data": {"a": thousand}, "posthorn_error": "steps", "js": "skip"},
        # 2^22 leaves through 22 nested loops over two elements
        {"name": "adv/binary-blowup", "template": nest(22, body=""),
         "data": {"a": [1, 2]}, "posthorn_error": "steps", "js": "skip"},
        # within the bounds: one million bytes, the same from both
        {"name": "adv/loop-1000^2", "template": nest(2, body="{{.}}"),
         "data": {"a": thousand[:300]}},
        {"name": "adv/loop-1000-records",
         "template": "{{#r}}<tr><td>{{name}}</td><td>{{{html}}}</td><td>{{n}}</td></tr>\n{{/r}}",
         "data": {"r": [{"name": "<n%d>" % i, "html": "<b>%d</b>" % i, "n": i / 7}
                        for i in range(1000)]}},
        # nesting: the bound (100) is fine, one more is a depth error
        {"name": "adv/nesting-100", "template": nest(100), "data": {"a": True}},
        {"name": "adv/nesting-101", "template": nest(101), "data": {"a": True},
         "posthorn_error": "depth"},
        {"name": "adv/nesting-5000", "template": nest(5000), "data": {"a": True},
         "posthorn_error": "depth"},
        {"name": "adv/unclosed-deep", "template": "{{#a}}" * 2000, "data": {},
         "posthorn_error": "depth"},
        {"name": "adv/unclosed-99", "template": "{{#a}}" * 99, "data": {},
         "posthorn_error": "syntax"},
        # size: 1 MiB of template is the bound
        {"name": "adv/template-900k", "template": ("{{a}} text & more\n" * 50000),
         "data": {"a": "<v>"}},
        {"name": "adv/template-too-big", "template": "x" * (1024 * 1024 + 1), "data": {},
         "posthorn_error": "template_size"},
        {"name": "adv/many-tags", "template": "{{a}}{{{b}}}{{#c}}{{d}}{{/c}}" * 5000,
         "data": {"a": 1, "b": "<b>", "c": [{"d": "x"}, {"d": "y"}]}},
        {"name": "adv/many-missing", "template": "".join("{{m%d}}" % i for i in range(100)),
         "data": {}},
        # bounds a caller sets lower than the defaults
        {"name": "adv/output-limit", "template": "{{#a}}0123456789{{/a}}",
         "data": {"a": thousand}, "limits": {"max_output": 9999},
         "posthorn_error": "output_size"},
        {"name": "adv/output-limit-exact", "template": "{{#a}}0123456789{{/a}}",
         "data": {"a": thousand}, "limits": {"max_output": 10000}},
        {"name": "adv/array-join-output", "template": "{{a}}",
         "data": {"a": list(range(100000))}, "limits": {"max_output": 100000},
         "posthorn_error": "output_size"},
        {"name": "adv/array-join-steps", "template": "{{a}}",
         "data": {"a": [[]] * 100000}, "limits": {"max_steps": 50000},
         "posthorn_error": "steps"},
        {"name": "adv/long-dotted-name", "template": "{{" + ".".join(["a"] * 20000) + "}}",
         "data": deep_object(800), "limits": {"max_steps": 500}, "posthorn_error": "steps"},
        {"name": "adv/long-dotted-name-fits", "template": "[{{" + ".".join(["a"] * 800) + "}}]",
         "data": deep_object(800)},
        {"name": "adv/steps-limit", "template": "{{#a}}{{b}}{{/a}}", "data": {"a": thousand},
         "limits": {"max_steps": 1000}, "posthorn_error": "steps"},
        # unclosed tags at the end of large inputs
        {"name": "adv/unclosed-tag-at-end", "template": "x" * 100000 + "{{a", "data": {},
         "error_at": [1, 100001]},
        {"name": "adv/many-open-delims", "template": "{{" * 50000, "data": {},
         "error_at": [1, 1]},
        {"name": "adv/many-braces", "template": "{" * 100001, "data": {}},
        {"name": "adv/delims-every-line",
         "template": "".join("{{=<%d %d>=}}<%da%d>\n<%d={{ }}=%d>\n" % (i, i, i, i, i, i)
                             for i in range(200)), "data": {"a": "v"}},
        # mustache.js throws a TypeError on a null context; Posthorn renders
        {"name": "adv/null-element-in-list", "template": "{{#l}}[{{x}}]{{/l}}",
         "data": {"l": [None, {"x": 1}]}, "divergence": "null context",
         "posthorn": "[][1]"},
        {"name": "adv/null-root", "template": "[{{x}}][{{.}}]", "data": None,
         "divergence": "null context", "posthorn": "[][]"},
    ]


class RandomCases:
    """Random templates and data, the same for a given seed. No null inside
    lists: mustache.js throws on a null context (a listed divergence)."""
    NAMES = ["a", "b", "c", "a.b", "b.c", ".", "list", "list.0", "list.length", "s",
             "s.length", "s.1", "n", "", "a.b.c", "x", "o.x", "length", "0", "a..b", ".a", "a."]
    TEXT = ["{{", "}}", "{{{", "<%", "%>", "a", " ", "  ", "\n", "\r\n", "\t", "\u00a0",
            "{", "}", "=", "\u00e9", "\U0001F600", "<&>", "\r", "/", "#"]
    DELIMS = [("{{", "}}"), ("<%", "%>"), ("[", "]"), ("|", "|"), ("<<", ">>")]

    def __init__(self, seed):
        self.rnd = random.Random(seed)

    def tag(self, d):
        r = self.rnd
        t = r.choice(["", "#", "^", "/", ">", "{", "&", "!", "="])
        name = r.choice(self.NAMES)
        sp1, sp2 = r.choice(["", "", " ", "\n"]), r.choice(["", "", " ", "  "])
        if t == "{":
            return d[0] + "{" + sp1 + name + sp2 + "}" + d[1]
        if t == "=":
            old = tuple(d)
            d[:] = r.choice(self.DELIMS)
            return old[0] + "=" + sp1 + d[0] + " " + d[1] + sp2 + "=" + old[1]
        return d[0] + t + sp1 + name + sp2 + d[1]

    def template(self):
        r, d, parts, stack = self.rnd, ["{{", "}}"], [], []
        for _ in range(r.randint(0, 25)):
            x = r.random()
            if x < 0.4:
                parts.append(r.choice(self.TEXT))
            elif x < 0.55 and len(stack) < 5:
                stack.append(r.choice(self.NAMES))
                parts.append(d[0] + r.choice("#^") + stack[-1] + d[1])
            elif x < 0.7 and stack:
                parts.append(d[0] + "/" + (stack.pop() if r.random() > 0.03 else "zz") + d[1])
            else:
                parts.append(self.tag(d))
        while stack and r.random() < 0.9:
            parts.append(d[0] + "/" + stack.pop() + d[1])
        return "".join(parts)

    def value(self, depth=0, in_list=False):
        r = self.rnd
        if depth > 2 or r.random() < 0.4:
            v = r.choice([None, True, False, 0, 1, -1.5, 0.0, "", "s", "<&>", "0", 1e21, 3.14,
                          "\u00e9\U0001F600"])
            return "null" if v is None and in_list else v
        if r.random() < 0.5:
            return [self.value(depth + 1, True) for _ in range(r.randint(0, 3))]
        keys = r.sample(["a", "b", "c", "list", "s", "n", "x", "o", ""], r.randint(0, 4))
        return {k: self.value(depth + 1) for k in keys}

    def cases(self, n):
        keys = ["a", "b", "c", "list", "s", "n", "x", "o"]
        return [{"name": "random/%d" % i, "template": self.template(),
                 "data": {k: self.value() for k in self.rnd.sample(keys, self.rnd.randint(0, 6))}}
                for i in range(n)]


def load_cases():
    with open(CORPUS, encoding="utf-8") as f:
        cases = json.load(f)
    cases += adversarial_cases()
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


CASES = load_cases()


def driver():
    b = os.environ.get("TMPL_RENDER") or os.path.join(HERE, "..", "..", "build", "tmpl-render")
    b = os.path.abspath(b)
    assert os.access(b, os.X_OK), f"{b} is not built: run make e2e"
    return b


def node():
    n = shutil.which("node") or shutil.which("nodejs")
    assert n, "node is not installed: scripts/deps.sh installs nodejs"
    js = os.path.join(TMPL_DIR, "node_modules", "mustache", "mustache.js")
    assert os.path.exists(js), "mustache.js is not installed: make e2e runs npm ci"
    return n


def run_lines(cmd):
    p = subprocess.run(cmd, capture_output=True, timeout=RUN_TIMEOUT, check=False)
    assert p.returncode == 0, f"{cmd[0]} exited {p.returncode}: {p.stderr.decode()[-3000:]}"
    for m in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert m not in p.stderr.decode(errors="replace"), p.stderr.decode()[-6000:]
    out = {}
    for line in p.stdout.decode().splitlines():
        r = json.loads(line)
        out[(r["name"], r["mode"])] = r
    return out


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tmpl") / "corpus.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(CASES, f, ensure_ascii=False)
    posthorn = run_lines([driver(), path])
    js = run_lines([node(), os.path.join(TMPL_DIR, "render.js"), path])
    return posthorn, js


def out_bytes(r):
    return base64.b64decode(r["out"])


def check_same(case, p, j):
    if j["ok"]:
        assert p["ok"], f"Posthorn refused what mustache.js rendered: {p}"
        assert out_bytes(p) == out_bytes(j), \
            f"\nposthorn:    {out_bytes(p)!r}\nmustache.js: {out_bytes(j)!r}"
    else:
        assert not p["ok"], \
            f"mustache.js refused ({j['message']}) what Posthorn rendered: {out_bytes(p)!r}"
        assert p["status"] == "syntax", p


def check_case(case, mode, p, j):
    if "posthorn_error" in case:
        assert not p["ok"] and p["status"] == case["posthorn_error"], p
    elif "divergence" in case:
        assert not j["ok"], f"mustache.js no longer throws here: {out_bytes(j)!r}"
        assert p["ok"] and out_bytes(p) == case["posthorn"].encode(), p
    else:
        check_same(case, p, j)
    if "error_at" in case:
        assert not p["ok"] and [p["line"], p["column"]] == case["error_at"], p
    if "warnings" in case and mode == "html":
        assert p["warnings"] == case["warnings"], p


def test_corpus_is_large_enough():
    assert len(CASES) >= 150


def test_random_templates_match_mustache_js(tmp_path):
    cases = RandomCases(20261101).cases(1500)
    path = str(tmp_path / "random.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False)
    posthorn = run_lines([driver(), path])
    js = run_lines([node(), os.path.join(TMPL_DIR, "render.js"), path])
    bad, rendered = [], 0
    for c in cases:
        for mode in MODES:
            p, j = posthorn[(c["name"], mode)], js[(c["name"], mode)]
            try:
                check_same(c, p, j)
            except AssertionError as e:
                bad.append(f"{c!r} {mode}: {e}")
            rendered += p["ok"]
    assert not bad, "\n".join(bad[:5])
    assert rendered > len(cases) // 3  # not only syntax errors


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_tmpl_matches_mustache_js(results, case):
    posthorn, js = results
    for mode in MODES:
        p = posthorn[(case["name"], mode)]
        j = js.get((case["name"], mode))
        if case.get("js") == "skip":
            assert j is None
        else:
            assert j is not None, "mustache.js gave no answer"
        check_case(case, mode, p, j)
