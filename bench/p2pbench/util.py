"""Constants, the two exceptions, logging, sizes, and small file, socket and /proc helpers that
every other module uses."""

import argparse
import hashlib
import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
RESULTS = REPO / "bench" / "results.md"
KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
POLL = 0.05  # seconds between two show_downloads polls
PIECE = 512 * KiB
GROUP = "bench"
CASES = "abcdefghijklm"


class BenchError(Exception):
    """A case failed; `logs` are the files whose tails explain why."""

    def __init__(self, message, logs=()):
        super().__init__(message)
        self.logs = list(logs)


class Skip(Exception):
    """A case cannot run here (a tool is missing)."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_size(text):
    """`1G`, `64M`, `512K`, `1000`: powers of 1024, like p2pd's --upload-limit."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": KiB, "M": MiB, "G": GiB}.get(t[-1:], 1)
    num = t[:-1] if t[-1:] in "KMG" else t
    try:
        value = int(float(num) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 1G, 64M, 512K)")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


def human(n):
    if n >= GiB and n % GiB == 0:
        return f"{n // GiB} GiB"
    if n >= MiB and n % MiB == 0:
        return f"{n // MiB} MiB"
    return f"{n / MiB:.1f} MiB"


def size_arg(n):
    """`n` as a command line argument: 1G, 64M, 512K or bytes."""
    for unit, mult in (("G", GiB), ("M", MiB), ("K", KiB)):
        if n % mult == 0:
            return f"{n // mult}{unit}"
    return str(n)


def tail(path, lines=40):
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return f"(cannot read {path}: {e})"
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def sha1_file(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(4 * MiB)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_listening(port):
    """True when something listens on TCP `port` (read from /proc, without connecting, so a
    one-shot listener such as `socat TCP-LISTEN` is not consumed)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                return True
    return False


def tcp_accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def lo_tx_bytes():
    """Bytes sent on the loopback interface so far, by everyone; -1 when unknown."""
    try:
        return int(Path("/sys/class/net/lo/statistics/tx_bytes").read_text())
    except (OSError, ValueError):
        return -1
