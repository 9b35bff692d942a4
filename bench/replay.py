"""Benchmark: `lmes replay --no-store --json` over gigabytes of nova-compute logs.

Generates the logs once (into `bench/data/`, git-ignored; `--size`, default 2 GB, or `--small`),
then times the replay end to end as a user runs it (a child process), with its peak memory, next
to `grep -c ''` and `grep -c migrat` over the same files in the same run, and checks the
migrations found against what the generator wrote.

    python3 bench/replay.py            # 2 GB
    python3 bench/replay.py --small    # about 60 MB
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.make_nova_logs import manifest_path, parse_size, write_logs  # noqa: E402

TARGET_LINES_S = 1_000_000
TARGET_PEAK_MB = 300
# replay outcome for each outcome the generator wrote
EXPECTED = {
    "completed": {"completed"},
    "post_copy": {"completed"},
    "failed": {"failed", "error"},
    "pre_failed": {"error"},
    "cancelled": {"cancelled"},
    "incomplete": {"incomplete"},
    "precheck_error": {"incomplete"},
}


def timed(command: list[str], stdout) -> tuple[float, int, int, float]:
    """Wall seconds, peak resident MB, exit status and CPU seconds of one child process (its
    own figures, from `wait4`, not the maximum over every child so far)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.stderr.write(child.stderr.read().decode(errors="replace"))
    return seconds, usage.ru_maxrss // 1024, child.returncode, usage.ru_utime + usage.ru_stime


def log_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*.log"))


def ensure_logs(folder: Path, size_bytes: int, seed: int) -> None:
    files = log_files(folder) if folder.exists() else []
    present = sum(os.path.getsize(f) for f in files)
    if files and abs(present - size_bytes) < size_bytes * 0.1 and manifest_path(folder).exists():
        return
    print(f"generating {size_bytes / 2**30:.2f} GiB of logs into {folder} …", file=sys.stderr)
    summary = write_logs(
        folder,
        size_bytes,
        hosts=24,
        seed=seed,
        noise_lines_s=4.0,
        migrations_per_hour=180,
        era_name=None,
    )
    print(json.dumps(summary), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G")
    parser.add_argument("--small", action="store_true", help="about 60 MB")
    parser.add_argument("--data", type=Path, default=REPO / "bench" / "data")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, help="passed to lmes replay (default: its own)")
    args = parser.parse_args(argv)
    size = parse_size("60M" if args.small else args.size)
    folder = args.data / ("logs-small" if args.small else f"logs-{args.size.lower()}")
    ensure_logs(folder, size, args.seed)
    files = log_files(folder)
    total_bytes = sum(os.path.getsize(f) for f in files)

    # grep writes to a file: GNU grep stops at the first match when its output is /dev/null.
    counted = args.data / "grep-count.txt"
    for _ in range(2):  # the first pass warms the page cache for everyone
        with open(counted, "wb") as out:
            grep_all_s, _, _, _ = timed(["grep", "-c", "", *files], out)
    lines = sum(int(line.rsplit(b":", 1)[1]) for line in counted.read_bytes().splitlines())
    with open(args.data / "grep-migrat.txt", "wb") as out:
        grep_migrat_s, _, _, _ = timed(["grep", "-c", "migrat", *files], out)
    with open(os.devnull, "wb") as devnull:
        startup_s, startup_mb, _, _ = timed(
            [sys.executable, "-m", "lmes.cli", "replay", "--help"], devnull
        )
    result_path = args.data / "replay.json"
    with open(result_path, "wb") as out:
        replay_s, peak_mb, status, replay_cpu_s = timed(
            [sys.executable, "-m", "lmes.cli", "replay", "--no-store", "--json", str(folder)]
            + (["--jobs", str(args.jobs)] if args.jobs else []),
            out,
        )
    if status != 0:
        print(f"lmes replay failed with status {status}", file=sys.stderr)
        return 1
    found = json.loads(result_path.read_text())
    agreement = check(found, manifest_path(folder))

    rate = lines / replay_s
    report = {
        "cpus": os.cpu_count(),
        "jobs": args.jobs or "lmes default",
        "files": len(files),
        "bytes": total_bytes,
        "lines": lines,
        "migrations_found": len(found),
        "outcomes": dict(Counter(m["outcome"] for m in found)),
        "agreement_with_generator": agreement,
        "replay_s": round(replay_s, 2),
        "replay_lines_per_s": round(rate),
        "replay_cpu_s": round(replay_cpu_s, 2),
        "replay_lines_per_cpu_s": round(lines / replay_cpu_s),
        "replay_peak_mb": peak_mb,
        "replay_lines_per_s_after_startup": round(lines / max(replay_s - startup_s, 1e-9)),
        "cli_startup_s": round(startup_s, 2),
        "cli_startup_peak_mb": startup_mb,
        "grep_count_all_s": round(grep_all_s, 2),
        "grep_count_migrat_s": round(grep_migrat_s, 2),
        "replay_vs_grep_all": round(replay_s / grep_all_s, 1),
        "replay_vs_grep_migrat": round(replay_s / grep_migrat_s, 1),
        "target_lines_per_s": TARGET_LINES_S,
        "meets_rate_target": rate >= TARGET_LINES_S,
        "target_peak_mb": TARGET_PEAK_MB,
        "meets_memory_target": peak_mb < TARGET_PEAK_MB,
    }
    print(json.dumps(report, indent=2))
    return 0


def check(found: list[dict], manifest: Path) -> dict:
    """How many written migrations were found, and with the outcome their logs imply."""
    written = [json.loads(line) for line in manifest.read_text().splitlines()]
    by_request = {m["request_ids"][0]: m for m in found if m["request_ids"]}
    matched = right = 0
    for truth in written:
        replayed = by_request.get(truth["request_id"])
        if replayed is None:
            continue
        matched += 1
        hosts_right = (replayed["source_host"], replayed["dest_host"]) == (
            truth["source"],
            truth["dest"],
        )
        if replayed["outcome"] in EXPECTED[truth["outcome"]] and hosts_right:
            right += 1
    return {"written": len(written), "found": matched, "outcome_and_hosts_right": right}


if __name__ == "__main__":
    sys.exit(main())
