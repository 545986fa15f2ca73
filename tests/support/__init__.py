"""What tests/, e2e/ and bench/ share: the app's test settings (app.py), real servers on
loopback (servers.py, live_server.py), backends that record or misbehave (upstream.py,
tcp_tools.py) and a backend's signature verifier (backend_verifier.py).

Run everything from the repository's root (pytest does; `python -m bench.run`), so
`tests.support` imports without touching sys.path."""
