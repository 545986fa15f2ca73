"""wsgi.py, the deployed entry point."""

import subprocess
import sys

from harness.servers import ROOT


def test_the_loaded_app_is_kept_out_of_full_garbage_collections(tmp_path):
    """What wsgi.py loads lives as long as the process: frozen (gc.freeze), so a full
    collection under load does not scan it with every thread of the worker waiting."""
    result = subprocess.run(
        [sys.executable, "-c", "import gc, wsgi; print(gc.get_freeze_count())"],
        cwd=ROOT,
        env={"DATABASE_URL": f"sqlite:///{tmp_path / 'applications.db'}", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(result.stdout) > 50_000  # (the app and its libraries: about 120,000)
