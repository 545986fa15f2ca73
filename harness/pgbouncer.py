"""A real PgBouncer (Debian's package) on a free port of 127.0.0.1, in front of the
PostgreSQL on 127.0.0.1:5432, with its usual settings: for the suite behind a pooler
(scripts/test-pgbouncer.sh) and the tests of what a pooler changes (tests/topology/)."""

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.servers import free_port

PGBOUNCER = "/usr/sbin/pgbouncer"


class PgBouncer:
    """`pool_mode` transaction or session; `ignored` startup parameters (extra_float_digits
    is what its users usually put there; psycopg does not send it, JDBC does)."""

    def __init__(
        self,
        pool_mode: str = "transaction",
        ignored: str = "extra_float_digits",
        server: str = "127.0.0.1:5432",
        pool_size: int = 20,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.port = free_port()
        host, port = server.rsplit(":", 1)
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={host} port={port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = trust\nauth_file = {self.dir / 'users.txt'}\n"
            f"pool_mode = {pool_mode}\nignore_startup_parameters = {ignored}\n"
            f"default_pool_size = {pool_size}\nmax_client_conn = 1000\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\n"
        )
        command = [PGBOUNCER, str(self.dir / "pgbouncer.ini")]
        if os.getuid() == 0:  # (it refuses to run as root: as PostgreSQL's own user)
            owner = pwd.getpwnam("postgres")
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            command[1:1] = ["-u", "postgres"]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start: {self.log()}") from None
                time.sleep(0.05)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "PgBouncer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main() -> None:
    """`python -m harness.pgbouncer DATABASE COMMAND...`: COMMAND runs with
    DATABASE_URL through a transaction-pooling PgBouncer and DATABASE_LISTEN_URL straight
    to PostgreSQL, as docs/deployment.md tells a deployment behind one."""
    database, *command = sys.argv[1:]
    with PgBouncer() as bouncer:
        env = {
            **os.environ,
            "DATABASE_URL": bouncer.url(database),
            "DATABASE_LISTEN_URL": f"postgresql://postgres@127.0.0.1:5432/{database}",
        }
        print(f"== through PgBouncer in transaction mode on 127.0.0.1:{bouncer.port}", flush=True)
        returncode = subprocess.run(command, env=env).returncode
    sys.exit(returncode)


if __name__ == "__main__":
    main()
