"""The product's processes: the harness's two trackers (shared by the transfer cases), a
tracker pair of its own for the cases that kill and freeze trackers, and `Daemon`, one user's
p2pd with the p2pctl commands sent to it."""

import calendar
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from .processes import killpg, proc_field, cpu_seconds
from .util import GROUP, POLL, BenchError, log, tcp_accepts

# A tracker's answer to `status` on its stdin, e.g.
# `role=primary epoch=0 leader=1 last_seq=12 (standby attached, acknowledged 12, lag 0)`.
# The `status` line: role, epoch, leader, last_seq, then counters and keys (`name=value`
# words), then the replication state in parentheses.
STATUS_RE = re.compile(r"^role=(\w+) epoch=(\d+) leader=(\d+) last_seq=(\d+) [^(]*\((.*)\)$")
# The start of a trackerd log line: `2026-11-25T01:51:09.798033Z  INFO ...` (UTC).
LOG_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z\s")


# Every bench user connects from 127.0.0.1: the per-address login and account rates meant for
# the internet would throttle the bench itself.
LOCAL_RATES = ["--logins-per-minute", "100000", "--accounts-per-hour", "100000"]


def start_trackers(bench):
    """Starts the harness's two trackers, with <tmp>/tracker_info.txt, their logs in
    <tmp>/tracker-<no>.log and their data in <tmp>/tracker-<no>/, once: later calls do nothing.
    Sets `bench.tracker_info` and `bench.trackers`."""
    if bench.trackers:
        return
    ports = []
    held = []
    for _ in range(2):  # hold both at once so they differ
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
        ports.append(s.getsockname()[1])
    for s in held:
        s.close()
    bench.tracker_info = bench.tmp / "tracker_info.txt"
    bench.tracker_info.write_text("".join(f"127.0.0.1:{p}\n" for p in ports))
    for no, port in enumerate(ports, 1):
        logp = bench.tmp / f"tracker-{no}.log"
        p = bench.procs.spawn(
            [bench.bin("trackerd"), bench.tracker_info, no, "--data-dir", bench.tmp / f"tracker-{no}",
             *LOCAL_RATES],
            logp, bench.tmp, bench.env, stdin=subprocess.PIPE,
        )
        bench.trackers.append(p)
        deadline = time.monotonic() + 20
        while not tcp_accepts(port):
            if p.poll() is not None:
                raise BenchError(f"trackerd {no} exited with {p.returncode}", [logp])
            if time.monotonic() > deadline:
                raise BenchError(f"trackerd {no} does not listen on {port} after 20 s", [logp])
            time.sleep(POLL)
    log(f"trackers on 127.0.0.1:{ports[0]} and 127.0.0.1:{ports[1]}")


def tracker_logs(bench):
    """The logs of the harness's two trackers (none before they are started)."""
    return [p.log_path for p in bench.trackers]


