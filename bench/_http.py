"""HTTP throughput under a production server, against a trivial view on the same server.

gunicorn serves the demo project with the benchmark's URLconf (``bench.bench_settings``) on a
free port of 127.0.0.1: ``WORKERS`` processes of ``THREADS`` threads each (gthread, which
keeps connections alive), sized for a 2-core machine that also runs PostgreSQL and the
load generator. The load generator is bounded twice: ``CONCURRENCY`` keep-alive
connections share a fixed number of requests, and stop at a time limit even if some are
left. The server is stopped when the measurement ends, however it ends.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from bench._common import ROOT

WORKERS = 2
THREADS = 4
CONCURRENCY = 8
WARMUP_PER_CONNECTION = 5
SERVER_SETTINGS = (
    f"gunicorn on 127.0.0.1: {WORKERS} workers of {THREADS} threads (gthread), keep-alive 30 s"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def gunicorn(database_url: str) -> Iterator[tuple[str, int]]:
    """A running gunicorn; yields its (host, port) and stops it on the way out."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(WORKERS),
        "--worker-class",
        "gthread",
        "--threads",
        str(THREADS),
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
        "--chdir",
        str(ROOT),
        "auditlog_project.wsgi:application",
    ]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.bench_settings",
        "DATABASE_URL": database_url,
        "DEBUG": "0",
    }
    server = subprocess.Popen(command, env=env)
    try:
        _wait_until_serving("127.0.0.1", port, server)
        yield "127.0.0.1", port
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_serving(host: str, port: int, server: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with status {server.returncode}")
        try:
            connection = http.client.HTTPConnection(host, port, timeout=5)
            connection.request("GET", "/bench/trivial/")
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer within 60 s")


def load(
    address: tuple[str, int],
    path: str,
    *,
    headers: dict[str, str],
    total: int,
    seconds: float,
) -> dict[str, Any]:
    """``total`` GETs of ``path`` over ``CONCURRENCY`` keep-alive connections, stopping
    after ``seconds`` even if some are left; requests per second and latency."""
    tickets = itertools.count()
    latencies: list[list[float]] = [[] for _ in range(CONCURRENCY)]
    failures: list[str] = []
    clock = {"began": 0.0, "deadline": 0.0}

    def set_clock() -> None:  # run once, when every connection is warm
        clock["began"] = time.perf_counter()
        clock["deadline"] = clock["began"] + seconds

    start = threading.Barrier(CONCURRENCY, action=set_clock, timeout=60)

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection(*address, timeout=30)
        for _ in range(WARMUP_PER_CONNECTION):
            _get(connection, path, headers)
        start.wait()
        mine = latencies[index]
        while next(tickets) < total and time.perf_counter() < clock["deadline"]:
            began = time.perf_counter()
            status = _get(connection, path, headers)
            mine.append((time.perf_counter() - began) * 1000)
            if status != 200:
                failures.append(f"HTTP {status}")
                return
        connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - clock["began"]
    if failures:
        raise SystemExit(f"{path}: {failures[0]} under load")
    done = [latency for mine in latencies for latency in mine]
    return {
        "requests": len(done),
        "seconds": elapsed,
        "per_second": len(done) / elapsed,
        "p50_ms": statistics.median(done),
        "concurrency": CONCURRENCY,
    }


def _get(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> int:
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def before_api_per_second(args: Any, events: int) -> float:
    """The API's page one in requests per second as the code in ``args.before_tree``
    serves it: that code's own bench (its ``http`` section: its data, token, gunicorn and
    load generator, the settings above) on ``args.before_database_url``, which it loads
    with ``events`` events the first time."""
    import psycopg

    try:
        psycopg.connect(args.before_database_url, connect_timeout=5).close()
        loaded = True
    except psycopg.OperationalError:
        loaded = False
    with tempfile.TemporaryDirectory() as output:
        command = [
            sys.executable,
            "-m",
            "bench.suite",
            "--database-url",
            args.before_database_url,
            "--events",
            str(events),
            "--sections",
            "http",
            "--http-seconds",
            str(args.http_seconds),
            "--http-requests",
            str(args.http_requests),
            "--output-dir",
            output,
            *(["--reuse-data"] if loaded else []),
        ]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("DATABASE_URL", None)
        done = subprocess.run(
            command, cwd=args.before_tree, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"the code before (--before-tree) failed:\n{done.stderr[-2000:]}")
        with open(os.path.join(output, "benchmarks.json")) as report:
            results = json.load(report)["sections"]["http"]["results"]
    return float(results["API page one"]["per_second"])
