"""The processes the harness starts: each the leader of a process group of its own, stopped
with SIGTERM then SIGKILL, all killed by `Procs.cleanup` on exit, error or Ctrl-C; numbers read
from /proc/<pid>; and the p2pd that p2pctl may have autostarted."""

import os
import signal
import subprocess
import time
from pathlib import Path

from .util import BenchError, log


def killpg(p, sig):
    """`sig` to the process group of `p`; nothing when it is gone."""
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Procs:
    """Every process the harness starts, each the leader of its own process group."""

    def __init__(self):
        self.all = []

    def spawn(self, argv, log_path, cwd, env, stdin=subprocess.DEVNULL, stdout=None):
        logf = open(log_path, "ab")
        try:
            p = subprocess.Popen(
                [str(a) for a in argv],
                stdin=stdin,
                stdout=stdout if stdout is not None else logf,
                stderr=logf,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        finally:
            logf.close()
        p.log_path = Path(log_path)
        self.all.append(p)
        return p

    def stop(self, p, timeout=10.0):
        """SIGTERM to the group, then SIGKILL after `timeout`. Returns False when it had to
        kill."""
        if p.poll() is not None:
            killpg(p, signal.SIGKILL)  # stragglers of an exited leader's group
            return True
        killpg(p, signal.SIGTERM)
        try:
            p.wait(timeout)
            clean = True
        except subprocess.TimeoutExpired:
            clean = False
        killpg(p, signal.SIGKILL)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        return clean

    def cleanup(self):
        for p in self.all:
            if p.poll() is None:
                killpg(p, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in self.all:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.all:
            killpg(p, signal.SIGKILL)
            try:
                p.wait(2)
            except subprocess.TimeoutExpired:
                log(f"pid {p.pid} did not die after SIGKILL")


def proc_field(pid, file, field):
    """A numeric field of /proc/<pid>/<file> (`VmHWM` of status is in kB; `wchar` of io in
    bytes)."""
    for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == field:
            return int(value.split()[0])
    raise BenchError(f"/proc/{pid}/{file} has no {field}")


def kill_autostarted(tmp, warn):
    """A p2pd that p2pctl started by itself (ours had died) writes its pid beside the socket;
    kill it if it is one of ours (its command line or environment names `tmp`)."""
    for pidfile in tmp.glob("*/run/p2pd.pid"):
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            continue
        if pid > 1 and str(tmp) in cmdline + environ:
            warn(f"a p2pd (pid {pid}) was autostarted by p2pctl; killed it")
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3, utime 14 and stime 15 (1-based, man proc).
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
