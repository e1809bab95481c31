#!/usr/bin/env python3
"""Check the documentation's references to files.

1. Every relative link ([text](path), ![alt](path), [ref]: path) in every .md file of the
   working tree resolves to an existing file or folder (relative to the .md file).
2. Every repository path written out in the text (`docs/...`, also inside code spans and
   fences; {a,b} braces, * globs and the _S seed placeholder expanded) names at least one
   existing file or folder.
Run from anywhere inside the repository; exits 1 on any broken reference.
"""
import fnmatch, os, re, subprocess, sys
from urllib.parse import unquote

root = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip()
os.chdir(root)
tree = subprocess.check_output(["git", "ls-files", "-co", "--exclude-standard"], text=True).split()
tree = [f for f in tree if os.path.exists(f)]
dirs = {os.path.dirname(f) for f in tree}
for d in list(dirs):
    while d:
        d = os.path.dirname(d)
        dirs.add(d)
paths = set(tree) | dirs
mds = sorted(f for f in tree if f.endswith(".md"))

link = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
refdef = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
mention = re.compile(r"(?<![\w/.\-])docs/[A-Za-z0-9_./{},*+\-]*[A-Za-z0-9_/}*]")

def expand(s):
    m = re.search(r"\{([^{}]*)\}", s)
    if not m:
        return [s]
    return [x for alt in m.group(1).split(",") for x in expand(s[: m.start()] + alt + s[m.end():])]

def anchors(md):
    """GitHub's heading anchors of a markdown file."""
    text = re.sub(r"```.*?```", "", open(md, encoding="utf-8").read(), flags=re.S)
    seen, out = {}, set()
    for h in re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", h.lower().replace("`", "")).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out

broken = links = mentions = 0
for f in mds:
    text = open(f, encoding="utf-8").read()
    no_fences = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    found = [(m.group(1), m.start()) for r in (link, refdef) for m in r.finditer(no_fences)]
    for target, pos in found:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        path = unquote(target.split("#")[0])
        if not path:
            if target[1:] not in anchors(f):
                broken += 1
                print(f"BROKEN ANCHOR {f}: {target}")
            continue
        links += 1
        resolved = os.path.normpath(os.path.join(os.path.dirname(f), path))
        if resolved not in paths:
            broken += 1
            print(f"BROKEN LINK {f}:{no_fences[:pos].count(chr(10)) + 1}: {target}")
        elif "#" in target and resolved.endswith(".md") and target.split("#", 1)[1] not in anchors(resolved):
            broken += 1
            print(f"BROKEN ANCHOR {f}:{no_fences[:pos].count(chr(10)) + 1}: {target}")
    for m in mention.finditer(text):
        ref = m.group(0)
        while ref.endswith("**") or ref.endswith("."):
            ref = ref[:-2] if ref.endswith("**") else ref[:-1]
        mentions += 1
        for p in expand(ref.rstrip("/")):
            g = re.sub(r"_S(\.|_|$)", r"_*\1", p)
            ok = any(fnmatch.fnmatch(x, g) for x in paths) if "*" in g else g in paths
            if not ok:
                broken += 1
                print(f"BROKEN PATH {f}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)} ({p})")
print(f"{len(mds)} markdown files: {links} relative links, {mentions} docs/ paths in the text, {broken} broken")
sys.exit(1 if broken else 0)
