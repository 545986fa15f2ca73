"""What tests/ and e2e/ share: the app's test settings (app.py), a live server in a
thread (live_server.py), backends that record or misbehave (upstream.py, tcp_tools.py), a
backend's signature verifier (backend_verifier.py). Real servers on loopback that the
benchmark starts too live in harness/.

Run everything from the repository's root (pytest does), so `tests.support` imports
without touching sys.path."""
