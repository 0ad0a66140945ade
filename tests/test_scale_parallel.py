"""Parallel work through joblib (local cores) and joblib's Dask backend (``[parallel]``).

The Dask tests start a LocalCluster inside the test process (threads, no network) and are
skipped when ``dask[distributed]`` is not installed.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest
from joblib import Parallel, delayed

from ppeval.config import Config
from ppeval.errors import ConfigError
from ppeval.estimate import subgroup_effects, subgroup_effects_many
from ppeval.estimate._data import Design
from ppeval.parallel import ParallelSettings, effective_n_jobs, parallel_backend, parallel_map


def _square(x: int) -> int:
    return x * x


def _where(_: int) -> str:
    """The Dask worker running the task (raises outside a Dask worker)."""
    from distributed import get_worker

    return get_worker().address


def test_settings_come_from_the_config_section():
    cfg = Config.from_dict({"data": {"extract_date": "2023-12-31"}, "parallel": {"n_jobs": 2}})
    assert ParallelSettings.from_config(cfg) == ParallelSettings(n_jobs=2, dask_scheduler=None)
    default = Config.from_dict({"data": {"extract_date": "2023-12-31"}})
    assert ParallelSettings.from_config(default) == ParallelSettings(n_jobs=-1, dask_scheduler=None)
    assert ParallelSettings.from_config({"n_jobs": 3, "dask_scheduler": "tcp://h:8786"}).dask_scheduler == "tcp://h:8786"
    with pytest.raises(ConfigError, match="non-zero integer"):
        ParallelSettings(n_jobs=0)
    with pytest.raises(ConfigError, match="dask_scheduler is empty"):
        ParallelSettings(dask_scheduler=" ")


def test_local_backend_uses_all_cores_by_default():
    cores = effective_n_jobs(-1)
    assert cores == len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores >= 1
    with parallel_backend() as n:
        assert n == cores
        assert Parallel()(delayed(_square)(i) for i in range(6)) == [0, 1, 4, 9, 16, 25]
    with parallel_backend({"parallel": {"n_jobs": 2}}) as n:
        assert n == 2
        pids = Parallel()(delayed(os.getpid)() for _ in range(8))
    assert os.getpid() not in pids  # worker processes, not this one
    assert parallel_map(_square, [3, 4], n_jobs=1) == [9, 16]
    assert parallel_map(_square, range(5), config={"parallel": {"n_jobs": 2}}) == [0, 1, 4, 9, 16]


def test_dask_backend_runs_tasks_on_the_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        workers = set(cluster.scheduler_info["workers"])
        cfg = {"parallel": {"n_jobs": 1, "dask_scheduler": cluster.scheduler_address}}
        with parallel_backend(cfg) as n:
            assert n == 2  # the cluster's worker threads, not n_jobs
            where = Parallel()(delayed(_where)(i) for i in range(8))
        assert set(where) <= workers and len(where) == 8
        assert parallel_map(_square, range(10), config=cfg) == [i * i for i in range(10)]


def test_dask_errors_are_config_errors(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setenv("PPEVAL_DASK_TIMEOUT", "1s")
    with pytest.raises(ConfigError, match="cannot be reached"):
        with parallel_backend(dask_scheduler="tcp://127.0.0.1:9"):
            pass
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # as if Dask were not installed
    with pytest.raises(ConfigError, match=r'pip install "dask\[distributed\]"'):
        with parallel_backend(dask_scheduler="tcp://127.0.0.1:9"):
            pass


def _subgroup_design(n: int = 3000, seed: int = 4) -> tuple[Design, np.ndarray]:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "sex": rng.choice(["female", "male"], n),
        "age_band": rng.choice(["under 1", "1 to 5", "6 to 11"], n),
        "county": rng.choice(["A", "B", "C", "D"], n),
        "rare": np.where(np.arange(n) == 0, "only_one", "common"),
    })
    treated = np.arange(n) % 2 == 0
    y = (rng.random(n) < np.where(treated, 0.45, 0.35)).astype(float)
    cluster = np.arange(n) // 2  # matched pairs
    return Design(df, treated, np.ones(n), cluster, "matched set", False), y


def test_subgroup_fits_through_joblib_and_dask_equal_serial_fits():
    design, y = _subgroup_design()
    by = ["sex", "age_band", "county", "rare"]
    serial, skipped = subgroup_effects_many(design, by, y=y, outcome="reunified_12m")
    assert skipped == {"rare": "subgroup rare='only_one' lacks treated or comparison units"}
    assert serial["subgroup"].tolist() == ["sex"] * 2 + ["age_band"] * 3 + ["county"] * 4
    expected = pd.concat([subgroup_effects(design, b, y=y, outcome="reunified_12m") for b in by[:3]], ignore_index=True)
    pd.testing.assert_frame_equal(serial, expected)
    local, _ = subgroup_effects_many(design, by, y=y, outcome="reunified_12m", parallel={"parallel": {"n_jobs": 2}})
    pd.testing.assert_frame_equal(local, serial)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        on_dask, skipped_dask = subgroup_effects_many(
            design, by, y=y, outcome="reunified_12m", parallel={"dask_scheduler": cluster.scheduler_address})
    pd.testing.assert_frame_equal(on_dask, serial)
    assert skipped_dask == skipped
    # the numbers themselves: risk differences near the simulated 0.10 in each level
    assert serial["estimate"].between(-0.05, 0.25).all()
    assert serial["interaction_df"].tolist() == [1] * 2 + [2] * 3 + [3] * 4
