"""The results: percentile and median helpers, and the Markdown table with its header and
notes, printed and written to bench/results.md."""

import math
import os
import platform
import subprocess
import time

from .util import CASES, REPO, RESULTS, log, size_arg


def percentile(values, q):
    """Nearest-rank percentile, q in [0, 1]."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


def median(values):
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def table(rows):
    """The Markdown table of `rows` (key -> (label, secs, mibps, note, met)): a case's own
    row, then its extra rows (keys like "j.solo") in the order they came, cases in order."""
    lines = [
        "| case | time (s) | throughput (MiB/s) | note / target | met? |",
        "|---|---:|---:|---|---|",
    ]
    keys = [k for case in CASES
            for k in ([case] if case in rows else [])
            + [k for k in rows if k.startswith(case + ".")]]
    for key in keys:
        label, secs, mibps, note, met = rows[key]
        stime = "–" if secs is None else f"{secs:.3f}" if secs < 10 else f"{secs:.2f}"
        lines.append(f"| {label} | {stime} | "
                     f"{'–' if mibps is None else f'{mibps:.1f}'} | "
                     f"{note.replace('|', '/')} | {met} |")
    return "\n".join(lines)


NOTES = (
    "\nNotes:\n"
    "- The page cache is not dropped (that needs root and is not reliable in a "
    "container): every read is warm-cache, and writes land in the page cache. p2pd "
    "reports a download complete once the whole file is verified and in place, then "
    "syncs it to disk; while it runs, verified pieces are synced and committed about "
    "once a second. socat/tee and aria2c never sync.\n"
    "- MiB/s = file size / time. Download times run from the start of "
    "`p2pctl download_file` to the first `show_downloads` poll (every 50 ms) that says "
    "complete. (e)'s throughput is the 8 copies delivered divided by the time until the "
    "last is complete; the seeder's upload is the growth of `wchar` in "
    "/proc/<pid>/io (bytes handed to write/writev, sockets included) of its p2pd.\n"
    "- (h): aria2c with DHT, LPD and peer exchange off, --file-allocation=falloc, "
    "opentracker on 127.0.0.1 with the torrent whitelisted.\n"
    "- (i), (j): a tracker pair of their own (tracker_info.txt in the temp dir), the "
    "primary and a standby that is attached and caught up (`status` on the primary's "
    "stdin says `standby attached, … lag 0`, the standby is at the same epoch and "
    "last_seq) before every measurement. (i) times from the signal to the exit of the "
    "first `p2pctl list_groups` that succeeds (p2pctl's start included; started right "
    "after the signal, repeated at once if it fails); the killed tracker is restarted "
    "on its data dir, the frozen one gets SIGCONT, and each must rejoin as the "
    "standby before the next round, which strikes whichever is primary then. The "
    "takeover time is the standby's `taking over as primary` log line. (j) talks the "
    "tracker protocol from Python over one loopback TCP connection, one request at a "
    "time (latency includes Python's framing, JSON and socket calls, some µs); every write is a "
    "redb commit (one fdatasync) on the primary and, with the standby attached, one on the "
    "standby before the answer.\n"
)


def header(bench):
    """The title and the line that records the command line, date, commit, CPUs and kernel."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        rev = "?"
    return (
        f"# Benchmark results\n\n"
        f"`bench/run --size {size_arg(bench.size)} --rate {size_arg(bench.rate)}"
        + (f" --failovers {bench.args.failovers}" if "i" in bench.only else "")
        + (f" --writes {bench.args.writes}" if "j" in bench.only else "")
        + (f" --only {','.join(bench.only)}" if set(bench.only) != set(CASES) else "")
        + f"` on {time.strftime('%Y-%m-%d %H:%M')}, commit {rev}, {os.cpu_count()} CPUs, "
        f"Linux {platform.release()}.\n"
    )


def report(bench):
    """Prints the table and its notes (and the run's warnings) on stdout and writes them, with
    the header, to bench/results.md."""
    tab = table(bench.rows)
    head = header(bench)
    notes = NOTES
    if bench.warnings:
        notes += "\nWarnings from this run:\n" + "".join(f"- {w}\n" for w in bench.warnings)
    text = head + "\n" + tab + "\n" + notes
    print("\n" + tab + "\n" + notes)
    RESULTS.write_text(text)
    log(f"wrote {RESULTS}")
