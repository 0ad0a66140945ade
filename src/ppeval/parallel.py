"""Parallel work through joblib: all local cores by default, a Dask cluster when configured.

ppeval has no scheduler of its own. Work that splits into independent tasks (the
replicates of a simulation study, bootstrap draws, one model per subgroup variable) is
handed to :class:`joblib.Parallel`, and this module only decides *which* joblib backend
runs it, from the config's ``[parallel]`` section:

.. code-block:: toml

    [parallel]
    n_jobs = -1                               # local worker processes; -1 = every core
    dask_scheduler = "tcp://10.0.0.5:8786"    # optional: run on this Dask cluster instead

With ``dask_scheduler`` set, tasks go to that cluster through joblib's ``dask`` backend
(``pip install "dask[distributed]"``); ``n_jobs`` is then ignored, because the cluster's
workers decide the parallelism. Without it, joblib's default ``loky`` process pool runs
``n_jobs`` workers.

Examples
--------
>>> from joblib import Parallel, delayed
>>> with parallel_backend({"parallel": {"n_jobs": 2}}) as n:
...     Parallel()(delayed(pow)(x, 2) for x in range(4)), n
([0, 1, 4, 9], 2)
>>> parallel_map(abs, [-1, -2, 3], n_jobs=1)
[1, 2, 3]
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ConfigError

__all__ = ["ParallelSettings", "effective_n_jobs", "parallel_backend", "parallel_map"]

T = TypeVar("T")
R = TypeVar("R")

_DASK_HINT = 'the [parallel] dask_scheduler setting needs Dask: pip install "dask[distributed]"'


@dataclass(frozen=True)
class ParallelSettings:
    """The ``[parallel]`` section: worker count and an optional Dask scheduler address.

    Attributes
    ----------
    n_jobs : int
        Local workers (joblib semantics: -1 = all cores, -2 = all but one, 1 = no pool).
    dask_scheduler : str or None
        Address of a Dask scheduler (``tcp://host:8786``, or a LocalCluster's address).

    Examples
    --------
    >>> ParallelSettings.from_config({"parallel": {"n_jobs": 2, "dask_scheduler": None}})
    ParallelSettings(n_jobs=2, dask_scheduler=None)
    >>> ParallelSettings.from_config(None)
    ParallelSettings(n_jobs=-1, dask_scheduler=None)
    """

    n_jobs: int = -1
    dask_scheduler: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, int) or self.n_jobs == 0:
            # joblib refuses 0 with a bare ValueError; say it in the config's terms
            raise ConfigError(f"config: parallel.n_jobs must be a non-zero integer (-1 = all cores), got {self.n_jobs!r}")
        if self.dask_scheduler is not None and not str(self.dask_scheduler).strip():
            raise ConfigError("config: parallel.dask_scheduler is empty; leave it out to use local cores")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ParallelSettings:
        """Read a :class:`~ppeval.config.Config`, a dict with a ``parallel`` key, or the section itself."""
        if config is None:
            return cls()
        section = config.get("parallel", config) if isinstance(config, Mapping) else {}
        section = section or {}
        return cls(n_jobs=section.get("n_jobs", -1), dask_scheduler=section.get("dask_scheduler") or None)


def effective_n_jobs(n_jobs: int = -1) -> int:
    """Workers that ``n_jobs`` means on this machine (-1 = the cores this process may use).

    Examples
    --------
    >>> effective_n_jobs(1)
    1
    >>> effective_n_jobs(-1) >= 1
    True
    """
    from joblib import effective_n_jobs as _joblib_effective

    return int(_joblib_effective(n_jobs))


@contextlib.contextmanager
def parallel_backend(
    config: Mapping[str, Any] | None = None,
    *,
    n_jobs: int | None = None,
    dask_scheduler: str | None = None,
    prefer: str | None = None,
) -> Iterator[int]:
    """Context in which :class:`joblib.Parallel` runs on the configured backend.

    Parameters
    ----------
    config : Config or mapping, optional
        A config (its ``[parallel]`` section is read) or the section itself.
    n_jobs, dask_scheduler : optional
        Override the config's values.
    prefer : {"processes", "threads"}, optional
        joblib's hint for the local backend (threads suit NumPy work that releases the
        GIL and avoid copying large arrays to worker processes). Ignored with Dask.

    Yields
    ------
    int
        The number of workers tasks are spread over (for a Dask cluster: its worker
        threads at the time of connecting).

    Raises
    ------
    ConfigError
        Dask is not installed, or the scheduler cannot be reached.

    Examples
    --------
    >>> from joblib import Parallel, delayed
    >>> with parallel_backend(n_jobs=1) as n:
    ...     Parallel()(delayed(len)(s) for s in ["ab", "c"]), n
    ([2, 1], 1)
    """
    base = ParallelSettings.from_config(config)
    settings = ParallelSettings(
        n_jobs=base.n_jobs if n_jobs is None else n_jobs,
        dask_scheduler=base.dask_scheduler if dask_scheduler is None else dask_scheduler,
    )
    import joblib

    if settings.dask_scheduler is None:
        with joblib.parallel_config(n_jobs=settings.n_jobs, prefer=prefer):
            yield effective_n_jobs(settings.n_jobs)
        return
    try:
        from dask.distributed import Client
    except ImportError as exc:
        raise ConfigError(_DASK_HINT) from exc
    try:
        # our own client (not the process-wide default) so that leaving the context closes
        # the connection; the cluster itself is the user's and stays up
        client = Client(settings.dask_scheduler, set_as_default=False, timeout=os.environ.get("PPEVAL_DASK_TIMEOUT", "10s"))
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"config: parallel.dask_scheduler {settings.dask_scheduler!r} cannot be reached: {exc}") from exc
    try:
        workers = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values())
        # n_jobs=-1: every worker thread of the cluster takes tasks
        with joblib.parallel_config(backend="dask", client=client, n_jobs=-1):
            yield max(workers, 1)
    finally:
        client.close()


def parallel_map(
    func: Callable[[T], R],
    items: Iterable[T],
    *,
    config: Mapping[str, Any] | None = None,
    n_jobs: int | None = None,
    dask_scheduler: str | None = None,
    prefer: str | None = None,
) -> list[R]:
    """``[func(x) for x in items]`` run through joblib on the configured backend, in order.

    ``func`` and the items must be picklable (a module-level function, not a lambda) for
    process and Dask workers.

    Examples
    --------
    >>> parallel_map(str.upper, ["a", "b"], config={"parallel": {"n_jobs": 1}})
    ['A', 'B']
    """
    from joblib import Parallel, delayed

    with parallel_backend(config, n_jobs=n_jobs, dask_scheduler=dask_scheduler, prefer=prefer):
        return list(Parallel()(delayed(func)(x) for x in items))
