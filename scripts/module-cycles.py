#!/usr/bin/env python3
"""Report import cycles between sibling modules of every crate under crates/*/src.

The rule (issue 8): for two sibling modules A and B (children of the same parent), A must not use
B while B, or anything inside B, uses A, or anything inside A. A module using one of its own
ancestors' items (`super::X`, `crate::X` defined in lib.rs) is no edge, but an ancestor's `use` /
`pub use` of a sibling's item is followed, so `crate::Foo` after `pub use a::Foo` in lib.rs means
module `a`, and a cycle cannot hide behind a re-export.

How it reads a crate:
- Modules come from `mod name;` declarations, starting at src/lib.rs and src/main.rs (each its own
  tree), resolved to name.rs or name/mod.rs beside the declaring file. Inline `mod name { }` blocks
  are not modules of their own: what they reference counts for the file holding them.
- Test code is left out: `#[cfg(test)]` items (a `mod tests { }` block, a `mod tests;` file, a
  test-only `use` or fn) and files named tests.rs or *_tests.rs.
- Comments and string/char literals are blanked before scanning.
- References: `use` trees (crate::, super::, self::, or a child module's name), and `crate::`,
  `$crate::`, `super::`, `self::` paths in code.
- Each reference from module X to module Y is lifted to the two siblings under their lowest
  common ancestor; Tarjan's algorithm finds the strongly connected components among siblings.

Prints one summary line per crate (modules, edges, cycles) and, for each cycle, every edge inside
it with one example reference (file:line). Exits 1 if any crate has a cycle, 0 otherwise.
Usage: scripts/module-cycles.py [REPO_ROOT]   |   scripts/module-cycles.py --self-test
"""

import os
import re
import sys
import tempfile

TEST_FILE = re.compile(r"(^|_)tests\.rs$")


# ---------------------------------------------------------------- source cleaning


def strip_code(text):
    """Blank comments, string, byte-string, raw-string and char literals with spaces.

    Newlines are kept and every other character keeps its offset, so positions and line numbers
    in the result are those of the original text.
    """
    out = list(text)
    n = len(text)
    i = 0

    def blank(a, b):
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c in "rb" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'(?:br|r)(#*)"', text[i:])
            if m:  # a raw string: ends at the quote followed by as many hashes
                close = '"' + m.group(1)
                j = text.find(close, i + m.end())
                j = n if j < 0 else j + len(close)
                blank(i, j)
                i = j
            else:  # an identifier, or the b of b"..." / b'...' (the literal is next)
                i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            m = re.match(r"'(?:\\(?:u\{[0-9a-fA-F_]*\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'", text[i:])
            if m:
                blank(i, i + m.end())
                i += m.end()
            else:
                i += 1  # a lifetime or label
        else:
            i += 1
    return "".join(out)


def blank_span(chars, a, b):
    for k in range(a, b):
        if chars[k] != "\n":
            chars[k] = " "


def matching_brace(code, open_pos):
    """Offset just past the `}` matching the `{` at open_pos."""
    depth = 0
    for k in range(open_pos, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(code)


def item_end(code, start):
    """End of the item starting at `start`: through its `{ }` body or its `;`."""
    depth = 0
    for k in range(start, len(code)):
        ch = code[k]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch == ";":
            return k + 1
        elif depth == 0 and ch == "{":
            return matching_brace(code, k)
    return len(code)


CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*(?:test\s*|all\s*\(\s*test\b[^\]]*)\)\s*\]")
ATTR = re.compile(r"\s*#\s*\[")


def skip_attrs(code, pos):
    """Offset of the first non-attribute token at or after pos."""
    while True:
        m = ATTR.match(code, pos)
        if not m:
            return pos
        depth, k = 0, m.end() - 1
        while k < len(code):
            if code[k] == "[":
                depth += 1
            elif code[k] == "]":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        pos = k + 1


def drop_test_items(code):
    """Blank every `#[cfg(test)]` item; returns (code, names of test-only `mod x;` files)."""
    chars = list(code)
    test_mods = set()
    for m in CFG_TEST.finditer(code):
        if chars[m.start()] == " ":
            continue  # inside an item already blanked
        start = skip_attrs(code, m.end())
        decl = re.match(r"\s*(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+(\w+)\s*;", code[start:])
        if decl:
            test_mods.add(decl.group(1))
        blank_span(chars, m.start(), item_end(code, start))
    return "".join(chars), test_mods


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


# ---------------------------------------------------------------- crate model


