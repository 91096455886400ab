"""What every cluster of tools/clusters shares: a context manager that stops
what started (also when starting failed) and removes its work directory, and
the scratch directory a drill runs in."""

import os
import shutil
import tempfile


class Cluster:
    """Subclasses set ``workdir`` and define ``start()`` (returning self) and ``stop()``."""

    def __enter__(self):
        try:
            return self.start()
        except Exception:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def in_scratch_dir(prefix, run, *args):
    """``run(*args, tmp)`` in a fresh directory under /var/tmp (0755: PostgreSQL
    runs as postgres below it), removed afterwards; returns what ``run`` returns."""
    tmp = tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")
    os.chmod(tmp, 0o755)
    try:
        return run(*args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
