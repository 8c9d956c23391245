"""What the transfer cases share: checking a received file, timeouts, the seeders seed1..seed4
(seed1 owns the group; they stay up from case to case and live in `bench.seeders`), the
downloaders, and timed downloads."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..cluster import Daemon, start_trackers
from ..util import GROUP, MiB, POLL, BenchError, human, log, sha1_file


def verify(path, expected, what):
    if not Path(path).is_file():
        raise BenchError(f"{what}: {path} does not exist")
    actual = sha1_file(path)
    if actual != expected:
        msg = (f"SHA-1 MISMATCH in {what}: {path} has {actual}, the original {expected} "
               f"(size {Path(path).stat().st_size})")
        print("\n!!!!!!!! " + msg + " !!!!!!!!\n", file=sys.stderr, flush=True)
        raise BenchError(msg)


def timeout_for(size, rate=None):
    floor = 4 * MiB if rate is None else min(4 * MiB, rate)
    return 120 + size / floor


# -- seeders and downloaders -------------------------------------------------------------------


def seeder(bench, i):
    if i not in bench.seeders:
        bench.seeders[i] = Daemon(bench, f"seed{i}")
    return bench.seeders[i]


def owner(bench):
    s1 = seeder(bench, 1)
    if not (s1.running() and s1.registered):
        raise BenchError("the group owner seed1 is not running")
    return s1


def use_seeders(bench, n, limit=None, file=None):
    """Brings seed1..seed<n> online with upload limit `limit`, sharing `file` (default the
    big file); the other seeders are logged out and stopped. Waits until the tracker lists
    exactly n seeders of the file."""
    file = file or bench.big
    start_trackers(bench)
    for i, s in sorted(bench.seeders.items()):
        if s.running() and (i > n or s.limit != limit):
            log(f"stopping {s.name}")
            s.stop()
    for i in range(1, n + 1):
        s = seeder(bench, i)
        if not s.running():
            log(f"starting {s.name}" + (f" with --upload-limit {limit} ({human(limit)}/s)" if limit else ""))
            s.start(limit)
            if s.registered:
                s.login()
            else:
                s.register(owner=None if i == 1 else owner(bench))
        if file.name not in s.shares:
            log(f"{s.name}: upload_file {GROUP} {file.name}")
            s.upload(file)
    wait_seeders(bench, file.name, n)


def wait_seeders(bench, name, n):
    own = owner(bench)
    deadline = time.monotonic() + 30
    while True:
        reply = own.ctl("list_files", GROUP)
        seen = [f.get("seeders") for f in reply.get("files", []) if f.get("name") == name]
        if seen and seen[0] == n:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"list_files shows {seen} seeders of {name}, expected {n}, "
                             f"after 30 s", [s.log for s in bench.seeders.values()])
        time.sleep(0.2)


def downloader(bench, name):
    d = Daemon(bench, name)
    d.start()
    d.register(owner=owner(bench))
    return d


def retire(daemons):
    """Logs out and stops downloaders and deletes their files and state."""
    for d in daemons:
        d.stop()
    for d in daemons:  # even with --keep: they are big
        shutil.rmtree(d.downloads, ignore_errors=True)


# -- one or many downloads, timed --------------------------------------------------------------


def download(bench, items, size, timeout):
    """Starts `download_file` for every (daemon, file name) at once and polls each
    daemon's show_downloads until complete. Returns (seconds until each was complete,
    destination paths)."""
    dests = [d.downloads / name for d, name in items]
    t0 = time.monotonic()
    started = [
        subprocess.Popen(
            [str(a) for a in d.argv(["download_file", GROUP, name, d.downloads])],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=bench.tmp, env=d.ctl_env(),
        )
        for d, name in items
    ]
    for (d, name), p in zip(items, started):
        try:
            out, err = p.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            p.kill()
            raise BenchError(f"p2pctl download_file on {d.name} took over 150 s", [d.log])
        d.check_reply(["download_file", GROUP, name, d.downloads], p.returncode,
                      out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    pending = set(range(len(items)))
    done = {}
    progress = {i: (-1, t0) for i in pending}
    deadline = t0 + timeout
    seeder_logs = [s.log for s in bench.seeders.values() if s.running()]
    while pending:
        for i in sorted(pending):
            d, name = items[i]
            reply = d.ctl("show_downloads")
            mine = [x for x in reply.get("downloads", [])
                    if x.get("destination") == str(dests[i])
                    or (x.get("file") == name and x.get("group") == GROUP)]
            now = time.monotonic()
            if not mine:
                raise BenchError(f"show_downloads on {d.name} does not list {name}: {reply}",
                                 [d.log])
            info = mine[0]
            state = info.get("state")
            if state == "complete":
                done[i] = now - t0
                pending.discard(i)
            elif state == "failed":
                raise BenchError(f"download of {name} by {d.name} failed after "
                                 f"{now - t0:.1f} s: {info.get('detail')}; "
                                 f"banned: {info.get('banned')}", [d.log] + seeder_logs)
            else:
                got = info.get("bytes_done", 0)
                if got != progress[i][0]:
                    progress[i] = (got, now)
                elif now - progress[i][1] > 60:
                    raise BenchError(
                        f"download of {name} by {d.name} stalled for 60 s at {got}/{size} "
                        f"bytes, state {state}: {info.get('detail')} (peers "
                        f"{info.get('peers')}, banned {info.get('banned')})",
                        [d.log] + seeder_logs)
        if not pending:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"downloads not complete after {timeout:.0f} s",
                             [items[i][0].log for i in pending] + seeder_logs)
        time.sleep(POLL)
    return [done[i] for i in range(len(items))], dests
