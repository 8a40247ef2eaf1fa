"""The runner's pieces that need no Kafka: the native thread limit in worker threads."""

import asyncio
import os

import threadpoolctl
from sklearn.ensemble import HistGradientBoostingClassifier  # loads scikit-learn's OpenMP
from tideline import service


def _openmp_threads() -> list[int]:
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "openmp"]


def test_work_in_a_worker_thread_keeps_the_process_s_native_thread_limit() -> None:
    assert HistGradientBoostingClassifier  # its OpenMP runtime is loaded
    with threadpoolctl.threadpool_limits(1):  # as `setup` limits the main thread
        assert set(_openmp_threads()) == {1}
        # a plain worker thread does not inherit OpenMP's per-thread limit...
        plain = asyncio.run(asyncio.to_thread(_openmp_threads))
        limited = asyncio.run(service.to_thread(_openmp_threads))
    assert set(limited) == {1}
    # ...but OpenMP's default, one a core: what made a drift run's fit slow on a busy machine
    assert set(plain) == {len(os.sched_getaffinity(0))}
