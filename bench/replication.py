"""Run a command against a private primary, its streaming standby and PgBouncer.

Through ``scripts/replication`` (which makes the temporary folder and always removes it)::

    scripts/replication -- pytest -m replication --ds=tests.settings_replication ...

Starts the three servers of ``_cluster.Replication`` on free ports of 127.0.0.1, runs the
command with ``COURSE_AUDIT_REPLICATION`` (where the servers are, as JSON, for
``tests/settings_replication.py``) in its environment, stops them and exits with the
command's status.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._cluster import Replication

ENVIRONMENT = "COURSE_AUDIT_REPLICATION"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="an empty temporary folder")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    cluster = Replication.with_free_ports(args.workdir)
    started = time.monotonic()
    try:
        cluster.start()
        print(
            f"==> primary on 127.0.0.1:{cluster.primary.port}, standby on "
            f":{cluster.standby.port}, PgBouncer (transaction mode) on :{cluster.pooler.port} "
            f"({time.monotonic() - started:.1f} s)",
            flush=True,
        )
        environment = {**os.environ, ENVIRONMENT: cluster.describe()}
        return subprocess.run(command, env=environment, check=False).returncode
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
