#!/usr/bin/python3
"""Code shape of src/: file lengths and function lengths.

A function is a body whose '{' and '}' stand alone at column 0 (the
project's clang-format style); its length counts the lines between them.
With --check, exits 1 when a file in src/ is over 1,000 lines (the config
table src/conf/conf.c excepted) or a function is over 60 lines.
"""
import os, re, statistics, sys

FILE_MAX, FUNC_MAX = 1000, 60
EXEMPT_FILES = {"src/conf/conf.c"}

def functions(path):
    """(name, body lines, line of '{') for each function of a C file."""
    out, start, head = [], None, []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if start is None and line.startswith("{"):
                m = re.findall(r"(\w+)\s*\(", " ".join(head[-4:]))
                start, name = n, (m[0] if m else "?")
            elif start is not None and line.startswith("}"):
                out.append((name, n - start - 1, start))
                start, head = None, []
            elif start is None:
                head = [] if not line.strip() or line.startswith(("#", "/*", " *")) else head + [line]
    return out

def main():
    check = "--check" in sys.argv
    files, funcs, bad = [], [], []
    for root, _, names in os.walk("src"):
        for nm in sorted(names):
            if not nm.endswith((".c", ".h")):
                continue
            p = os.path.join(root, nm)
            with open(p, encoding="utf-8", errors="replace") as f:
                n = sum(1 for _ in f)
            files.append((n, p))
            if n > FILE_MAX and p not in EXEMPT_FILES:
                bad.append(f"{p}: {n} lines (at most {FILE_MAX})")
            if nm.endswith(".c"):
                for name, length, line in functions(p):
                    funcs.append(length)
                    if length > FUNC_MAX:
                        bad.append(f"{p}:{line}: {name}() is {length} lines (at most {FUNC_MAX})")
    funcs.sort()
    q = lambda x: funcs[min(len(funcs) - 1, int(len(funcs) * x))]
    print(f"src: {len(files)} files, {sum(n for n, _ in files)} lines; largest: "
          + ", ".join(f"{p} {n}" for n, p in sorted(files)[-3:]))
    print(f"functions: {len(funcs)}, median {statistics.median(funcs):.0f} lines, "
          f"p90 {q(0.9)}, p99 {q(0.99)}, longest {funcs[-1]}")
    for b in bad:
        print(b, file=sys.stderr)
    return 1 if check and bad else 0

sys.exit(main())
