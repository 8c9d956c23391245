"""One run: build, install the tools, make the temp dir and the test files, run the selected
cases in order (one failing case does not stop the others), then scan the logs, stop every
process, remove the temp dir and report."""

import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from . import cases, tools
from .cluster import tracker_logs
from .context import Bench
from .processes import kill_autostarted
from .report import report
from .util import BenchError, Skip, log, tail


def run(args):
    """Runs the benchmark for the parsed `args`; returns the exit status (1 when a case
    failed)."""
    bench = Bench(args)
    bench.bins = tools.build(args.no_build)
    bench.tools = tools.install(bench.only, args.no_install)
    bench.tmp = Path(tempfile.mkdtemp(prefix="p2p-bench-", dir=args.tmpdir))
    log(f"temp dir {bench.tmp}")
    failed = False
    try:
        bench.env = bench.make_env()
        bench.make_files()
        order = [c for c in cases.ORDER
                 if c in bench.only or (c == "b" and riders(bench))]
        for case in order:
            if not run_case(bench, case):
                failed = True
        cases.b.finish(bench)
    finally:
        try:
            scan_logs(bench)  # before the shutdown, whose own warnings are expected
        except OSError as e:
            log(f"cannot scan the logs: {e}")
        for s in bench.seeders.values():
            if s.running():
                s.stop(logout=False)
        bench.procs.cleanup()
        kill_autostarted(bench.tmp, bench.warn)
        if args.keep:
            log(f"kept {bench.tmp}")
        else:
            shutil.rmtree(bench.tmp, ignore_errors=True)
    report(bench)
    return 1 if failed else 0


def run_case(bench, case):
    """Runs one case; a skip or a failure becomes its row (and (g)'s, for (b)). Returns False
    when it failed."""
    labels = cases.LABELS
    log(f"--- case ({case})")
    try:
        cases.MODULES[case].run(bench)
    except Skip as e:
        bench.row(case, labels[case], note=str(e), met="skipped")
        for rider in riders(bench) if case == "b" else []:
            bench.row(rider, labels[rider], note=str(e), met="skipped")
    except Exception as e:  # noqa: BLE001 - one broken case must not hide the others
        if not isinstance(e, BenchError):
            traceback.print_exc()
            e = BenchError(f"{type(e).__name__}: {e}")
        log(f"case ({case}) FAILED: {e}")
        for path in dict.fromkeys(e.logs + tracker_logs(bench)):
            print(f"--- tail of {path} ---\n{tail(path)}\n", file=sys.stderr, flush=True)
        bench.row(case, labels[case], note=f"ERROR: {e}", met="ERROR")
        for rider in riders(bench) if case == "b" else []:
            bench.row(rider, labels[rider], note="ERROR: see (b)", met="ERROR")
        return False
    return True


def riders(bench):
    """The cases measured by (b) that this run asks for."""
    return [c for c in cases.MEASURED_BY_B if c in bench.only]


def scan_logs(bench):
    """Panics, errors and warnings in the product's logs are findings worth reading."""
    for path in sorted(bench.tmp.glob("**/*.log")):
        if path.parent.name == "h" or path.parent.name == "a":
            continue
        top = path.relative_to(bench.tmp).parts[0]
        text = path.read_text(errors="replace").splitlines()
        # (i) and (j) kill and freeze trackers: warnings about it are expected there.
        worst = ("panicked at", " ERROR ") if top in ("i", "j") else \
            ("panicked at", " ERROR ", " WARN ")
        bad = [l for l in text if any(w in l for w in worst)]
        if bad:
            rel = path.relative_to(bench.tmp)
            bench.warn(f"{rel}: {len(bad)} ERROR/WARN/panic line(s), first: {bad[0].strip()[:300]}")