class Daemon:
    """One user's `p2pd --foreground` in <tmp>/<name>/ (or `dir`), and `p2pctl` commands to it.
    It uses the harness's trackers, or those of `tracker_info`."""

    def __init__(self, bench, name, dir=None, tracker_info=None):
        self.bench = bench
        self.name = name
        self.user = name
        self.password = f"bench-{name}-pw-4821"
        self.dir = Path(dir) if dir is not None else bench.tmp / name
        self._tracker_info = tracker_info
        self.socket = self.dir / "run" / "p2pd.sock"
        self.state = self.dir / "state"
        self.log = self.dir / "p2pd.log"
        self.downloads = self.dir / "downloads"
        self.proc = None
        self.limit = None
        self.registered = False
        self.shares = set()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.downloads.mkdir(exist_ok=True)

    @property
    def pid(self):
        return self.proc.pid

    @property
    def tracker_info(self):
        return self._tracker_info or self.bench.tracker_info

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, upload_limit=None, extra=()):
        """Starts p2pd (with `--upload-limit` and the further arguments `extra`, if given) and
        waits until it answers `status`."""
        argv = [
            self.bench.bin("p2pd"),
            "--foreground",
            "--socket", self.socket,
            "--state-dir", self.state,
            "--tracker-info", self.tracker_info,
            "--listen", "127.0.0.1:0",
        ]
        if upload_limit:
            argv += ["--upload-limit", str(upload_limit)]
        argv += list(extra)
        with open(self.log, "ab") as f:
            f.write(f"=== bench: start {' '.join(map(str, argv[1:]))}\n".encode())
        self.proc = self.bench.procs.spawn(argv, self.log, self.bench.tmp, self.bench.env)
        self.limit = upload_limit
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"p2pd of {self.name} exited with {self.proc.returncode} before it was ready",
                    [self.log],
                )
            rc, out, err = self._run(["status"], timeout=10)
            if rc == 0:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"p2pd of {self.name} did not answer `status` in 20 s: {err}",
                                 [self.log])
            time.sleep(POLL)

    def argv(self, args):
        return [self.bench.bin("p2pctl"), "--socket", self.socket, "--json", *args]

    def _run(self, args, timeout=150):
        if self.proc is not None and self.proc.poll() is not None:
            # p2pctl would autostart a daemon of its own; the harness starts its daemons itself.
            raise BenchError(f"p2pd of {self.name} died (exit {self.proc.returncode}) before "
                             f"`p2pctl {' '.join(map(str, args))}`", [self.log])
        try:
            r = subprocess.run(
                [str(a) for a in self.argv(args)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                cwd=self.bench.tmp,
                env=self.ctl_env(),
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise BenchError(f"p2pctl {' '.join(map(str, args))} on {self.name} took over "
                             f"{timeout} s", [self.log])
        return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")

    def ctl_env(self):
        env = dict(self.bench.env)
        # Should p2pctl ever autostart a daemon (ours died), it lands in this daemon's dir.
        env["P2PD_STATE_DIR"] = str(self.state)
        env["P2P_TRACKER_INFO"] = str(self.tracker_info)
        return env

    def ctl(self, *args, timeout=150):
        """Runs `p2pctl --json <args>`; returns the `reply` object or raises."""
        rc, out, err = self._run(args, timeout)
        return self.check_reply(args, rc, out, err)

    def check_reply(self, args, rc, out, err):
        what = f"p2pctl {' '.join(map(str, args))} on {self.name}"
        if not self.running():
            raise BenchError(f"p2pd of {self.name} died (exit {self.proc.returncode}) around "
                             f"`{what}`", [self.log])
        try:
            value = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
        except ValueError:
            value = None
        if rc != 0 or not isinstance(value, dict) or value.get("ok") is not True:
            reason = err.strip() or out.strip()
            if isinstance(value, dict) and isinstance(value.get("error"), dict):
                reason = f"{value['error'].get('kind')}: {value['error'].get('message')}"
            raise BenchError(f"{what} failed (exit {rc}): {reason}", [self.log])
        return value.get("reply") or {}

    def register(self, owner=None):
        """create_user + login; then create the group (owner None) or join it and have
        `owner` accept."""
        self.ctl("create_user", self.user, self.password)
        self.ctl("login", self.user, self.password)
        if owner is None:
            self.ctl("create_group", GROUP)
        else:
            self.ctl("join_group", GROUP)
            owner.ctl("accept_request", GROUP, self.user)
        self.registered = True

    def login(self):
        self.ctl("login", self.user, self.password)

    def upload(self, path):
        self.ctl("upload_file", GROUP, path)
        self.shares.add(Path(path).name)

    def stop(self, logout=True):
        """logout (the tracker forgets this daemon's shares at once), then SIGTERM."""
        if not self.running():
            return
        if logout:
            try:
                self.ctl("logout", timeout=30)
            except BenchError as e:
                log(f"warning: {e}")
        if not self.bench.procs.stop(self.proc, timeout=10):
            self.bench.warn(f"p2pd of {self.name} did not exit within 10 s of SIGTERM "
                            f"(killed); see {self.log}")

    def hwm_mib(self):
        return proc_field(self.pid, "status", "VmHWM") / 1024

    def wchar(self):
        return proc_field(self.pid, "io", "wchar")

    def cpu_seconds(self):
        """User + system CPU time the daemon has used so far."""
        return cpu_seconds(self.pid)


class TrackerPair:
    """Two trackerd with a tracker_info.txt (and cluster.key) of their own in <tmp>/<name>/, for
    the cases that kill and freeze trackers. Each runs with stdin a pipe, for the `status`
    command; its stdout (the status lines) and stderr (its log) both go to tracker-<no>.log."""

    def __init__(self, bench, name, extra=()):
        self.bench = bench
        self.extra = list(extra)  # more trackerd arguments, for every start
        self.dir = bench.tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)
        held = []
        for _ in range(2):  # hold both at once so they differ
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        self.ports = {no: s.getsockname()[1] for no, s in enumerate(held, 1)}
        for s in held:
            s.close()
        self.info = self.dir / "tracker_info.txt"
        self.info.write_text("".join(f"127.0.0.1:{self.ports[no]}\n" for no in (1, 2)))
        self.procs = {}
        self.frozen = set()

    def log_path(self, no):
        return self.dir / f"tracker-{no}.log"

    def logs(self):
        return [self.log_path(no) for no in (1, 2) if self.log_path(no).exists()]

    def start(self, no):
        """Starts (or restarts, on the same data dir) tracker `no`; returns once it listens."""
        logp = self.log_path(no)
        with open(logp, "ab") as f:
            f.write(f"=== bench: start trackerd {no}\n".encode())
        p = self.bench.procs.spawn(
            [self.bench.bin("trackerd"), self.info, no, "--data-dir", self.dir / f"tracker-{no}",
             *LOCAL_RATES, *self.extra],
            logp, self.dir, self.bench.env, stdin=subprocess.PIPE,
        )
        self.procs[no] = p
        deadline = time.monotonic() + 20
        while not tcp_accepts(self.ports[no]):
            if p.poll() is not None:
                raise BenchError(f"trackerd {no} exited with {p.returncode}", [logp])
            if time.monotonic() > deadline:
                raise BenchError(f"trackerd {no} does not listen on {self.ports[no]} after 20 s",
                                 [logp])
            time.sleep(0.01)

    def alive(self, no):
        p = self.procs.get(no)
        return p is not None and p.poll() is None

    def signal(self, no, sig):
        os.killpg(self.procs[no].pid, sig)
        if sig == signal.SIGSTOP:
            self.frozen.add(no)
        elif sig == signal.SIGCONT:
            self.frozen.discard(no)
        elif sig == signal.SIGKILL:
            self.frozen.discard(no)
            self.procs[no].wait(10)

    def status(self, no, timeout=5.0):
        """Sends `status` to tracker `no`'s stdin and returns its answer, parsed."""
        p, logp = self.procs[no], self.log_path(no)
        offset = logp.stat().st_size
        try:
            p.stdin.write(b"status\n")
            p.stdin.flush()
        except OSError as e:
            raise BenchError(f"cannot send `status` to trackerd {no}: {e}", [logp])
        deadline = time.monotonic() + timeout
        while True:
            with open(logp, "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", "replace")
            for line in text.split("\n")[:-1]:  # complete lines only
                m = STATUS_RE.match(line.strip())
                if m:
                    lag = re.search(r"lag (\d+)", m[5])
                    return {"role": m[1], "epoch": int(m[2]), "leader": int(m[3]),
                            "last_seq": int(m[4]), "replication": m[5],
                            "lag": int(lag[1]) if lag else None, "line": m[0]}
            if p.poll() is not None:
                raise BenchError(f"trackerd {no} exited with {p.returncode}", [logp])
            if time.monotonic() > deadline:
                raise BenchError(f"trackerd {no} did not answer `status` within {timeout} s",
                                 [logp])
            time.sleep(0.01)

    def wait_synced(self, timeout=30.0):
        """Waits until one tracker is primary with the standby attached and acknowledged up to
        its last record (`lag 0`), and the other is the standby following it at the same
        epoch and log position. Returns the primary's number."""
        deadline = time.monotonic() + timeout
        while True:
            st = {no: self.status(no) for no in (1, 2)
                  if self.alive(no) and no not in self.frozen}
            primaries = [no for no, s in st.items() if s["role"] == "primary"]
            if len(st) == 2 and len(primaries) == 1:
                pno = primaries[0]
                pri, sby = st[pno], st[3 - pno]
                if ("standby attached" in pri["replication"] and pri["lag"] == 0
                        and sby["role"] == "standby" and "following" in sby["replication"]
                        and sby["epoch"] == pri["epoch"] and sby["last_seq"] == pri["last_seq"]):
                    return pno
            if time.monotonic() > deadline:
                seen = "; ".join(f"trackerd {no}: {s['line']}" for no, s in sorted(st.items()))
                raise BenchError(f"the trackers did not settle as primary + caught-up standby "
                                 f"within {timeout:.0f} s ({seen or 'none running'})", self.logs())
            time.sleep(0.05)

    def wait_alone(self, no, timeout=10.0):
        """Waits until tracker `no` is primary and knows it has no standby."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.status(no)
            if s["role"] == "primary" and "no standby attached" in s["replication"]:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"trackerd {no} still says `{s['line']}` {timeout:.0f} s after "
                                 f"the standby was killed", self.logs())
            time.sleep(0.05)

    def logged_after(self, no, text, since):
        """Seconds from `since` (time.time()) to the first line of tracker `no`'s log that
        contains `text` and is stamped at or after `since`; None when there is none."""
        try:
            lines = self.log_path(no).read_text(errors="replace").splitlines()
        except OSError:
            return None
        for line in lines:
            m = LOG_TIME_RE.match(line)
            if not m or text not in line:
                continue
            stamp = calendar.timegm(time.strptime(m[1], "%Y-%m-%dT%H:%M:%S")) + float(m[2] or 0)
            if stamp >= since - 0.001:
                return stamp - since
        return None

    def stop_all(self):
        """SIGTERM to both at once (one after the other, the standby would take over)."""
        for no in list(self.frozen):
            self.signal(no, signal.SIGCONT)
        for p in self.procs.values():
            if p.poll() is None:
                killpg(p, signal.SIGTERM)
        for no, p in self.procs.items():
            if p.poll() is None and not self.bench.procs.stop(p, timeout=10):
                self.bench.warn(f"trackerd {no} of {self.dir.name} did not exit within 10 s of "
                                f"SIGTERM (killed)")
