"""The soak: two trackers and many daemons under churn for minutes, then a count of what was
lost. Entry point `bench/soak` (bench/README.md, "Soak").

Workers act at random on random daemons, all the time: log out and back in, leave a group and
join it again (the owner accepts), upload a new file, download a file of one of their groups,
kill a daemon with SIGKILL and start it again (its downloads resume by themselves). Every
minute the primary tracker is killed with SIGKILL and started again once the other took over.
At the end every download still running is waited for, and then it counts:

- acknowledged writes lost: accounts that cannot log in, groups missing from `list_groups`,
  uploads whose `upload_file` succeeded but that `list_files` does not show, members missing;
- files that differ: downloads reported complete whose SHA-1 is not the uploaded file's;
- memory: the peak resident set of every daemon and tracker (sampled every 5 s).

Owners never leave their groups (a group emptied is removed with its files, by design)."""

import hashlib
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from .cluster import Daemon, TrackerPair
from .processes import proc_field
from .util import BenchError, KiB, MiB, log

GROUPS = 5
WORKERS = 6


def failure_kind(text):
    """A failed command's error with the names taken out, so failures group by kind."""
    text = text.split(" failed (exit ", 1)[-1]
    text = re.sub(r"^\d+\): ", "", text)
    text = re.sub(r"\bf\d+\.bin\b", "FILE", text)
    text = re.sub(r"\bg\d\b", "GROUP", text)
    text = re.sub(r"\bu\d+\b", "USER", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "ADDR", text)
    text = re.sub(r"(?<![a-z])\d+(\.\d+)?", "N", text)
    return text[:100]