class Module:
    def __init__(self, path, file, text):
        self.path = path  # tuple of names; () is the crate root
        self.file = file
        self.text = text  # original source
        code = strip_code(text)
        self.code, self.test_mods = drop_test_items(code)
        self.children = {}  # name -> file
        self.aliases = {}  # name -> (absolute segments or None for outside the crate, pos)
        self.globs = []  # absolute segments of `use x::*`
        self.pub_aliases = set()  # names a `pub use` re-exports (what a glob of this module sees)
        self.refs = []  # (segments as written, pos, inline module chain)
        self.inline = []  # (start, end, name) of inline `mod name { }` blocks


DECL = re.compile(r"(?<![\w$])(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+(\w+)\s*([;{])")


def load_tree(root_file):
    """All modules reachable from a crate root file by `mod` declarations."""
    modules = {}
    todo = [((), root_file, os.path.dirname(root_file))]
    while todo:
        path, file, child_dir = todo.pop()
        with open(file, encoding="utf-8") as f:
            mod = Module(path, file, f.read())
        modules[path] = mod
        for m in DECL.finditer(mod.code):
            name = m.group(1)
            if m.group(2) == "{":
                brace = m.end() - 1
                mod.inline.append((brace, matching_brace(mod.code, brace), name))
                continue
            if name in mod.test_mods or name == "tests" or name.endswith("_tests"):
                continue
            if any(a < m.start() < b for a, b, _ in mod.inline):
                continue  # a file module declared inside an inline module: not followed
            for cand in (os.path.join(child_dir, name + ".rs"),
                         os.path.join(child_dir, name, "mod.rs")):
                if os.path.isfile(cand) and not TEST_FILE.search(os.path.basename(cand)):
                    mod.children[name] = cand
                    todo.append((path + (name,), cand, os.path.join(child_dir, name)))
                    break
    return modules


# ---------------------------------------------------------------- use trees


TOKEN = re.compile(r"\s*(::|[{},*;]|[A-Za-z_][A-Za-z0-9_]*|\$crate|\S)")


def parse_use_tree(code, start):
    """Parse the use tree starting at `start`; returns (leaves, end).

    A leaf is (segments, alias, is_glob, pos). `self` inside braces names the prefix itself.
    """
    toks = []
    pos = start
    while True:
        m = TOKEN.match(code, pos)
        if not m:
            break
        toks.append((m.group(1), m.start(1)))
        pos = m.end()
        if m.group(1) == ";":
            break
    leaves = []
    idx = 0

    def tree(prefix):
        nonlocal idx
        segs = list(prefix)
        while idx < len(toks):
            tok, tpos = toks[idx]
            if tok == "::":
                idx += 1
                if not segs:
                    segs.append("::")
            elif tok == "{":
                idx += 1
                while idx < len(toks) and toks[idx][0] != "}":
                    tree(segs)
                    if idx < len(toks) and toks[idx][0] == ",":
                        idx += 1
                idx += 1
                return
            elif tok == "*":
                idx += 1
                leaves.append((segs, None, True, tpos))
                return
            elif re.match(r"\$?\w+$", tok):
                idx += 1
                if tok == "self" and segs and segs == list(prefix) and prefix:
                    name_pos = tpos
                    seg_list = list(segs)
                else:
                    segs.append(tok)
                    name_pos = tpos
                    seg_list = list(segs)
                if idx < len(toks) and toks[idx][0] == "::":
                    continue
                alias = None
                if idx + 1 < len(toks) and toks[idx][0] == "as":
                    alias = toks[idx + 1][0]
                    idx += 2
                leaves.append((seg_list, alias, False, name_pos))
                return
            else:
                return

    tree([])
    return leaves, pos


USE = re.compile(r"(?<![\w$])(?:pub(?:\s*\([^)]*\))?\s+)?use\s+(?=[A-Za-z_:{$])")
CODE_PATH = re.compile(r"(?<![\w:])(\$crate|crate|super|self)((?:\s*::\s*\w+)+)")


def scan(mod):
    """Collect a module's imports (aliases, globs) and its path references."""
    chars = list(mod.code)
    for m in USE.finditer(mod.code):
        if chars[m.start()] == " ":
            continue
        leaves, end = parse_use_tree(mod.code, m.end())
        is_pub = m.group(0).startswith("pub")
        for segs, alias, is_glob, pos in leaves:
            if not segs:
                continue
            mod.refs.append((segs, pos, inline_chain(mod, pos)))
            if is_glob:
                mod.globs.append((segs, pos))
            else:
                name = alias or segs[-1]
                if name != "_":
                    mod.aliases[name] = (segs, pos)
                    if is_pub:
                        mod.pub_aliases.add(name)
        blank_span(chars, m.start(), end)
    rest = "".join(chars)
    for m in CODE_PATH.finditer(rest):
        segs = [m.group(1)] + [s.strip() for s in m.group(2).split("::") if s.strip()]
        mod.refs.append((segs, m.start(), inline_chain(mod, m.start())))


