"""Few-shot heads fit tiny matrices: the BLAS runs them on one thread."""

from __future__ import annotations

from threadpoolctl import threadpool_limits


class single_thread:
    """Tiny matrices (few-shot heads) run far faster on one thread than with the BLAS's worker
    threads, whose wake-up cost dominates (16× on a busy 2-core machine); the caller's setting
    comes back afterwards. numpy only: the heads never touch torch."""

    def __enter__(self):
        self.blas = threadpool_limits(1)

    def __exit__(self, *exc):
        self.blas.restore_original_limits()
