"""Benchmark the Applications API under gunicorn on PostgreSQL, against a raw-WSGI ceiling.

    .venv/bin/python -m bench.run [--duration 10] [--connections 16]

Creates a fresh PostgreSQL database, migrates it, seeds applications, starts the API and
the ceiling app (bench/ceiling.py) under the same gunicorn settings (-w 2 -k gthread
--threads 8), drives each scenario with wrk, and prints req/s, p50/p99 latency and each
figure as a share of the ceiling measured in the same run. It also prints how the
requests split between the two workers, since an unbalanced split halves throughput.
"""

import argparse
import collections
import contextlib
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import requests

from bench.upstream_nginx import (
    accepted_connections,
    keepalive_proxy_nginx,
    plain_proxy_nginx,
    static_nginx,
)
from harness.servers import ROOT, Nginx, deployed_site, register_backend, wait_until_up
from harness.tls import server_certificate, throwaway_ca

BIN = Path(sys.executable).parent
LUA = ROOT / "bench" / "lua"
GUNICORN = ["-c", "bench/gunicorn.conf.py", "-w", "2", "-k", "gthread", "--threads", "8"]
WORDS = ["north", "blue", "fast", "prime", "urban", "smart", "green", "local", "mega", "open"]
# "shop" names only the first SELECTIVE_ROWS applications, so the selective filter
# matches the same rows at every table size; "market" names 2% of all rows.
SELECTIVE_ROWS = 40
NOUNS = [
    "market",
    "cargo",
    "invoice",
    "store",
    "market",
    "portal",
    "bridge",
    "hub",
    "sync",
    "desk",
    "panel",
    "feed",
    "board",
    "stream",
    "pay",
    "deal",
    "link",
    "box",
    "point",
    "gate",
    "base",
    "cart",
    "lens",
    "mail",
    "map",
    "port",
    "pulse",
    "ring",
    "scan",
    "shelf",
    "spot",
    "tag",
    "track",
    "trade",
    "vault",
    "view",
    "wave",
    "wing",
    "yard",
    "zone",
    "bay",
    "cloud",
    "core",
    "dock",
    "flow",
    "grid",
    "kit",
    "lab",
    "loop",
    "nest",
]
TYPES = ["extension", "sales-channel", "commerce", "oms", "integration", "cargo_extension"]
FILTERED = "/api/v1/applications/?name__icontains=shop&is_active=true&limit=50"
BROAD = "/api/v1/applications/?name__icontains=market&is_active=true&limit=50"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="applications_bench")
    parser.add_argument("--large", type=int, default=100_000, help="rows for the scaling run")
    parser.add_argument("--only", choices=["api", "proxy"], help="run one group of scenarios")
    parser.add_argument(
        "--rounds", type=int, default=3, help="API and floor runs, in turn, per API scenario"
    )
    return parser.parse_args()


