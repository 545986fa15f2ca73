"""CPU instructions per request, API against the floor: a figure noise cannot move.

    .venv/bin/python -m bench.instructions [--database NAME] [retrieve list filtered ...]

Needs valgrind (apt-get install valgrind) and PostgreSQL as bench/run.py does. For each
scenario, the API (wsgi:app) and the floor (bench/floor.py) answer the same requests
in-process, as gunicorn calls them (the response closed, so the log line and metrics
count), once with 30 requests and once with 130, each under `valgrind --tool=callgrind`;
the difference over 100 is one request's instructions in this Python process (the
database server's work is not counted). The same inputs give the same count within about
1%, whatever else the machine is doing, where req/s moves by a tenth from run to run.
"""

import argparse
import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench.run import BIN, FILTERED, ROOT, flask, found, recreate_database, seed

SCENARIOS = ("retrieve", "list", "filtered", "patch", "create")
WARM, MEASURED = 30, 100


def requests_for(scenario, rng):
    """(method, path, body) of one request of `scenario`."""
    number = rng.randint(2, 2000)
    return {
        "retrieve": ("GET", f"/api/v1/applications/{number}/", None),
        "list": ("GET", "/api/v1/applications/?limit=50", None),
        "filtered": ("GET", FILTERED, None),
        "patch": ("PATCH", f"/api/v1/applications/{number}/", {"config": {"n": number}}),
        "create": (
            "POST",
            "/api/v1/applications/",
            {
                "name": "Bench app",
                "application_type": "extension",
                "config": {"web_url": "https://bench.example.com/"},
            },
        ),
    }[scenario]


def child(target, scenario, count):
    """Answer `count` requests of `scenario` with `target` (api or floor), in-process."""
    from werkzeug.test import EnvironBuilder

    app: Callable[..., Any]
    if target == "api":
        import logging

        from wsgi import app

        handler = logging.getLogger("applications_api").handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.stream = open(os.devnull, "w")
    else:
        from bench.floor import app
    rng = random.Random(1)
    headers = [("Authorization", f"Token {os.environ['BENCH_TOKEN']}")]
    for _ in range(count):
        method, path, body = requests_for(scenario, rng)
        data = json.dumps(body).encode() if body is not None else b""
        environ = EnvironBuilder(
            method=method, path=path, headers=headers, data=data, content_type="application/json"
        ).get_environ()
        environ["wsgi.input"] = io.BytesIO(data)
        answer = app(environ, lambda status, headers, exc_info=None: None)
        b"".join(answer)
        if hasattr(answer, "close"):
            answer.close()


def instructions(env, target, scenario, count):
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            BIN / "python",
            "-m",
            "bench.instructions",
            "--child",
            target,
            scenario,
            str(count),
        ],
        cwd=ROOT,
        env={**env, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(found(r"Collected : (\d+)", result.stderr).group(1))


def main():
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (all)")
    parser.add_argument("--database", default="applications_instructions")
    args = parser.parse_args()
    if unknown := set(args.scenarios) - set(SCENARIOS):
        parser.error(f"no such scenario: {', '.join(sorted(unknown))}")
    database_url = recreate_database("postgresql://postgres@127.0.0.1:5432/postgres", args.database)
    env = {**os.environ, "DATABASE_URL": database_url}
    flask(env, "db", "upgrade")
    env["BENCH_TOKEN"] = flask(env, "create-token", "bench", "--staff")
    seed(database_url, 2000)
    print(f"{'scenario':<10} {'API':>12} {'floor':>12} {'floor/API':>10}", flush=True)
    for scenario in args.scenarios or SCENARIOS:
        per_request = {}
        for target in ("api", "floor"):
            warm = instructions(env, target, scenario, WARM)
            measured = instructions(env, target, scenario, WARM + MEASURED)
            per_request[target] = (measured - warm) / MEASURED
        api, floor = per_request["api"], per_request["floor"]
        print(
            f"{scenario:<10} {api / 1e3:>11.0f}k {floor / 1e3:>11.0f}k {100 * floor / api:>9.0f}%",
            flush=True,
        )


if __name__ == "__main__":
    main()
