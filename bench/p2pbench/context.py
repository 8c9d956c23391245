"""`Bench`, what the cases share: the arguments, the temp dir, the binaries and the environment
they run with, the test files, the processes, the harness's trackers and seeders, and the rows
and numbers the cases record."""

import hashlib
import os

from .processes import Procs
from .util import MiB, human, log


class Bench:
    def __init__(self, args):
        self.args = args
        self.size = args.size
        self.qsize = max(args.size // 4, 1)
        self.rate = args.rate
        self.only = args.only
        self.procs = Procs()
        self.rows = {}  # case -> (label, time, throughput, note, met)
        self.results = {}  # case -> numbers other cases compare with
        self.warnings = []
        self.tmp = None  # the temp dir, made by the runner
        self.bins = None  # target/release, set by the runner
        self.env = None  # the environment of every process started, see make_env
        self.tools = {}  # reference tool -> path (None when missing), see tools.install
        self.trackers = []  # the harness's two trackerd, see cluster.start_trackers
        self.tracker_info = None
        self.seeders = {}  # i -> Daemon seed<i>, see cases.common

    def warn(self, msg):
        self.warnings.append(msg)
        log(f"warning: {msg}")

    def bin(self, name):
        return self.bins / name

    def row(self, case, label, secs=None, mibps=None, note="", met="–"):
        self.rows[case] = (label, secs, mibps, note, met)

    def make_env(self):
        """The environment of every process started: the caller's, without what would point
        p2pd, p2pctl or trackerd elsewhere, with HOME and the XDG dirs in the temp dir and the
        release binaries first on PATH."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("P2PD_SOCKET", "P2PD_STATE_DIR", "P2P_TRACKER_INFO", "STATE_DIRECTORY",
                            "JOURNAL_STREAM", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID",
                            "RUST_LOG", "RUST_BACKTRACE")
               and not k.lower().endswith("_proxy")}
        for sub in ("home", "xdg-state", "xdg-config", "xdg-runtime"):
            (self.tmp / sub).mkdir(mode=0o700, exist_ok=True)
        env.update(
            HOME=str(self.tmp / "home"),
            XDG_STATE_HOME=str(self.tmp / "xdg-state"),
            XDG_CONFIG_HOME=str(self.tmp / "xdg-config"),
            XDG_RUNTIME_DIR=str(self.tmp / "xdg-runtime"),
            PATH=f"{self.bins}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        return env

    def make_files(self):
        """Writes the random test files the selected cases need: <tmp>/files/bench.bin (`size`)
        and, for (e), quarter.bin; records their SHA-1."""
        self.big = self.tmp / "files" / "bench.bin"
        self.quarter = self.tmp / "files" / "quarter.bin"
        self.big.parent.mkdir()
        for path, size in ((self.big, self.size), (self.quarter, self.qsize)):
            if path == self.quarter and "e" not in self.only:
                continue
            if path == self.big and not set(self.only) & set("abcdfghk"):
                continue
            log(f"writing {human(size)} of random data to {path}")
            h = hashlib.sha1()
            with open(path, "wb") as f:
                left = size
                while left:
                    chunk = os.urandom(min(left, 8 * MiB))
                    f.write(chunk)
                    h.update(chunk)
                    left -= len(chunk)
            if path == self.big:
                self.big_sha1 = h.hexdigest()
            else:
                self.quarter_sha1 = h.hexdigest()
