"""Batch work over many recordings on Dask distributed: one task per item, every item tried.

Used by :func:`deepepil.ingest_many` and :func:`deepepil.ml.predict_many`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from deepepil.errors import DeepEpilError

__all__ = ["run_on_dask"]


def run_on_dask(task: Callable[..., Any], items: Sequence[Any], *args: Any, what: str, label: Callable[[Any], str] = str,
                scheduler_address: str | None = None, n_workers: int | None = None, progress: bool = True) -> list[Any]:
    """Run ``task(item, *args)`` for every item on Dask; return the results in the items' order.

    Parameters
    ----------
    task : callable
        A module-level function (it is pickled to the workers).
    items : sequence
        One task per item.
    *args
        Passed to every task after the item.
    what : str
        The progress bar's description and the verb in the error (``"ingest"``, ``"predict"``).
    label : callable
        Names an item in the error message.
    scheduler_address : str, optional
        A running scheduler (``tcp://host:8786``); default a :class:`distributed.LocalCluster`
        of ``n_workers`` single-threaded processes (default one per core, at most one per item).
    progress : bool
        Show a progress bar over the items.

    Raises
    ------
    DeepEpilError
        After every item was tried, when any failed; the message names each failure.
    """
    from distributed import Client, LocalCluster, as_completed
    from tqdm.auto import tqdm

    cluster = None
    if scheduler_address is None:
        workers = n_workers or max(1, min(len(items), os.cpu_count() or 1))
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               host="127.0.0.1")
        client = Client(cluster)
    else:
        client = Client(scheduler_address)
    results: list[Any] = [None] * len(items)
    failures: list[str] = []
    try:
        futures = [client.submit(task, item, *args, pure=False) for item in items]
        index = {future.key: i for i, future in enumerate(futures)}
        with tqdm(total=len(futures), unit="recording", desc=what, disable=not progress) as bar:
            for future in as_completed(futures):
                i = index[future.key]
                try:
                    results[i] = future.result()
                except Exception as exc:
                    failures.append(f"{label(items[i])}: {type(exc).__name__}: {exc}")
                bar.update(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if failures:
        raise DeepEpilError(f"{len(failures)} of {len(items)} recording(s) failed to {what}:\n" + "\n".join(failures))
    return results
