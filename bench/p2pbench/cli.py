"""The command line of bench/run: its options, checked, and `main`, which runs the benchmark
with SIGTERM and SIGHUP turned into KeyboardInterrupt, so that every exit cleans up."""

import argparse
import signal
import sys

from .runner import run
from .util import CASES, GiB, MiB, parse_size


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Benchmarks of trackerd/p2pd/p2pctl against socat and aria2c; prints a "
                    "Markdown table and writes bench/results.md.")
    ap.add_argument("--size", type=parse_size, default=GiB,
                    help="size of the test file, K/M/G = powers of 1024 (default 1G); "
                         "(e) uses a quarter of it")
    ap.add_argument("--rate", type=parse_size, default=16 * MiB,
                    help="--upload-limit of each seeder in (d), bytes/s (default 16M)")
    ap.add_argument("--only", default=CASES,
                    help="comma-separated cases to run, e.g. a,b,h (default all: a..j)")
    ap.add_argument("--failovers", type=int, default=5, metavar="N",
                    help="(i): primaries killed (kill -9), then as many frozen (SIGSTOP) "
                         "(default 5)")
    ap.add_argument("--writes", type=int, default=2000, metavar="N",
                    help="(j): sequential writes with the standby attached, and as many "
                         "without (default 2000)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (and its logs)")
    ap.add_argument("--tmpdir", default=None,
                    help="where to make the temp dir (default $TMPDIR or /tmp)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get")
    args = ap.parse_args(argv)
    only = [c.strip().lower().strip("()") for c in args.only.replace(" ", ",").split(",") if c.strip()]
    if len(only) == 1 and len(only[0]) > 1:
        only = list(only[0])  # --only abc
    bad = [c for c in only if c not in CASES]
    if bad:
        ap.error(f"unknown case(s) {bad}; cases are {', '.join(CASES)}")
    args.only = [c for c in CASES if c in only]
    if args.failovers < 1 or args.writes < 1:
        ap.error("--failovers and --writes must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        sys.exit(run(args))
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
