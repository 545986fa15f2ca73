"""Real servers on loopback for the tests, the end-to-end suite and the benchmark:
nginx with the deployed site, gunicorn, a service's first backend (servers.py), a
throwaway CA for https backends (tls.py), a PgBouncer (pgbouncer.py) and PostgreSQL
clusters of their own, a primary and its standby (clusters.py). Not shipped with the
service (setup.cfg packages only applications_api); run from the repository's root
(pytest does; `python -m bench.run`), so `harness` imports without touching sys.path."""