def inline_chain(mod, pos):
    spans = sorted((a, name) for a, b, name in mod.inline if a < pos < b)
    return tuple(name for _, name in spans)


class Crate:
    def __init__(self, name, modules):
        self.name = name
        self.modules = modules
        for mod in modules.values():
            scan(mod)

    def absolute(self, here, segs):
        """Absolute segments of a path written in module `here` (a tuple that may include inline
        module names), or None when the path leaves the crate."""
        first = segs[0]
        if first in ("crate", "$crate"):
            return list(segs[1:])
        if first == "::":
            return None
        if first in ("super", "self"):
            base = list(here)
            k = 0
            while k < len(segs) and segs[k] in ("super", "self"):
                if segs[k] == "super":
                    if not base:
                        return None
                    base.pop()
                k += 1
            return base + list(segs[k:])
        file_mod = self.file_module(here)
        if first in self.modules[file_mod].children and len(here) == len(file_mod):
            return list(here) + list(segs)
        return None  # an extern crate, std, or a name brought in by another `use`

    def file_module(self, path):
        """Longest prefix of `path` that is a file module."""
        path = tuple(path)
        while path not in self.modules:
            path = path[:-1]
        return path

    def targets(self, abs_segs, depth=0, seen=None):
        """Modules a reference reaches: the module named in the path, then, where the next name
        is a `use` or `pub use` there, the modules that import leads to. `seen` keeps globs that
        import each other (a child's `use super::*` beside its parent's `pub use child::*`)
        from being followed round and round."""
        if abs_segs is None or depth > 16:
            return []
        if seen is None:
            seen = set()
        key = tuple(abs_segs)
        if key in seen:
            return []
        seen.add(key)
        path = ()
        k = 0
        while k < len(abs_segs) and path + (abs_segs[k],) in self.modules:
            path += (abs_segs[k],)
            k += 1
        found = [path]
        if k < len(abs_segs):
            mod = self.modules[path]
            name = abs_segs[k]
            if name in mod.aliases and name not in mod.children:
                segs, _ = mod.aliases[name]
                target = self.absolute(path, segs)
                if target is not None:
                    found += self.targets(target + list(abs_segs[k + 1:]), depth + 1, seen)
            else:
                for segs, _ in mod.globs:
                    src = self.absolute(path, segs)
                    if src is None:
                        continue
                    src_mod = self.file_module(src)
                    if src_mod == tuple(src) and defines(self.modules[src_mod], name):
                        found += self.targets(src + list(abs_segs[k:]), depth + 1, seen)
        return found

    def edges(self):
        """{(parent, a, b): (file, line, path as written)} for sibling edges a -> b."""
        out = {}
        for path in sorted(self.modules):
            mod = self.modules[path]
            for segs, pos, chain in sorted(mod.refs, key=lambda r: r[1]):
                here = mod.path + chain
                for target in self.targets(self.absolute(here, segs)):
                    pair = lift(mod.path, target)
                    if pair is None:
                        continue
                    parent, a, b = pair
                    key = (parent, a, b)
                    if key not in out:
                        out[key] = (mod.file, line_of(mod.text, pos), "::".join(segs))
        return out


ITEM = r"(?<![\w$])(?:fn|struct|enum|union|trait|type|const|static|mod|macro_rules\s*!)\s+{}\b"


def defines(mod, name):
    """Whether a glob import of `mod` brings `name`: an item of its own or a `pub use` (a
    private `use` is not re-exported)."""
    return name in mod.pub_aliases or re.search(ITEM.format(re.escape(name)), mod.code) is not None


def lift(src, dst):
    """The sibling pair (parent, a, b) that a reference from src to dst crosses, or None."""
    k = 0
    while k < len(src) and k < len(dst) and src[k] == dst[k]:
        k += 1
    if k == len(src) or k == len(dst):
        return None  # one is an ancestor of (or equal to) the other
    return src[:k], src[k], dst[k]


# ---------------------------------------------------------------- cycles


def tarjan(nodes, succ):
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return comps


def shortest_cycle(comp, succ):
    """A shortest cycle through the component's first node (breadth-first search)."""
    start = comp[0]
    members = set(comp)
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(succ.get(v, ())):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def mod_name(parent, name):
    return "::".join(("crate",) + tuple(parent) + (name,))


