#!/usr/bin/env python3
"""No Docker engine runs in CI, so this proves the Dockerfile's build stage another way.

It copies exactly the paths that the COPY lines of the build stages name (what the build
context holds after .dockerignore) into an empty directory and runs
`cargo metadata --locked --offline` there (for this platform, after `cargo fetch`): the
manifest, the lock file, every workspace
member and path dependency must be present for that to pass. It also checks that every
workspace package's manifest and every target's source file of the repository is covered
by those COPY lines, and that the runtime stage's COPY sources exist in the context.

    python3 scripts/check-docker-context.py        # from anywhere; exit 1 on a problem
"""
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def copy_lines(dockerfile):
    """(stage index, sources) of every COPY that reads the build context."""
    out, stage = [], -1
    text = dockerfile.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        if not words:
            continue
        op = words[0].upper()
        if op == "FROM":
            stage += 1
        elif op == "COPY":
            args = [w for w in words[1:] if not w.startswith("--")]
            if any(w.startswith("--from") for w in words[1:]):
                continue
            out.append((stage, args[:-1]))
    return out


def ignore_rules(path):
    """.dockerignore as (negated, regex) in order; the last matching rule wins."""
    rules = []
    if not path.exists():
        return rules
    for raw in path.read_text().splitlines():
        pat = raw.strip()
        if not pat or pat.startswith("#"):
            continue
        neg = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        rx = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**/", i):
                rx += "(?:.*/)?"
                i += 3
            elif pat.startswith("**", i):
                rx += ".*"
                i += 2
            elif pat[i] == "*":
                rx += "[^/]*"
                i += 1
            elif pat[i] == "?":
                rx += "[^/]"
                i += 1
            else:
                rx += re.escape(pat[i])
                i += 1
        rules.append((neg, re.compile(rx + "$")))
    return rules


def in_context(rel, rules):
    """Whether file `rel` (posix, relative to the repo) is sent in the build context: a
    rule that matches the file or one of its parent directories decides."""
    parts = rel.split("/")
    keep = True
    for neg, rx in rules:
        if any(rx.match("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            keep = neg
    return keep


def main():
    problems = []
    rules = ignore_rules(REPO / ".dockerignore")
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                             check=True, capture_output=True, text=True).stdout.split()
    context = [f for f in tracked if in_context(f, rules) and (REPO / f).is_file()]
    lines = copy_lines(REPO / "Dockerfile")
    last_stage = max(s for s, _ in lines)
    build_sources = [src for s, srcs in lines if s < last_stage for src in srcs]
    for s, srcs in lines:
        for src in srcs:
            src = src.strip("./") or "."
            if not any(f == src or f.startswith(src + "/") for f in context):
                problems.append(f"COPY {src}: nothing of it is in the build context (.dockerignore?)")
    covered = lambda f: any(f == s.strip("./") or f.startswith(s.strip("./") + "/") for s in build_sources)
    with tempfile.TemporaryDirectory(prefix="medallion-docker-") as tmp:
        for f in filter(covered, context):
            dest = Path(tmp) / f
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest)
        # Only the packages of this platform: the others are never downloaded here.
        host = re.search(r"^host: (\S+)$", subprocess.run(["rustc", "-vV"], check=True,
                         capture_output=True, text=True).stdout, re.M).group(1)
        r = subprocess.run(["cargo", "metadata", "--locked", "--offline", "--format-version", "1",
                            "--filter-platform", host, "--manifest-path", str(Path(tmp) / "Cargo.toml")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            problems.append("cargo metadata --locked --offline fails on the COPY'd paths:\n"
                            + r.stderr.strip())
    meta = json.loads(subprocess.run(["cargo", "metadata", "--locked", "--offline", "--format-version", "1",
                                      "--no-deps"], cwd=REPO, check=True, capture_output=True,
                                     text=True).stdout)
    for pkg in meta["packages"]:
        paths = [pkg["manifest_path"]] + [t["src_path"] for t in pkg["targets"]]
        for p in paths:
            rel = Path(p).resolve().relative_to(REPO).as_posix()
            if not covered(rel):
                problems.append(f"{pkg['name']}: {rel} is not copied by the Dockerfile's build stage")
    if problems:
        print("Dockerfile check failed:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"Dockerfile check: {len(build_sources)} COPY sources in the build stage, "
          f"{sum(map(covered, context))} files; cargo metadata --locked --offline passes; "
          f"every workspace manifest and target is covered", file=sys.stderr)


if __name__ == "__main__":
    main()
