#!/usr/bin/env python3
"""Import circles between the modules of a Rust crate.

Usage: scripts/import-cycles.py CRATE_SRC_DIR [--edges]

Each source file is a module (`plan.rs` and `plan/mod.rs` are `plan`, `plan/iam.rs` is
`plan::iam`). An edge A -> B is a `crate::`, `super::` or `self::` path in A (in a `use` tree
or in code) that names an item of B. Test code (`#[cfg(test)] mod tests { .. }` and files
declared as `#[cfg(test)] mod x;`) is left out. Prints the strongly connected components
(circles) of the file-level graph and of the top-level graph (modules collapsed to their
first segment); exits 1 when there is one.
"""

import os
import re
import sys


def strip_comments_and_strings(text):
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            out.append('""')
            i = n if j < 0 else j + len(end)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or text.startswith("'\\u{", i):
            j = text.find("'", i + 2)
            out.append("' '")
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_blocks(text):
    """Removes `#[cfg(test)] mod x { ... }` blocks; returns (text, names of `#[cfg(test)] mod x;`)."""
    test_files = set()
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*([;{])", text)
        if not m:
            return text, test_files
        if m.group(2) == ";":
            test_files.add(m.group(1))
            text = text[: m.start()] + text[m.end():]
            continue
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        text = text[: m.start()] + text[i:]


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    depth = 0
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                prefix, inner = tree[:i], tree[i + 1: tree.rfind("}")]
                parts, d, start = [], 0, 0
                for j, c in enumerate(inner):
                    d += {"{": 1, "}": -1}.get(c, 0)
                    if c == "," and d == 0:
                        parts.append(inner[start:j])
                        start = j + 1
                parts.append(inner[start:])
                result = []
                for p in parts:
                    if p:
                        result += [prefix + q for q in expand_use_tree(p)]
                return result
            depth += 1
    return [re.sub(r"as\w+$", "", tree) if "as" in tree else tree]


def main():
    src = sys.argv[1]
    show_edges = "--edges" in sys.argv
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, src)[:-3].split(os.sep)
                if rel == ["main"]:
                    continue
                if rel[-1] == "mod":
                    rel = rel[:-1]
                if rel == ["lib"]:
                    rel = []
                files[tuple(rel)] = path
    modules = set(files)
    texts, test_modules = {}, set()
    for mod, path in files.items():
        text, tests = drop_test_blocks(strip_comments_and_strings(open(path).read()))
        texts[mod] = text
        test_modules |= {mod + (t,) for t in tests}
    # Files under a test module are test code too.
    live = {m for m in modules if not any(m[: len(t)] == t for t in test_modules)}

    def resolve(mod, path):
        segs = path.split("::")
        if segs[0] == "crate":
            base = ()
        elif segs[0] == "self":
            base = mod
        else:
            base = mod
            while segs and segs[0] == "super":
                base, segs = base[:-1], segs[1:]
            segs = ["super"] + segs
        segs = segs[1:]
        target = base
        for s in segs:
            if target + (s,) in modules:
                target = target + (s,)
            else:
                break
        return target

    edges = {m: set() for m in live}
    path_re = re.compile(r"\b(?:crate|self|super)(?:::(?:super|\w+))+")
    for mod in live:
        text = texts[mod]
        paths = []
        children = {m[-1] for m in modules if len(m) == len(mod) + 1 and m[: len(mod)] == mod}
        for m in re.finditer(r"\buse\s+([^;]+);", text):
            for p in expand_use_tree(m.group(1)):
                if re.match(r"(crate|self|super)::", p):
                    paths.append(p)
                elif p.split("::")[0] in children:
                    paths.append("self::" + p)
        text_wo_use = re.sub(r"\buse\s+[^;]+;", "", text)
        paths += [m.group(0) for m in path_re.finditer(text_wo_use)]
        # Paths relative to this module: `child::item` (not after `::`, so not `a::child::x`).
        for m in re.finditer(r"(?<![:\w])(\w+)::", text_wo_use):
            if m.group(1) in children:
                paths.append("self::" + m.group(1))
        for p in paths:
            target = resolve(mod, p)
            if target != mod and target in live and target != ():
                edges[mod].add(target)

    def name(m):
        return "::".join(m) or "crate"

    def sccs(graph):
        index, low, stack, on, out = {}, {}, [], set(), []
        counter = [0]

        def visit(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in sorted(graph.get(v, ())):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

        sys.setrecursionlimit(10000)
        for v in sorted(graph):
            if v not in index:
                visit(v)
        return out

    top = {}
    for a, bs in edges.items():
        if not a:
            continue
        for b in bs:
            if b and a[0] != b[0]:
                top.setdefault(a[:1], set()).add(b[:1])
    if show_edges:
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f"{name(a)} -> {name(b)}")
    found = 0
    for label, graph in (("file-level", edges), ("top-level", top)):
        comps = sccs(graph)
        found += len(comps)
        print(f"{label}: {len(comps)} circle(s)")
        for comp in comps:
            members = set(comp)
            inner = sorted(
                f"{name(a)} -> {name(b)}" for a in comp for b in graph.get(a, ()) if b in members
            )
            print("  " + " <-> ".join(name(m) for m in comp) + ":  " + ", ".join(inner))
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
