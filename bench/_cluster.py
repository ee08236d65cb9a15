"""Private, throwaway PostgreSQL clusters for the load test (``load.py``) and the
replication tests (``scripts/replication``, ``tests/test_replication.py``).

The load test restarts its database mid-run, so it never touches the shared server: it
makes a cluster of its own with ``initdb`` in a temporary folder, on a port of its own
on 127.0.0.1, and removes it afterwards. PostgreSQL (and PgBouncer) refuse to run as root,
so when the test runs as root (CI) their programs run as the ``postgres`` OS user through
``runuser``.

``Replication`` adds a streaming standby of that cluster, made by ``pg_basebackup -R``, and
PgBouncer in transaction mode in front of the primary, each on a free port of 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
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
    # Exactly UTC, so Django never sends a session-level SET TIME ZONE (through PgBouncer).
    "timezone=UTC",
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


def as_postgres(program: list[str]) -> list[str]:
    """``program`` as the ``postgres`` OS user when run as root (PostgreSQL refuses root)."""
    return ["runuser", "-u", OS_USER, "--", *program] if os.geteuid() == 0 else program


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
        program = as_postgres([str(PG_BIN / command[0]), *command[1:]])
        subprocess.run(program, check=True, timeout=timeout, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        """Create the cluster and its database, and start it."""
        if os.geteuid() == 0:
            shutil.chown(self.folder, user=OS_USER)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        self.start_server()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", DATABASE)

    def start_server(self) -> None:
        """``pg_ctl start`` of the cluster made before (after ``stop``, say)."""
        settings = " ".join(f"-c {option}" for option in SERVER_OPTIONS)
        self._run(
            "pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.log),
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 {settings}",
        )  # fmt: skip

    def sql(self, statement: str, database: str = "postgres") -> str:
        """The first column of ``statement``'s rows (psql, unaligned), for the tests' set-up."""
        program = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                   "postgres", "-d", database, "-XAtqc", statement]  # fmt: skip
        done = subprocess.run(program, check=True, timeout=60, capture_output=True, text=True)
        return done.stdout.strip()

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


class Standby(PrivateCluster):
    """A hot standby of ``primary``: ``pg_basebackup -R`` (streaming, with its
    ``primary_conninfo`` and ``standby.signal``) into ``folder/data``, on its own port."""

    def __init__(self, folder: Path, port: int, primary: PrivateCluster) -> None:
        super().__init__(folder, port)
        self.primary = primary

    def start(self) -> None:
        """Copy the primary (running) and start streaming from it."""
        if os.geteuid() == 0:
            shutil.chown(self.folder, user=OS_USER)
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U",
                  "postgres", "-D", str(self.data), "-R", "-X", "stream", "--no-sync",
                  "-c", "fast")  # fmt: skip
        # Short waits, so that a restarted primary is streamed from again within a second.
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.write("wal_retrieve_retry_interval = '200ms'\nhot_standby_feedback = on\n")
        self.start_server()

    def set_apply_delay(self, milliseconds: int) -> None:
        """``recovery_min_apply_delay``: replay each commit this long after the primary made it
        (0: at once), so that tests see a standby that certainly lags."""
        self.sql(f"ALTER SYSTEM SET recovery_min_apply_delay = {int(milliseconds)}")
        self.sql("SELECT pg_reload_conf()")

    def restart(self) -> None:
        self._run("pg_ctl", "restart", "-w", "-m", "fast", "-D", str(self.data),
                  "-l", str(self.log))  # fmt: skip


class Pooler:
    """PgBouncer 1.18 (Debian's) in transaction mode in front of ``primary``, any database."""

    def __init__(self, folder: Path, port: int, primary: PrivateCluster) -> None:
        self.folder = folder
        self.port = port
        self.primary = primary
        self.config = folder / "pgbouncer.ini"
        self.pidfile = folder / "pgbouncer.pid"
        self.log = folder / "pgbouncer.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        """Write the configuration and start PgBouncer (daemonised; ``pidfile`` holds its pid)."""
        if shutil.which("pgbouncer") is None:
            raise SystemExit("pgbouncer is not installed (apt-get install pgbouncer)")
        (self.folder / "userlist.txt").write_text('"postgres" ""\n')
        # server_login_retry: after the primary comes back, serve again within a second;
        # query_wait_timeout: a client waiting for a server that is away gets an error
        # instead of hanging (the app answers 503). Server-side prepared statements stay off
        # (1.18 cannot carry them: the settings prepare on the standby alone, docs/scaling.md).
        self.config.write_text(
            f"""[databases]
* = host=127.0.0.1 port={self.primary.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir = {self.folder}
auth_type = trust
auth_file = {self.folder / "userlist.txt"}
admin_users = postgres
pool_mode = transaction
max_client_conn = 400
default_pool_size = 20
server_login_retry = 1
query_wait_timeout = 10
server_connect_timeout = 3
ignore_startup_parameters = extra_float_digits
logfile = {self.log}
pidfile = {self.pidfile}
"""
        )
        if os.geteuid() == 0:
            for path in self.folder.iterdir():
                shutil.chown(path, user=OS_USER)
            shutil.chown(self.folder, user=OS_USER)
        subprocess.run(as_postgres(["pgbouncer", "-d", str(self.config)]), check=True, timeout=30)
        deadline = time.monotonic() + 15
        while not _listening(self.port):
            if time.monotonic() > deadline:
                raise SystemExit(f"PgBouncer did not start: see {self.log}")
            time.sleep(0.1)

    def setting(self, name: str) -> str:
        """A setting as the running PgBouncer reports it (its console's ``SHOW CONFIG``)."""
        program = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                   "postgres", "-d", "pgbouncer", "-XAtqc", "SHOW CONFIG"]  # fmt: skip
        done = subprocess.run(program, check=True, timeout=30, capture_output=True, text=True)
        for line in done.stdout.splitlines():
            key, value, *_ = line.split("|")
            if key == name:
                return value
        raise KeyError(name)

    def stop(self) -> None:
        """SIGTERM (immediate shutdown), and wait until it has gone."""
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Replication:
    """A primary, its streaming standby and PgBouncer in front of the primary, in ``folder``.

    ``describe()`` is what ``scripts/replication`` hands to the programs it runs (in
    ``COURSE_AUDIT_REPLICATION``, as JSON); ``from_description`` rebuilds the handles, so a
    test can stop and start each server.
    """

    def __init__(self, folder: Path, ports: tuple[int, int, int]) -> None:
        self.folder = folder
        primary_port, standby_port, pooler_port = ports
        for name in ("primary", "standby", "pooler"):
            (folder / name).mkdir(exist_ok=True)
        self.primary = PrivateCluster(folder / "primary", primary_port)
        self.standby = Standby(folder / "standby", standby_port, self.primary)
        self.pooler = Pooler(folder / "pooler", pooler_port, self.primary)

    @classmethod
    def with_free_ports(cls, folder: Path) -> Replication:
        ports: list[int] = []
        for preferred in (5441, 5442, 6441):
            port = free_port(preferred)
            while port in ports:
                port = free_port(0)
            ports.append(port)
        return cls(folder, (ports[0], ports[1], ports[2]))

    def start(self) -> None:
        """initdb and start the primary, copy it into the standby, start PgBouncer."""
        if os.geteuid() == 0:
            shutil.chown(self.folder, user=OS_USER)
        self.primary.start()
        self.standby.start()
        self.pooler.start()

    def stop(self) -> None:
        """Stop all three, whatever state each is in."""
        self.pooler.stop()
        self.standby.stop()
        self.primary.stop()

    def wait_for_standby(self, timeout: float = 30) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        target = self.primary.sql("SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + timeout
        while True:
            caught_up = self.standby.sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")
            if caught_up == "t":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby has not replayed {target}")
            time.sleep(0.1)

    def describe(self) -> str:
        return json.dumps(
            {
                "folder": str(self.folder),
                "ports": [self.primary.port, self.standby.port, self.pooler.port],
                "primary_url": self.primary.url,
                "standby_url": self.standby.url,
                "pooler_url": self.pooler.url,
            }
        )

    @classmethod
    def from_description(cls, text: str) -> Replication:
        described = json.loads(text)
        primary, standby, pooler = described["ports"]
        return cls(Path(described["folder"]), (primary, standby, pooler))
