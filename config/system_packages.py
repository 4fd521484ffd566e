"""The Debian packages some features need besides Python, installed when missing.

The README's two set-up commands run this before starting the server or the tests, so
a fresh machine with only Python gets them without a step by hand:

- ``server``: Debian's ``fonts-noto-cjk``, the CJK font posters are set in (found by
  path, ``POSTER_FONT_PATH``);
- ``tests``: that font (the pages' Chinese in the browser tests' screenshots) and
  Debian's ``chromium``, which Playwright drives for every page a person uses.

``apt-get`` runs as root, or through ``sudo -n`` when that needs no password; the
package lists are refreshed only when a first try fails (a new machine has none). A
machine where neither works still starts: the command says what to install, the
posters answer 503 ``poster_font_missing`` and the browser tests skip.

    python -m config.system_packages server|tests
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from config.settings import BASE

CHROMIUM = Path("/usr/bin/chromium")

# What each package provides, as this project looks for it.
PROVIDES: dict[str, Callable[[], bool]] = {
    "fonts-noto-cjk": lambda: Path(BASE["POSTER_FONT_PATH"]).is_file(),
    "chromium": CHROMIUM.is_file,
}
NEEDED = {"server": ("fonts-noto-cjk",), "tests": ("fonts-noto-cjk", "chromium")}


def missing(purpose: str) -> list[str]:
    """The packages ``purpose`` needs that this machine lacks."""
    return [package for package in NEEDED[purpose] if not PROVIDES[package]()]


def _as_root() -> list[str] | None:
    """The prefix that runs a command as root here, or None when nothing can."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"],
                                               capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def install(packages: list[str]) -> bool:
    """apt-get the packages; True when they are there afterwards."""
    prefix = _as_root()
    if prefix is None or not shutil.which("apt-get"):
        return False
    command = [*prefix, "apt-get", "install", "-y", "-q", *packages]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(command, env=env).returncode != 0:
        subprocess.run([*prefix, "apt-get", "update", "-q"], env=env)
        subprocess.run(command, env=env)
    return all(PROVIDES[package]() for package in packages)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in NEEDED:
        print(f"usage: python -m config.system_packages {'|'.join(NEEDED)}", file=sys.stderr)
        return 2
    wanted = missing(argv[0])
    if wanted and not install(wanted):
        print(f"warning: could not install {' '.join(wanted)}; install them with "
              f"'sudo apt-get install {' '.join(wanted)}' (see the README)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
