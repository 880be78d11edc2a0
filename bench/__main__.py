"""`python -m bench [--quick] [--only a,b]`: every scenario, each in its own process, then the
results: bench/results/latest.json (the headline figures), latest.md (the table) and
latest-details.json (everything measured). `--quick` runs tiny sizes (a smoke run; figures
not judged) and writes quick.* instead, so it never overwrites the real results.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, log, machine
from bench.report import HEADLINE_KEYS, write_results

SCENARIOS = (
    "upstream_load",
    "conversation",
    "delivery",
    "idle_streams",
    "rest_overhead",
    "failover",
    "redis_topologies",
    "soak",
    "hostile",
)


def _commit() -> str:
    """HEAD, marked when app/ differs from it (the code measured is the working tree's)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "app"], cwd=ROOT)
    except OSError:
        return ""
    return head + (" + uncommitted app/ changes" if dirty.returncode else "")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, writes quick.*")
    parser.add_argument("--only", help="comma-separated scenarios (default: all)")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    results: dict[str, Any] = {}
    durations: dict[str, float] = {}
    failed = []
    for name in chosen:
        log(f"== {name}")
        t = time.monotonic()
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [sys.executable, "-m", f"bench.{name}", "--out", out.name]
            if args.quick:
                command.append("--quick")
            code = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL).returncode
            if code == 0:
                results[name] = json.loads(Path(out.name).read_text())
            else:
                failed.append(name)
                log(f"{name} failed with exit status {code}")
        durations[name] = round(time.monotonic() - t, 1)
        log(f"== {name} took {durations[name]:.0f} s")
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": _commit(),
        "quick": args.quick,
        "machine": machine(),
        "durations_s": durations,
        "total_s": round(time.monotonic() - started, 1),
    }
    prefix = "quick" if args.quick else "latest"
    paths = write_results(RESULTS, prefix, results, meta)
    for path in paths:
        log(f"wrote {path.relative_to(ROOT)}")
    if not args.only and not failed:
        headline = json.loads((RESULTS / f"{prefix}.json").read_text())
        missing = [k for k in HEADLINE_KEYS if k not in headline]
        if missing:
            log(f"missing figures: {missing}")
            failed.append("report")
    print(f"bench: {len(chosen) - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
