"""What the harness runs besides its own code: the release binaries (built with cargo) and the
reference tools (installed with apt-get when missing)."""

import os
import shutil
import subprocess
from pathlib import Path

from .util import REPO, Skip, log

# Reference tools: command -> Debian package, and the cases that need it.
TOOLS = {
    "socat": ("socat", "a"),
    "openssl": ("openssl", "afk"),
    "aria2c": ("aria2", "h"),
    "opentracker": ("opentracker", "h"),
    "mktorrent": ("mktorrent", "h"),
}


def build(no_build):
    """`cargo build --release --workspace` (unless `no_build`); returns the directory of the
    release binaries, target/release or $CARGO_TARGET_DIR/release, once it holds all three."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    bins = target / "release"
    if no_build:
        log("skipping the build (--no-build)")
    else:
        log("cargo build --release --workspace")
        r = subprocess.run(["cargo", "build", "--release", "--workspace"], cwd=REPO)
        if r.returncode != 0:
            raise SystemExit(f"bench: cargo build failed (exit {r.returncode})")
    for b in ("trackerd", "p2pd", "p2pctl"):
        if not (bins / b).is_file():
            raise SystemExit(f"bench: {bins / b} is missing; build the workspace")
    return bins


def install(only, no_install):
    """Installs the reference tools that the cases in `only` need and that are missing, with
    apt-get as root or through `sudo -n` (never with `no_install`). Returns command -> path
    (None when not available) for every tool needed."""
    tools = {}
    needed = [cmd for cmd, (_, cases) in TOOLS.items() if any(c in only for c in cases)]
    missing = [cmd for cmd in needed if shutil.which(cmd) is None]
    if missing and not no_install:
        apt = shutil.which("apt-get")
        sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
        if apt is None or sudo is None:
            log(f"cannot install {', '.join(missing)}: no apt-get, or not root and no sudo")
        else:
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            log("apt-get update")
            subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env)
            for cmd in missing:
                pkg = TOOLS[cmd][0]
                log(f"apt-get install {pkg}")
                r = subprocess.run(
                    sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", pkg],
                    env=env, stdout=subprocess.DEVNULL,
                )
                if r.returncode != 0:
                    log(f"cannot install {pkg} (exit {r.returncode})")
    for cmd in needed:
        tools[cmd] = shutil.which(cmd)
        if tools[cmd] is None:
            cases = ",".join(c for c in TOOLS[cmd][1] if c in only)
            log(f"{cmd} ({TOOLS[cmd][0]}) is not available: row(s) {cases} will be skipped")
    return tools


def need(tools, *cmds):
    """Raises Skip when one of `cmds` is not in `tools` (as returned by `install`)."""
    missing = [c for c in cmds if not tools.get(c)]
    if missing:
        raise Skip("skipped: " + ", ".join(f"{c} ({TOOLS[c][0]})" for c in missing)
                   + " not available")