def analyse(crate, root_dir, out):
    """Print the crate's summary and cycles; returns the number of cycles."""
    edges = crate.edges()
    by_parent = {}
    for parent, a, b in edges:
        by_parent.setdefault(parent, {}).setdefault(a, set()).add(b)
    cycles = []
    for parent in sorted(by_parent):
        succ = by_parent[parent]
        nodes = set(succ) | {b for bs in succ.values() for b in bs}
        for comp in tarjan(nodes, succ):
            if len(comp) > 1:
                cycles.append((parent, comp, succ))
    out.append("%s: %d modules, %d edges, %d cycles"
               % (crate.name, len(crate.modules), len(edges), len(cycles)))
    for parent, comp, succ in cycles:
        ring = shortest_cycle(comp, succ)
        out.append("  cycle under %s: %s (%d modules entangled: %s)" % (
            "::".join(("crate",) + tuple(parent)), " -> ".join(ring), len(comp), ", ".join(comp)))
        for a in comp:
            for b in sorted(succ.get(a, ())):
                if b in comp:
                    file, line, written = edges[(parent, a, b)]
                    out.append("    %s -> %s  %s:%d  %s" % (
                        mod_name(parent, a), mod_name(parent, b),
                        os.path.relpath(file, root_dir), line, written))
    return len(cycles)


def check_repo(root_dir):
    out = []
    total = 0
    crates_dir = os.path.join(root_dir, "crates")
    for name in sorted(os.listdir(crates_dir)):
        src = os.path.join(crates_dir, name, "src")
        for root in ("lib.rs", "main.rs"):
            root_file = os.path.join(src, root)
            if not os.path.isfile(root_file):
                continue
            label = name if root == "lib.rs" else name + " (" + root + ")"
            crate = Crate(label, load_tree(root_file))
            total += analyse(crate, root_dir, out)
    out.append("module cycles: %d" % total)
    return total, out


# ---------------------------------------------------------------- self-test


def self_test():
    cases = {
        # a uses b directly; b reaches a through the crate root's re-export.
        "reexport_cycle": {
            "lib.rs": "mod a;\nmod b;\npub use a::{Alpha, Other as Renamed};\n",
            "a.rs": "use crate::b::Beta;\npub struct Alpha;\npub struct Other;\n",
            "b.rs": "pub struct Beta;\nfn f() -> crate::Renamed { crate::Renamed }\n",
        },
        # the same through `super::`, a glob re-export and a rename, in a folder module.
        "nested_cycle": {
            "lib.rs": "pub mod net;\n",
            "net/mod.rs": "mod conn;\nmod session;\npub use session::*;\n",
            "net/conn.rs": "pub struct Conn;\nfn f(_: super::Session) {}\n",
            "net/session.rs": "pub struct Session;\nuse super::conn::Conn as C;\n",
        },
        # one-way dependencies, ancestor use, back references only in test code, comments and
        # strings.
        "no_cycle": {
            "lib.rs": "mod a;\nmod b;\npub use a::Alpha;\npub struct Root;\n",
            "a.rs": "use crate::b::Beta;\nuse crate::Root;\npub struct Alpha;\n",
            "b.rs": ("pub struct Beta;\nuse super::Root;\n// crate::a::Alpha\n"
                     "/* crate::Alpha /* nested */ crate::Alpha */\n"
                     "const S: &str = \"crate::Alpha\";\nconst R: &str = r#\"crate::Alpha\"#;\n"
                     "const C: char = '\\'';\nfn f<'a>(x: &'a u8) -> &'a u8 { x }\n"
                     "#[cfg(test)]\nmod tests;\nmod more_tests;\n"
                     "#[cfg(test)]\n#[allow(unused)]\nmod inline {\n    use crate::Alpha;\n}\n"),
            "b/tests.rs": "use crate::Alpha;\n",
            "b/more_tests.rs": "use crate::Alpha;\n",
        },
    }
    expect = {"reexport_cycle": 1, "nested_cycle": 1, "no_cycle": 0}
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case, files in cases.items():
            for rel, body in files.items():
                path = os.path.join(tmp, case, "crates", case, "src", rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(body)
            got, out = check_repo(os.path.join(tmp, case))
            verdict = "ok" if got == expect[case] else "FAIL"
            failed += verdict != "ok"
            print("self-test %s: %d cycles, expected %d: %s" % (case, got, expect[case], verdict))
            if verdict != "ok":
                print("\n".join("  | " + line for line in out))
    return 1 if failed else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    root_dir = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    root_dir = os.path.abspath(root_dir)
    total, out = check_repo(root_dir)
    print("\n".join(out))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