class Soak:
    def __init__(self, bench, daemons, minutes, seed):
        self.bench = bench
        self.seed = seed
        self.rng = random.Random(seed)
        self.minutes = minutes
        self.pair = TrackerPair(bench, "soak")
        self.daemons = [Daemon(bench, f"u{i:02}", tracker_info=self.pair.info)
                        for i in range(daemons)]
        self.locks = {d.name: threading.Lock() for d in self.daemons}
        self.groups = [f"g{k}" for k in range(GROUPS)]
        self.owner = {g: self.daemons[k] for k, g in enumerate(self.groups)}
        self.members = {g: {self.owner[g].name} for g in self.groups}
        self.files = {g: {} for g in self.groups}  # group -> name -> (sha1, uploader)
        self.downloads = []  # (daemon, group, name, dest)
        self.done = Counter()  # what the workers did
        self.failed = Counter()  # commands that failed, by kind
        self.peak_rss = {}  # process name -> KiB
        self.state = threading.Lock()
        self.stop = threading.Event()
        self.file_no = 0

    # --- setup -------------------------------------------------------------------------

    def setup(self):
        self.pair.start(1)
        self.pair.start(2)
        self.pair.wait_synced(timeout=60)
        for d in self.daemons:
            d.start()
            d.ctl("create_user", d.user, d.password)
            d.ctl("login", d.user, d.password)
        for g, owner in self.owner.items():
            owner.ctl("create_group", g)
        # Each daemon joins two or three groups.
        for d in self.daemons:
            for g in self.rng.sample(self.groups, self.rng.randint(2, 3)):
                if d.name not in self.members[g]:
                    self.join(d, g)
        for d in self.daemons[:GROUPS * 2]:
            self.upload(d)
        log(f"soak: {len(self.daemons)} daemons, {GROUPS} groups, trackers on ports "
            f"{self.pair.ports[1]} and {self.pair.ports[2]}")

    def join(self, d, g):
        d.ctl("join_group", g)
        owner = self.owner[g]
        # The owner may be in another worker's hands (being killed, say): wait for it, but not
        # for ever (that worker may be waiting for `d`).
        lock = self.locks[owner.name]
        held = lock.acquire(timeout=30)
        try:
            if not owner.running():
                owner.start()
            owner.ctl("accept_request", g, d.user)
        finally:
            if held:
                lock.release()
        with self.state:
            self.members[g].add(d.name)

    def upload(self, d):
        with self.state:
            mine = [g for g in self.groups if d.name in self.members[g]]
            self.file_no += 1
            no = self.file_no
        g = self.rng.choice(mine)
        size = self.rng.choice([64 * KiB, 700 * KiB, 2 * MiB + 123, 4 * MiB])
        path = d.dir / "shared" / f"f{no:04}.bin"
        path.parent.mkdir(exist_ok=True)
        data = os.urandom(size)
        path.write_bytes(data)
        d.ctl("upload_file", g, path)
        with self.state:
            self.files[g][path.name] = (hashlib.sha1(data).hexdigest(), d.name)

    # --- the churn ---------------------------------------------------------------------

    def act(self, d):
        """One random action on `d` (whose lock the caller holds)."""
        roll = self.rng.random()
        if roll < 0.40:
            with self.state:
                choices = [(g, n) for g in self.groups if d.name in self.members[g]
                           for n, (_, up) in self.files[g].items()
                           if up != d.name and not any(x is d and (xg, xn) == (g, n)
                                                       for x, xg, xn, _ in self.downloads)]
            if choices:
                g, name = self.rng.choice(choices)
                dest = d.downloads / g / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                d.ctl("download_file", g, name, dest)
                with self.state:
                    self.downloads.append((d, g, name, dest))
                self.done["download started"] += 1
        elif roll < 0.55:
            self.upload(d)
            self.done["upload"] += 1
        elif roll < 0.70:
            d.ctl("logout")
            d.ctl("login", d.user, d.password)
            self.done["logout + login"] += 1
        elif roll < 0.85:
            with self.state:
                busy = {g for x, g, _, dest in self.downloads if x is d}
                leavable = [g for g in self.groups if d.name in self.members[g]
                            and self.owner[g] is not d and g not in busy]
            if leavable:
                g = self.rng.choice(leavable)
                d.ctl("leave_group", g)
                with self.state:
                    self.members[g].discard(d.name)
                self.join(d, g)
                self.done["leave + join"] += 1
        else:
            os.kill(d.pid, signal.SIGKILL)
            d.proc.wait()
            d.start()
            self.done["daemon SIGKILL + restart"] += 1

    def worker(self):
        while not self.stop.is_set():
            d = self.rng.choice(self.daemons)
            lock = self.locks[d.name]
            if not lock.acquire(blocking=False):
                continue
            try:
                self.act(d)
            except BenchError as e:
                self.failed[failure_kind(str(e))] += 1
                if not d.running():
                    d.start()
            finally:
                lock.release()

    def kill_primary_every_minute(self):
        while not self.stop.wait(60):
            try:
                primary = self.pair.wait_synced(timeout=120)
            except BenchError as e:
                self.failed[f"trackers not settled: {e}"[:80]] += 1
                continue
            self.pair.signal(primary, signal.SIGKILL)
            other = 3 - primary
            deadline = time.monotonic() + 60
            while self.pair.status(other)["role"] != "primary":
                if time.monotonic() > deadline:
                    raise BenchError(f"tracker {other} did not take over in 60 s",
                                     self.pair.logs())
                time.sleep(0.1)
            self.pair.start(primary)
            self.done["primary tracker SIGKILL"] += 1

    def sample_memory(self):
        while not self.stop.wait(5):
            procs = [(d.name, d.proc) for d in self.daemons]
            procs += [(f"trackerd {no}", p) for no, p in self.pair.procs.items()]
            for name, proc in procs:
                try:
                    rss = proc_field(proc.pid, "status", "VmRSS")
                except (OSError, ValueError, AttributeError, BenchError):
                    continue
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)

    # --- the end -----------------------------------------------------------------------

    def wait_downloads(self, timeout=300):
        deadline = time.monotonic() + timeout
        pending = list(self.downloads)
        while pending and time.monotonic() < deadline:
            still = []
            for d, g, name, dest in pending:
                try:
                    shown = d.ctl("show_downloads")
                except BenchError:
                    still.append((d, g, name, dest))
                    continue
                rows = shown.get("downloads", [])
                row = next((r for r in rows if r.get("group") == g and r.get("file") == name),
                           None)
                if row is not None and row.get("state") == "failed":
                    self.failed[f"download failed: {row.get('detail')}"[:80]] += 1
                elif row is None or row.get("state") != "complete":
                    still.append((d, g, name, dest))
            pending = still
            time.sleep(1)
        return pending

    def verify(self):
        found = Counter()
        for d in self.daemons:
            st = d.ctl("status")
            if st.get("user") != d.user:
                found["account not logged in at the end"] += 1
        listed = set()
        for g in self.groups:
            owner = self.owner[g]
            files = {f["name"] for f in owner.ctl("list_files", g).get("files", [])}
            for name in self.files[g]:
                if name not in files:
                    found["acknowledged upload missing"] += 1
            groups = owner.ctl("list_groups").get("groups", [])
            listed |= {x["group"] for x in groups}
        found["acknowledged group missing"] += len(set(self.groups) - listed)
        for d, g, name, dest in self.downloads:
            sha1 = self.files[g][name][0]
            try:
                got = hashlib.sha1(Path(dest).read_bytes()).hexdigest()
            except OSError:
                got = None
            if got != sha1:
                found["file that differs"] += 1
        return found

    def run(self):
        self.setup()
        threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(WORKERS)]
        threads.append(threading.Thread(target=self.kill_primary_every_minute, daemon=True))
        threads.append(threading.Thread(target=self.sample_memory, daemon=True))
        for t in threads:
            t.start()
        start = time.monotonic()
        while time.monotonic() - start < self.minutes * 60:
            time.sleep(5)
            log(f"soak: {int(time.monotonic() - start)} s, {sum(self.done.values())} actions, "
                f"{sum(self.failed.values())} failed commands")
        self.stop.set()
        for t in threads:
            t.join(timeout=180)
        for d in self.daemons:
            if not d.running():
                d.start()
        pending = self.wait_downloads()
        found = self.verify()
        found["download not complete after 5 min"] += len(pending)
        return found


