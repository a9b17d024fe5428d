"""Mixed-precision search with Optuna: per-layer weight types and hidden widths of an
FC net, two objectives (C-engine accuracy, packed bytes), trials trained through the
book's run cache and results store, in this process or on Dask.

    space     the search space -> TrainConfig, exact packed bytes, chapter 22's recipe
    trials    a trial's run and what it measures (acc_c of the C engine)
    study     the study's storage (SQLite in results/optuna/ by default) and space
    loop      ask and tell, here or on a Dask cluster; resumable
    report    the trials as rows, the Pareto front, best-so-far (chapter 28)
    chapter   chapter 28's study (read at full, run at smoke) and reference models

``search(...)`` is ``bitnet search``.
"""
from .chapter import STUDY, TRIALS, chapter_study, handpicked_rows, short
from .loop import completed, run
from .report import best, best_so_far, front, trial_rows
from .space import Space, SearchError, default_space, space_from_args
from .study import (SAMPLERS, MissingStudy, default_storage, load_study, open_study)

__all__ = ["STUDY", "TRIALS", "chapter_study", "handpicked_rows", "short", "completed", "run", "best", "best_so_far", "front", "trial_rows", "Space", "SearchError",
           "default_space", "space_from_args", "SAMPLERS", "MissingStudy", "default_storage",
           "load_study", "open_study", "search"]


def search(name: str, space: Space, trials: int, storage=None, scheduler=None, workers=None,
           sampler: str = "nsga2", seed: int = 0, population: int = 20, progress=True) -> dict:
    """Run study ``name`` to ``trials`` completed trials: on Dask (``scheduler``, else a
    LocalCluster of ``workers`` processes), or in this process with ``workers=0``.
    Every trained run is published to the results store."""
    from ..compute import open_client
    study = open_study(name, space, storage, sampler, seed, population)
    if workers == 0 and not scheduler:
        return run(study, space, trials, progress=progress)
    if completed(study) >= trials:             # nothing to do: no cluster started
        return run(study, space, trials, progress=progress)
    client = open_client(scheduler, workers)
    try:
        return run(study, space, trials, client=client, progress=progress)
    finally:
        close(client)


def close(client):
    """Close a client and the LocalCluster it started, if any."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()
