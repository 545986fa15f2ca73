"""PostgreSQL 15 clusters of a test's own, on free ports of 127.0.0.1, made with Debian's
tools (postgresql-common): a primary and a streaming standby of it, for the failover test
(tests/topology/test_failover.py). They are dropped at the end, whatever happened; the
suite's own cluster (15/main) is never touched."""

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from harness.servers import free_port

VERSION = "15"
REFUSE = "host all all 127.0.0.1/32 reject"


def _run(*command: str) -> None:
    # (as root: Debian's tools switch to the clusters' owner, postgres, themselves)
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)


class Cluster:
    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.data = Path("/var/lib/postgresql") / VERSION / name
        self.log = Path("/var/log/postgresql") / f"postgresql-{VERSION}-{name}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.address}/{database}"

    def create(self) -> None:
        # --no-sync: a throwaway cluster need not wait for initdb's files to reach the disk
        _run(
            "pg_createcluster", VERSION, self.name, "-p", str(self.port),
            "--", "--auth=trust", "--no-sync",
        )  # fmt: skip

    def ctl(self, *action: str) -> None:
        _run("pg_ctlcluster", VERSION, self.name, *action)

    def start(self) -> None:
        self.ctl("start")

    def stop_immediately(self) -> None:
        """As if its machine lost power, for its clients: no shutdown checkpoint, every
        connection cut, and what it had not sent its standby stays with it."""
        self.ctl("stop", "-m", "immediate")

    def promote(self) -> None:
        self.ctl("promote")  # (pg_ctl promote waits until it accepts writes)

    def refuse_connections(self, refuse: bool) -> None:
        """Refuse (or take again) every new TCP connection: pg_hba.conf, reloaded at once
        (SIGHUP to the postmaster; a standby reloads it too). Open sessions go on."""
        hba = Path("/etc/postgresql") / VERSION / self.name / "pg_hba.conf"
        rules = [line for line in hba.read_text().splitlines() if line != REFUSE]
        hba.write_text("\n".join([REFUSE, *rules] if refuse else rules) + "\n")
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGHUP)

    def drop(self) -> None:
        subprocess.run(
            ["pg_dropcluster", "--stop", VERSION, self.name], capture_output=True, timeout=120
        )

    def execute(
        self, statement: str, parameters: Sequence[Any] = (), database: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=3) as conn:
            cursor = conn.execute(statement, parameters)
            return cursor.fetchall() if cursor.description else []


@contextmanager
def primary_and_standby(synchronous: bool = False) -> Iterator[tuple[Cluster, Cluster]]:
    """A primary and a standby streaming from it (pg_basebackup -R), both running; with
    `synchronous`, a commit on the primary waits until the standby has it on disk."""
    tag = f"t{os.getpid()}_{secrets.token_hex(3)}"
    primary, standby = Cluster(f"{tag}_a"), Cluster(f"{tag}_b")
    try:
        primary.create()
        primary.start()
        standby.create()
        shutil.rmtree(standby.data)  # (the copy goes into an empty data directory)
        standby.data.mkdir(mode=0o700)
        shutil.chown(standby.data, "postgres", "postgres")
        _run(
            "runuser", "-u", "postgres", "--", "pg_basebackup", "-h", "127.0.0.1",
            "-p", str(primary.port), "-U", "postgres", "-D", str(standby.data), "-R",
        )  # fmt: skip
        standby.start()
        # The walreceiver names itself after the standby's cluster_name.
        name = standby.execute("SHOW cluster_name")[0][0]
        if synchronous:
            # ALTER SYSTEM after the copy: the promoted standby must not wait for a
            # standby of its own that nobody made.
            primary.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            primary.execute("SELECT pg_reload_conf()")
        expected = "sync" if synchronous else "async"
        deadline = time.monotonic() + 15
        while primary.execute(
            "SELECT application_name, state, sync_state FROM pg_stat_replication"
        ) != [(name, "streaming", expected)]:
            assert time.monotonic() < deadline, f"{standby.name} does not stream ({expected})"
            time.sleep(0.05)
        yield primary, standby
    finally:
        for cluster in (standby, primary):
            cluster.drop()