def main(argv=None):
    import argparse
    import shutil
    import tempfile

    from . import tools
    from .context import Bench
    from .processes import kill_autostarted

    ap = argparse.ArgumentParser(prog="bench/soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--daemons", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-build", action="store_true", help="use target/release as it is")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--tmpdir", default=None)
    args = ap.parse_args(argv)
    # Bench wants the options of bench/run; the soak uses none of them.
    args.size, args.rate, args.only = MiB, MiB, ""
    bench = Bench(args)
    bench.bins = tools.build(args.no_build)
    bench.tmp = Path(tempfile.mkdtemp(prefix="p2p-soak-", dir=args.tmpdir))
    bench.env = bench.make_env()
    soak = Soak(bench, args.daemons, args.minutes, args.seed)
    started = time.monotonic()
    error = None
    try:
        found = soak.run()
    except BenchError as e:
        error, found = e, Counter()
    finally:
        bench.procs.cleanup()
        kill_autostarted(bench.tmp, bench.warn)
        if args.keep:
            log(f"kept {bench.tmp}")
        else:
            shutil.rmtree(bench.tmp, ignore_errors=True)
    report(soak, found, time.monotonic() - started, error)
    return 1 if error or any(found.values()) else 0


def report(soak, found, secs, error):
    daemons = [kib for name, kib in soak.peak_rss.items() if not name.startswith("trackerd")]
    trackers = [kib for name, kib in soak.peak_rss.items() if name.startswith("trackerd")]
    lines = [
        f"Soak: {len(soak.daemons)} daemons, 2 trackers, {soak.minutes:g} min of churn "
        f"({secs / 60:.1f} min in all, seed {soak.seed})",
        "",
        "| what | count |",
        "|---|---|",
    ]
    for what, n in sorted(soak.done.items()):
        lines.append(f"| {what} | {n} |")
    lines.append(f"| files uploaded in all | {sum(len(f) for f in soak.files.values())} |")
    lines.append(f"| downloads completed and checked | {len(soak.downloads)} |")
    for what, n in sorted(soak.failed.items()):
        lines.append(f"| command failed (retried later): {what} | {n} |")
    lines += ["", "| found | count |", "|---|---|"]
    for what in ("acknowledged upload missing", "acknowledged group missing",
                 "account not logged in at the end", "file that differs",
                 "download not complete after 5 min"):
        lines.append(f"| {what} | {found.get(what, 0)} |")
    if daemons:
        lines.append(f"| peak RSS of a daemon (max of {len(daemons)}) | "
                     f"{max(daemons) / 1024:.1f} MiB |")
    if trackers:
        lines.append(f"| peak RSS of a tracker | {max(trackers) / 1024:.1f} MiB |")
    if error:
        lines.append(f"| the soak stopped early | {error} |")
    print("\n".join(lines))
