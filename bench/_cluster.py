"""A private, throwaway PostgreSQL cluster for the load test (``load.py``).

The load test restarts its database mid-run, so it never touches the shared server: it
makes a cluster of its own with ``initdb`` in a temporary folder, on a port of its own
on 127.0.0.1, and removes it afterwards. PostgreSQL refuses to run as root, so when the
test runs as root (CI) the cluster's programs run as the ``postgres`` OS user through
``runuser``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"
DATABASE = "course_audit_load"
# A throwaway cluster: durability buys nothing here, and the disk is shared. Commit times
# tell the load test which events had committed when a reader began a listing.
SERVER_OPTIONS = (
    "fsync=off",
    "full_page_writes=off",
    "max_connections=100",
    "track_commit_timestamp=on",
)


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens on it on 127.0.0.1, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise SystemExit("no free port on 127.0.0.1")


class PrivateCluster:
    """``initdb`` in ``folder/data``, served on ``127.0.0.1:port`` (its socket in ``folder``)."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "postgresql.log"
        self.port = port

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *command: str, timeout: float = 120) -> None:
        program = [str(PG_BIN / command[0]), *command[1:]]
        if os.geteuid() == 0:
            program = ["runuser", "-u", OS_USER, "--", *program]
        subprocess.run(program, check=True, timeout=timeout, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        """Create the cluster and its database, and start it."""
        if os.geteuid() == 0:
            shutil.chown(self.folder, user=OS_USER)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        settings = " ".join(f"-c {option}" for option in SERVER_OPTIONS)
        self._run(
            "pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.log),
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 {settings}",
        )  # fmt: skip
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", DATABASE)

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session is ended, the server comes back."""
        self._run("pg_ctl", "restart", "-w", "-m", "fast", "-D", str(self.data),
                  "-l", str(self.log))  # fmt: skip

    def stop(self) -> None:
        """Stop the server if it runs (fast, then immediate if that hangs)."""
        if not (self.data / "postmaster.pid").exists():
            return
        try:
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data), timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))
