#!/usr/bin/env python3
"""No Docker engine runs in CI, so this proves the Dockerfile's build stage another way.

It copies exactly the paths that the COPY lines of the build stages name (what the build
context holds after .dockerignore) into an empty directory and runs
`cargo metadata --locked --offline` there (for this platform, after `cargo fetch`): the
manifest, the lock file, every workspace
member and path dependency must be present for that to pass. It also checks that every
workspace package's manifest and every target's source file of the repository is covered
by those COPY lines, that the dependency layer (the COPYs before the build stage's first
RUN) holds the lock file and every workspace manifest and its placeholder build creates
every target's source file, and that every COPY source is in the context.

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


def instructions(dockerfile):
    """(stage index, instruction, its words) in order, continuation lines joined."""
    out, stage = [], -1
    text = dockerfile.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        if not words:
            continue
        op = words[0].upper()
        if op == "FROM":
            stage += 1
        out.append((stage, op, words[1:]))
    return out


def copy_lines(steps):
    """(stage index, sources, before the stage's first RUN) of every COPY that reads the
    build context."""
    out, ran = [], set()
    for stage, op, words in steps:
        if op == "RUN":
            ran.add(stage)
        if op != "COPY" or any(w.startswith("--from") for w in words):
            continue
        args = [w for w in words if not w.startswith("--")]
        out.append((stage, args[:-1], stage not in ran))
    return out


def rel(path):
    return path.removeprefix("./").rstrip("/") or "."


def under(f, sources):
    return any(f == s or f.startswith(s + "/") or s == "." for s in map(rel, sources))


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
    steps = instructions(REPO / "Dockerfile")
    lines = copy_lines(steps)
    last_stage = max(s for s, _, _ in lines)
    build_sources = [src for s, srcs, _ in lines if s < last_stage for src in srcs]
    # The dependency layer: the build stage's COPYs before its first RUN, and that RUN.
    layer_sources = [src for s, srcs, first in lines if s == 0 and first for src in srcs]
    placeholder = next((" ".join(w) for s, op, w in steps if s == 0 and op == "RUN"), "")
    for s, srcs, _ in lines:
        for src in srcs:
            if not any(under(f, [src]) for f in context):
                problems.append(f"COPY {rel(src)}: nothing of it is in the build context (.dockerignore?)")
    covered = lambda f: under(f, build_sources)
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
    if not under("Cargo.lock", layer_sources):
        problems.append("Cargo.lock is not copied before the dependency layer's build")
    for pkg in meta["packages"]:
        manifest = Path(pkg["manifest_path"]).resolve().relative_to(REPO).as_posix()
        if not under(manifest, layer_sources):
            problems.append(f"{pkg['name']}: {manifest} is not copied before the dependency layer's build")
        for t in pkg["targets"]:
            path = Path(t["src_path"]).resolve().relative_to(REPO).as_posix()
            if not covered(path):
                problems.append(f"{pkg['name']}: {path} is not copied by the Dockerfile's build stage")
            if path not in placeholder and t["kind"][0] not in ("bench", "example"):
                problems.append(f"{pkg['name']}: the dependency layer's placeholder build does not "
                                f"create {path} (target {t['name']})")
    if problems:
        print("Dockerfile check failed:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"Dockerfile check: {len(build_sources)} COPY sources in the build stage, "
          f"{sum(map(covered, context))} files; cargo metadata --locked --offline passes; "
          f"every workspace manifest and target is covered", file=sys.stderr)


if __name__ == "__main__":
    main()