def recreate_database(admin_url, name):
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def flask(env, *args):
    result = subprocess.run(
        [BIN / "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def seed(database_url, total):
    """Insert applications until there are `total`, with names from a fixed vocabulary."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        (have,) = conn.execute("SELECT count(*) FROM applications").fetchone() or (0,)
        rng = random.Random(have)
        rows = []
        for n in range(have, total):
            noun = "shop" if n < SELECTIVE_ROWS else rng.choice(NOUNS)
            name = f"{rng.choice(WORDS)} {noun} {n}"
            config = f'{{"web_url": "https://app{n}.example.com/", "visible_type": "empty"}}'
            rows.append((name, rng.choice(TYPES), config, n % 10 != 0, f"REL-{n}"))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO applications (name, application_type, config, is_active, "
                "is_visible, is_proxy_available, related_application_id, created_date, "
                "modified_date) VALUES (%s, %s, %s, %s, false, false, %s, now(), now())",
                rows,
            )
        conn.commit()
        # Settle the trigram index's pending list and the statistics, as autovacuum
        # would on a running system.
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE applications")
        # Flush the bulk insert now, not during the next scenario (a p99 spike).
        conn.execute("CHECKPOINT")


class Server:
    """gunicorn with the benchmark's settings, or with `shipped=True` the production
    gunicorn.conf.py and its defaults (GUNICORN_BIND set to `port`); its log (stderr)
    to the file `log` if given."""

    def __init__(self, app, port, env, shipped=False, log=None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                sys.exit(f"port {port} is taken: is another benchmark running?")
        command = [BIN / "gunicorn", *GUNICORN, "--bind", f"127.0.0.1:{port}", app]
        if shipped:
            command = [BIN / "gunicorn", "-c", "gunicorn.conf.py", app]
            env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
        with open(log, "w") if log else contextlib.nullcontext(subprocess.DEVNULL) as stderr:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )
        try:
            wait_until_up(f"http://127.0.0.1:{port}/", self.proc)
        except BaseException:
            self.proc.kill()  # never leave a server holding the port behind
            raise

    def connection_split(self):
        """Established connections each worker process holds on the server port."""
        listing = subprocess.run(
            ["ss", "-Htnp", "state", "established", f"( sport = :{self.port} )"],
            capture_output=True,
            text=True,
        ).stdout
        counts = collections.Counter(re.findall(r"pid=(\d+)", listing))
        return sorted(counts.values(), reverse=True) + [0] * (2 - len(counts))

    def worker_rss_kib(self):
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return sum(rss_kib(int(pid)) for pid in children.split())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def found(pattern, text, flags=0):
    """re.search's match, failing with the text it looked in."""
    match = re.search(pattern, text, flags)
    if match is None:
        raise RuntimeError(f"no {pattern!r} in: {text[-2000:]}")
    return match


def rss_kib(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(found(r"VmRSS:\s+(\d+) kB", status).group(1))


class Direct:
    """A wrk target that is not gunicorn (nginx): no worker split to sample."""

    def __init__(self, port):
        self.port = port

    def connection_split(self):
        return [0, 0]


def to_ms(value):
    parsed = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    assert parsed, value
    number, unit = parsed.groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def wrk(server, path, args, env, script=None):
    """Run wrk against `server` (anything with .port and .connection_split())."""
    return wrk_together([server], path, args, env, script)[0]


def wrk_together(servers, path, args, env, script=None, threads=2, attempts=10):
    """Run one wrk per server, all at once, `args.connections` connections each; the
    result of each.

    wrk opens its keep-alive connections at the start, and gunicorn's workers race to
    accept them: a 16/0 split halves throughput. So the splits are sampled after a
    second, and a run with any server unbalanced is stopped and started again (up to
    `attempts` times).
    """
    command = ["wrk", "-t", str(threads), "-c", str(args.connections)]
    command += ["-d", f"{args.duration}s", "--latency"]
    if script:
        command += ["-s", str(LUA / script)]
    else:
        command += ["-H", f"Authorization: Token {env['BENCH_TOKEN']}"]
    for attempt in range(attempts):
        procs = [
            subprocess.Popen(
                [*command, f"http://127.0.0.1:{server.port}{path}"],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for server in servers
        ]
        time.sleep(1)
        with ThreadPoolExecutor(len(servers)) as pool:  # (ss takes a second on a busy machine)
            splits = list(pool.map(lambda server: server.connection_split(), servers))
        if all(split[-1] * 3 >= split[0] for split in splits) or attempt == attempts - 1:
            break
        for proc in procs:
            proc.terminate()
            proc.wait()
        time.sleep(2)  # let the workers finish the stopped run's requests first
    results = []
    for proc, split in zip(procs, splits, strict=True):
        output, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"wrk failed: {output}")
        results.append(wrk_figures(output, split))
    return results


def wrk_figures(output, split):
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    # requests never answered (wrk's timeout is 2 s), connections refused or cut
    broken = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    requests_sent = int(found(r"(\d+) requests in", output).group(1))
    rps = float(found(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return {
        # answered, not refused: an error answer is a failure, not throughput
        "rps": rps * (requests_sent - errors) / max(requests_sent, 1),
        "requests": requests_sent,
        "p50": to_ms(found(r"^\s+50%\s+(\S+)", output, re.M).group(1)),
        "p99": to_ms(found(r"^\s+99%\s+(\S+)", output, re.M).group(1)),
        "errors": errors,
        "socket_errors": sum(int(n) for n in broken.groups()) if broken else 0,
        "split": split,
    }


class Report:
    """Collects the figures; prints them against the ceiling at the end.

    The ceiling is measured first and last, and the higher run is the baseline: a noisy
    neighbour slowing one ceiling run must not flatter the API's shares. A scenario the
    floor (bench/floor.py) also ran shows the API's req/s as a share of the floor's.
    """

    def __init__(self):
        self.rows, self.lines, self.ceilings, self.floors = [], [], [], {}

    def add(self, name, result):
        self.rows.append((name, result))
        print(f"  {name}: {result['rps']:.0f} req/s", flush=True)

    def note(self, line):
        self.lines.append(line)
        print(f"  {line}", flush=True)

    def floor(self, name, result, ratios=None):
        """`ratios`: API/floor of each round, when they ran in turn (paired())."""
        self.floors[name] = (result, ratios)
        print(f"  {name}, floor: {result['rps']:.0f} req/s", flush=True)

    def ceiling(self, result):
        self.ceilings.append(result)
        self.add(f"ceiling, run {len(self.ceilings)}", result)

    def print(self):
        baseline = max(run["rps"] for run in self.ceilings)
        print(
            f"\n{'scenario':<30} {'req/s':>9} {'ceiling':>9} {'p50 ms':>9} {'p99 ms':>9} "
            f"{'non-2xx':>7}  connections per worker"
        )
        for name, result in self.rows:
            share = 100 * result["rps"] / baseline
            split = "/".join(str(n) for n in result["split"]) if any(result["split"]) else "-"
            print(
                f"{name:<30} {result['rps']:>9.0f} {share:>8.1f}% {result['p50']:>9.2f} "
                f"{result['p99']:>9.2f} {result['errors']:>7}  {split}"
            )
        if self.floors:
            print(
                f"\n{'scenario':<30} {'floor req/s':>11} {'floor p99':>9} {'API/floor':>9}"
                "  each round"
            )
            api = dict(self.rows)
            for name, (floor, ratios) in self.floors.items():
                ratios = ratios or [api[name]["rps"] / floor["rps"]]
                rounds = ", ".join(f"{100 * ratio:.0f}%" for ratio in ratios)
                print(
                    f"{name:<30} {floor['rps']:>11.0f} {floor['p99']:>9.2f} "
                    f"{100 * median(ratios):>8.0f}%  {rounds}"
                )
        print(f"(ceiling baseline: {baseline:.0f} req/s, the higher of {len(self.ceilings)} runs)")
        for line in self.lines:
            print(line)


def transfer_rate(method, url, headers, size, repeat=3):
    """MB/s of `repeat` streamed transfers of `size` bytes (download or upload)."""
    started = time.monotonic()
    for _ in range(repeat):
        if method == "GET":
            with requests.get(url, headers=headers, stream=True, timeout=120) as response:
                got = sum(len(c) for c in response.iter_content(1 << 20))
                assert response.status_code == 200 and got == size, (response.status_code, got)
        else:
            chunks = (b"x" * (1 << 20) for _ in range(size >> 20))
            response = requests.put(url, data=chunks, headers=headers, timeout=120)
            assert response.status_code == 204, response.status_code
    return repeat * size / (1 << 20) / (time.monotonic() - started)


def concurrent_downloads(url, headers, count=20, at_once=4):
    """(complete, failed, seconds) of `count` 10 MiB downloads, `at_once` at a time: a
    refusal or a short body is a failure."""

    def download(_):
        try:
            with requests.get(url, headers=headers, stream=True, timeout=120) as response:
                got = sum(len(c) for c in response.iter_content(1 << 20))
                return response.status_code == 200 and got == 10 << 20
        except requests.RequestException:
            return False

    started = time.monotonic()
    with ThreadPoolExecutor(at_once) as pool:
        results = list(pool.map(download, range(count)))
    return results.count(True), results.count(False), time.monotonic() - started


def median_rates(transfers, rounds=7):
    """label → median MB/s over `rounds` rounds, each running every transfer once in turn,
    so the direct and proxied figures share the machine's noise."""
    samples = collections.defaultdict(list)
    for _ in range(rounds):
        for label, (method, url, headers) in transfers.items():
            samples[label].append(transfer_rate(method, url, headers, 10 << 20, repeat=2))
    return {label: sorted(rates)[len(rates) // 2] for label, rates in samples.items()}


def peak_rss_growth_kib(server, download):
    """Largest rise of the workers' summed RSS while `download()` runs."""
    baseline = server.worker_rss_kib()
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak.append(server.worker_rss_kib())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        download()
    finally:
        done.set()
        sampler.join()
    return max(peak) - baseline


def proxy_scenarios(args, env, api, floor, report):
    """app_proxy on both transfers: the embedded one (gunicorn alone) and the deployment
    (deploy/nginx.conf in front of gunicorn with APP_PROXY_TRANSFER=nginx); the floor
    forwards the same GET itself."""
    static = static_nginx(8107, {"1k.bin": 1024, "10m.bin": 10 << 20, "200m.bin": 200 << 20})
    decider = Server(
        "wsgi:app", 8104, {**env, "APP_PROXY_TRANSFER": "nginx", "TRUSTED_PROXIES": "1"}
    )
    front = Nginx(deployed_site(8105, 8104), 8105, ready_path="/api/v1/healthcheck/")
    plain = plain_proxy_nginx(8106, 8107)
    try:
        auth = {"Authorization": f"Token {env['BENCH_TOKEN']}"}
        app_id = register_backend(
            f"http://127.0.0.1:{api.port}", auth, static.url + "/", "bench upstream"
        )
        proxy = f"/api/v1/app_proxy/{app_id}"
        report.add("direct: 1 KiB GET (nginx)", wrk(Direct(8107), "/1k.bin", args, env))
        # Each transfer in turn with the floor's own forwarding of the same GET (the
        # minimal raw-WSGI proxy), round by round, as the API scenarios are.
        for name, server in (("embedded proxy", api), ("nginx proxy", Direct(8105))):
            paired(report, f"{name}: 1 KiB GET", server, floor, f"{proxy}/1k.bin", args, env, None)
        https_scenarios(args, env, decider, report)
        rates = median_rates(
            {
                "direct: 10 MiB download": ("GET", f"{static.url}/10m.bin", {}),
                "plain nginx proxy: 10 MiB download": ("GET", f"{plain.url}/10m.bin", {}),
                "embedded proxy: 10 MiB download": ("GET", f"{api.url}{proxy}/10m.bin", auth),
                "nginx proxy: 10 MiB download": ("GET", f"{front.url}{proxy}/10m.bin", auth),
                "direct: 10 MiB upload": ("PUT", f"{static.url}/upload", {}),
                "plain nginx proxy: 10 MiB upload": ("PUT", f"{plain.url}/upload", {}),
                "embedded proxy: 10 MiB upload": ("PUT", f"{api.url}{proxy}/upload", auth),
                "nginx proxy: 10 MiB upload": ("PUT", f"{front.url}{proxy}/upload", auth),
            }
        )
        for label, rate in rates.items():
            report.note(f"{label}: {rate:.0f} MB/s (median of 7)")
        for label, base in (("embedded", api.url), ("nginx", front.url)):
            done, failed, seconds = concurrent_downloads(f"{base}{proxy}/10m.bin", auth)
            report.note(
                f"{label} proxy: 20 x 10 MiB downloads, 4 at a time: {done} complete, "
                f"{failed} failed, {seconds:.1f} s"
            )
        for way in ("download", "upload"):
            direct = rates[f"direct: 10 MiB {way}"]
            shares = ", ".join(
                f"{kind} {rates[f'{kind} proxy: 10 MiB {way}'] / direct:.2f}"
                for kind in ("embedded", "nginx", "plain nginx")
            )
            report.note(f"10 MiB {way}, share of nginx direct: {shares}")
        for label, server, base in (("embedded", api, api.url), ("nginx", decider, front.url)):
            growth = peak_rss_growth_kib(
                server,
                lambda base=base: transfer_rate(
                    "GET", f"{base}{proxy}/200m.bin", auth, 200 << 20, repeat=1
                ),
            )
            report.note(
                f"{label} proxy: 200 MB download: gunicorn workers' RSS rose by "
                f"{growth / 1024:.1f} MB"
            )
    finally:
        plain.stop()
        front.stop()
        decider.stop()
        static.stop()


def https_scenarios(args, env, decider, report):
    """A 1 KiB GET from an https backend (a throwaway CA): through the nginx transfer
    (deploy/nginx.conf in front of `decider`), and through nginx's own proxy_pass with
    upstream keep-alive to the same backend, the floor of a proxy hop."""
    with contextlib.ExitStack() as servers:
        folder = Path(tempfile.mkdtemp(prefix="bench-tls-"))
        servers.callback(shutil.rmtree, folder, ignore_errors=True)
        ca = throwaway_ca(folder)
        certificate = server_certificate(folder, "backend", "DNS:localhost")
        backend = static_nginx(8108, {"1k.bin": 1024}, tls=certificate)
        servers.callback(backend.stop)
        servers.callback(keepalive_proxy_nginx(8109, 8108, "localhost", ca).stop)
        site = deployed_site(8110, decider.port, proxy_ssl_trusted_certificate=ca)
        servers.callback(Nginx(site, 8110, ready_path="/api/v1/healthcheck/").stop)
        auth = {"Authorization": f"Token {env['BENCH_TOKEN']}"}
        app_id = register_backend(decider.url, auth, "https://localhost:8108/", "https backend")
        path = f"/api/v1/app_proxy/{app_id}/1k.bin"
        before = accepted_connections(backend, ca)
        through = wrk(Direct(8110), path, args, env)
        opened = accepted_connections(backend, ca) - before - 1
        floor = wrk(Direct(8109), "/1k.bin", args, env)
        decisions = wrk(decider, path, args, env)  # gunicorn's 204s, without nginx
    report.add("nginx proxy: https 1 KiB GET", through)
    report.add("nginx proxy_pass: https 1 KiB GET", floor)
    report.add("its decision alone (204)", decisions)
    report.note(
        f"https 1 KiB GET through the nginx transfer: {through['rps'] / floor['rps']:.0%} "
        f"of nginx proxy_pass with keep-alive, {through['rps'] / decisions['rps']:.0%} of "
        f"its decision alone; {through['requests']} GETs opened {opened} TLS connections"
    )


def paired(report, name, api, floor, path, args, env, script):
    """The API and the floor (the same database work, bench/floor.py) in turn, --rounds
    times, so that each pair shares the machine's noise of the moment: reports each
    one's median run, and the median of the rounds' API/floor ratios."""
    rounds = [
        (wrk(api, path, args, env, script), wrk(floor, path, args, env, script))
        for _ in range(args.rounds)
    ]
    report.add(name, median([api_run for api_run, _ in rounds], key=lambda run: run["rps"]))
    report.floor(
        name,
        median([floor_run for _, floor_run in rounds], key=lambda run: run["rps"]),
        [api_run["rps"] / floor_run["rps"] for api_run, floor_run in rounds],
    )


def median(values, key=None):
    """The middle value (the lower middle of an even count), whole: a run keeps its
    p50, p99 and split together."""
    ordered = sorted(values, key=key)
    return ordered[(len(ordered) - 1) // 2]


def api_scenarios(args, env, api, floor, database_url, report):
    seed(database_url, 1000)
    small = wrk(api, FILTERED, args, env)
    small_broad = wrk(api, BROAD, args, env)
    report.add("filtered list, 1,000 rows", small)
    report.add("broad filter, 1,000 rows", small_broad)
    seed(database_url, 2000)
    for name, path, script in [
        ("retrieve", "", "retrieve.lua"),
        ("list limit=50", "/api/v1/applications/?limit=50", None),
        ("filtered list", FILTERED, None),
        ("patch", "", "patch.lua"),
        ("patch, one hot row", "", "patch_hot.lua"),
        ("create", "", "create.lua"),
    ]:
        paired(report, name, api, floor, path, args, env, script)
    seed(database_url, args.large)
    large = wrk(api, FILTERED, args, env)
    report.add(f"filtered list, {args.large:,} rows", large)
    large_broad = wrk(api, BROAD, args, env)
    report.add(f"broad filter, {args.large:,} rows", large_broad)
    report.note(
        f"filtered-list p50 at {args.large:,} rows / at 1,000 rows: "
        f"{large['p50'] / small['p50']:.2f}x (the same {SELECTIVE_ROWS} names match); "
        f"broad filter (2% of rows match): {large_broad['p50'] / small_broad['p50']:.2f}x"
    )


def main():
    args = parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install wrk nginx-light")
    database_url = recreate_database(args.admin_url, args.database)
    # The settings a user gets, INFO logging included (one JSON line per request, as
    # deployed), the bulkhead too: its 503s count as failures, never as throughput.
    env = {**os.environ, "DATABASE_URL": database_url, "BENCH_ROWS": "2000"}
    flask(env, "db", "upgrade")
    env["BENCH_TOKEN"] = flask(env, "create-token", "bench", "--staff")

    api = Server("wsgi:app", 8101, env)
    ceiling = Server("bench.ceiling:app", 8102, env)
    floor = Server("bench.floor:app", 8103, env)
    report = Report()
    try:
        report.ceiling(wrk(ceiling, "/", args, env))
        if args.only != "api":
            proxy_scenarios(args, env, api, floor, report)
        if args.only != "proxy":
            api_scenarios(args, env, api, floor, database_url, report)
        report.ceiling(wrk(ceiling, "/", args, env))
        report.print()
    finally:
        api.stop()
        ceiling.stop()
        floor.stop()


if __name__ == "__main__":
    main()
