"""More request threads than server connections: the API through one PgBouncer in
transaction mode, beside the same servers straight to PostgreSQL, in the same run.

    .venv/bin/python -m bench.topology [--duration 10] [--rounds 3]

Creates a fresh database, migrates and seeds it (bench/run.py's helpers), then starts
two sets of `--servers` gunicorn servers, each with the shipped gunicorn.conf.py and its
defaults (2 workers x 8 threads):

- pooled: DATABASE_URL through Debian's PgBouncer (harness/pgbouncer.py: pool_mode
  transaction, its usual settings, default_pool_size `--pool-size`), DATABASE_LISTEN_URL
  straight to PostgreSQL, as docs/deployment.md tells a deployment behind a pooler;
- direct: DATABASE_URL straight to PostgreSQL.

Each scenario runs both sets in turn, `--rounds` times (the order swapped every round),
so each pair shares the noise of its moment on this shared machine. A run is one wrk
per server, all at once (`--connections` each). While they run, a sampler counts the
bench database's backends in pg_stat_activity, each attributed to whoever holds its
client end (a pooled server's worker, the PgBouncer, a direct server's worker).
"""

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from bench.run import Server, flask, median, recreate_database, seed, wrk_together
from harness.clusters import VERSION, Cluster
from harness.pgbouncer import PgBouncer

SCENARIOS = [("retrieve", "retrieve.lua"), ("create", "create.lua")]
ROWS = 2000
PATHS = ("pooled", "direct")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each path per scenario")
    parser.add_argument("--servers", type=int, default=4, help="gunicorn servers per path")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections per server")
    parser.add_argument("--pool-size", type=int, default=20, help="PgBouncer's default_pool_size")
    parser.add_argument(
        "--admin-url",
        help="a PostgreSQL to use (default: a cluster of its own, with Debian's settings)",
    )
    parser.add_argument("--database", default="applications_topology")
    return parser.parse_args()


