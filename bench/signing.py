"""What signing a proxied request costs in-process (app_proxy/signing.py): µs per request
for each algorithm, with one key and with two (a rotation's grace period), for a
bodiless GET and a 1 KiB POST.

    .venv/bin/python -m bench.signing
"""

import time

from applications_api.app_proxy import signing

URL = "https://ext.example.com/api/orders/7?expand=items"
ROUNDS, REPEAT = 20_000, 5


def per_request(keys, body):
    best = float("inf")
    for _ in range(REPEAT):
        started = time.perf_counter()
        for _ in range(ROUNDS):
            signing.identity_headers(keys, "POST" if body else "GET", URL, 7, body)
        best = min(best, (time.perf_counter() - started) / ROUNDS)
    return best * 1e6


def main():
    for algorithm in signing.ALGORITHMS:
        one = signing.signing_key("bench-secret", "application-42", algorithm)
        two = [one, signing.signing_key("bench-secret", "application-42.v2", algorithm)]
        for label, body in (("GET, no body", b""), ("POST, 1 KiB", b"x" * 1024)):
            print(
                f"{algorithm:<12} {label:<13} one key {per_request([one], body):6.1f} µs, "
                f"two keys {per_request(two, body):6.1f} µs"
            )


if __name__ == "__main__":
    main()