def parent_pid(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


class Backends:
    """Samples the database's backends every 0.2 s, each attributed by the process that
    holds its client end (`ss` on PostgreSQL's port); keeps each group's peak per label."""

    def __init__(self, admin_url, database, owners, bouncer):
        self.admin_url, self.database = admin_url, database
        self.owners = owners  # gunicorn master pid -> "pooled" or "direct"
        self.bouncer = bouncer
        self.port = psycopg.conninfo.conninfo_to_dict(admin_url).get("port", "5432")
        self.label = None
        self.peaks = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _group(self, pid):
        if pid == self.bouncer.process.pid:
            return "pgbouncer"
        with contextlib.suppress(OSError):
            return f"{self.owners.get(parent_pid(pid), 'other')} feeds/requests"
        return "other"

    def sample(self, conn):
        ports = conn.execute(
            "SELECT client_port FROM pg_stat_activity "
            "WHERE datname = %s AND backend_type = 'client backend'",
            (self.database,),
        ).fetchall()
        owner = self.owners_by_port()
        counts = dict.fromkeys(
            ["pgbouncer", "pooled feeds/requests", "direct feeds/requests", "other"], 0
        )
        for (port,) in ports:
            counts[self._group(owner[port]) if port in owner else "other"] += 1
        clients = subprocess.run(
            ["ss", "-Htn", "state", "established", f"( sport = :{self.bouncer.port} )"],
            capture_output=True,
            text=True,
        ).stdout
        counts["pooled"] = counts["pgbouncer"] + counts["pooled feeds/requests"]
        counts["direct"] = counts["direct feeds/requests"]
        counts["pgbouncer clients"] = len(clients.splitlines())
        return counts

    def owners_by_port(self):
        listing = subprocess.run(
            ["ss", "-Htnp", "state", "established", f"( dport = :{self.port} )"],
            capture_output=True,
            text=True,
        ).stdout
        return {
            int(port): int(pid)
            for port, pid in re.findall(
                r":(\d+)\s+\S+:\d+\s+users:\(\(\"[^\"]*\",pid=(\d+)", listing
            )
        }

    def _run(self):
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self.done.wait(0.2):
                counts = self.sample(conn)
                peaks = self.peaks.setdefault(self.label, {})
                for group, count in counts.items():
                    peaks[group] = max(peaks.get(group, 0), count)

    def stop(self):
        self.done.set()
        self.thread.join()


def together(results):
    """One path's run: the wrk runs of its servers summed; p99 the highest of them (a
    bound on the p99 of all its requests)."""
    return {
        "rps": sum(r["rps"] for r in results),
        "requests": sum(r["requests"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "socket_errors": sum(r["socket_errors"] for r in results),
        "p50": max(r["p50"] for r in results),
        "p99": max(r["p99"] for r in results),
        "splits": [r["split"] for r in results],
    }


def start_servers(count, env, folder, name, shipped=True):
    with contextlib.ExitStack() as held:  # (held open together: distinct ports)
        probes = [held.enter_context(socket.create_server(("127.0.0.1", 0))) for _ in range(count)]
        ports = [probe.getsockname()[1] for probe in probes]

    def start(number):
        log = folder / f"{name}-{number}.log"
        return Server("wsgi:app", ports[number], env, shipped=shipped, log=log)

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(start, n) for n in range(count)]
    started = [future.result() for future in futures if not future.exception()]
    failed = [error for future in futures if (error := future.exception()) is not None]
    if failed:
        for server in started:
            server.stop()
        raise failed[0]
    return started


def failures(folder, limit=10):
    """The first lines of the servers' logs about an error answer, to find its cause."""
    found = []
    for log in sorted(folder.glob("*.log")):
        for line in log.read_text().splitlines():
            if re.search(r'"status": [45]\d\d|Traceback|ERROR|Error', line):
                found.append(f"{log.name}: {line[:300]}")
                if len(found) >= limit:
                    return found
    return found


def main():
    args = parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    stack = contextlib.ExitStack()
    try:
        postgres = "127.0.0.1:5432"
        if not args.admin_url:
            # Its own cluster: a shared one has others' sessions besides.
            cluster = Cluster(f"bench_topology_{os.getpid()}")
            stack.callback(cluster.drop)
            cluster.create()
            # Room for both paths at once (about 100 backends: PostgreSQL's default
            # max_connections) and the bench's own sessions.
            config = Path("/etc/postgresql") / VERSION / cluster.name / "postgresql.conf"
            config.write_text(config.read_text() + "max_connections = 200\n")
            cluster.start()
            args.admin_url, postgres = cluster.url(), cluster.address
        direct_url = recreate_database(args.admin_url, args.database)
        folder = Path(tempfile.mkdtemp(prefix="bench-topology-"))
        base = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GUNICORN_", "DATABASE_", "PROMETHEUS_"))
        }
        base |= {"DATABASE_URL": direct_url, "BENCH_ROWS": str(ROWS)}
        stack.callback(drop_database, args.admin_url, args.database)
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        flask(base, "db", "upgrade")
        base["BENCH_TOKEN"] = flask(base, "create-token", "bench", "--staff")
        seed(direct_url, ROWS)
        bouncer = stack.enter_context(PgBouncer(server=postgres, pool_size=args.pool_size))
        pooled_env = {
            **base,
            "DATABASE_URL": bouncer.url(args.database),
            "DATABASE_LISTEN_URL": direct_url,
        }
        sets = {
            "pooled": start_servers(args.servers, pooled_env, folder, "pooled"),
            "direct": start_servers(args.servers, base, folder, "direct"),
        }
        for servers in sets.values():
            for server in servers:
                stack.callback(server.stop)
        owners = {s.proc.pid: name for name, servers in sets.items() for s in servers}
        backends = Backends(args.admin_url, args.database, owners, bouncer)
        stack.callback(backends.stop)
        results = run_scenarios(args, base, sets, backends)
        backends.stop()
        report(args, results, backends.peaks)
        if any(run["errors"] or run["socket_errors"] for runs in results.values() for run in runs):
            print("\nerror answers or unanswered requests; the servers' logs say:")
            for line in failures(folder):
                print(f"  {line}")
            sys.exit(1)
    finally:
        stack.close()


def drop_database(admin_url, name):
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def splits(run):
    return " ".join("/".join(map(str, split)) for split in run["splits"])


def run_scenarios(args, env, sets, backends):
    """(scenario, path) -> its runs, a warm-up of each path first (counted for errors)."""
    results: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for scenario, script in SCENARIOS:
        backends.label = scenario
        for round_number in range(-1, args.rounds):
            order = PATHS if round_number % 2 == 0 else PATHS[::-1]
            for path in order:
                warm_up = round_number < 0
                run = together(
                    wrk_together(
                        sets[path],
                        "",
                        argparse.Namespace(
                            connections=args.connections,
                            duration=2 if warm_up else args.duration,
                        ),
                        env,
                        script,
                        threads=1,
                        attempts=3,
                    )
                )
                key = (scenario, path, "warm-up") if warm_up else (scenario, path)
                results.setdefault(key, []).append(run)
                print(
                    f"  {scenario}, {path}{', warm-up' if warm_up else ''}: "
                    f"{run['rps']:.0f} req/s, p99 {run['p99']:.1f} ms, "
                    f"{run['errors']} non-2xx, {run['socket_errors']} socket errors, "
                    f"connections per worker {splits(run)}",
                    flush=True,
                )
    return results


def report(args, results, peaks):
    threads = args.servers * 2 * 8
    print(
        f"\n{args.servers} servers x 2 workers x 8 threads a path ({threads} request threads), "
        f"wrk {args.connections} connections a server; PgBouncer default_pool_size "
        f"{args.pool_size}; {args.rounds} rounds of {args.duration} s"
    )
    print(
        f"{'scenario':<10} {'path':<7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'non-2xx':>7} {'socket':>6} {'peak backends':>13}  rounds' req/s"
    )
    for scenario, _ in SCENARIOS:
        runs = {path: results[(scenario, path)] for path in PATHS}
        for path in PATHS:
            middle = median(runs[path], key=lambda run: run["rps"])
            everything = runs[path] + results[(scenario, path, "warm-up")]
            errors = sum(run["errors"] for run in everything)
            broken = sum(run["socket_errors"] for run in everything)
            each = ", ".join(f"{run['rps']:.0f}" for run in runs[path])
            print(
                f"{scenario:<10} {path:<7} {middle['rps']:>8.0f} {middle['p50']:>8.2f} "
                f"{middle['p99']:>8.2f} {errors:>7} {broken:>6} "
                f"{peaks.get(scenario, {}).get(path, 0):>13}  {each}"
            )
        ratios = [
            pooled["rps"] / direct["rps"]
            for pooled, direct in zip(runs["pooled"], runs["direct"], strict=True)
        ]
        p99s = [
            pooled["p99"] / direct["p99"]
            for pooled, direct in zip(runs["pooled"], runs["direct"], strict=True)
        ]
        print(
            f"{scenario:<10} pooled/direct: req/s {100 * median(ratios):.0f}% "
            f"({', '.join(f'{100 * r:.0f}%' for r in ratios)}), "
            f"p99 {median(p99s):.2f}x ({', '.join(f'{r:.2f}' for r in p99s)})"
        )
    for scenario, _ in SCENARIOS:
        seen = peaks.get(scenario, {})
        print(
            f"{scenario} peak backends: "
            + ", ".join(f"{group} {count}" for group, count in seen.items())
        )


if __name__ == "__main__":
    main()
