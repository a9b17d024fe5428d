"""Running a study with ask and tell: trials trained in this process or on Dask.

    run(study, space, trials)                in this process, one trial at a time
    run(study, space, trials, client=C)      on a Dask cluster: as many trials in flight
                                             as the cluster has worker threads

``trials`` is the study's target of completed trials: a call adds what is missing, so
calling again after an interruption continues the study (and calling with a larger
target extends it). Several processes may run the same study (a shared ``--storage``);
each stops once the study has ``trials`` completed trials.

A point over the byte budget is told as PRUNED at once (its size is exact before
training), and is not counted. A point whose run is already finished (in the store or
the run cache) is told at once from it. Ctrl-C tells the trials in flight as FAIL and
queues their points again (``enqueue_trial``), so the next call trains them first
(a run cut off on a worker resumes from its last epoch there).
"""
import os
import platform

from optuna.trial import TrialState
from tqdm import tqdm

from ...training.config import config_dict
from ..cache import config_key, finished_dir
from . import trials as T
from .space import SearchError

MAX_OVER_BUDGET = 1000        # points drawn in a row over the budget before giving up
WORKER = f"{platform.node()}:{os.getpid()}"


def completed(study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def ask(study, space):
    """(trial, cfg) of the next point within the budget; points over it are told as
    PRUNED with their size."""
    for _ in range(MAX_OVER_BUDGET):
        trial = study.ask(space.distributions())
        nbytes = space.packed_bytes(trial.params)
        trial.set_user_attr("packed_bytes", nbytes)
        if space.budget and nbytes > space.budget:
            trial.set_user_attr("over_budget", True)
            study.tell(trial, state=TrialState.PRUNED)
            continue
        cfg = space.config(trial.params)
        trial.set_user_attr("key", config_key(cfg))
        trial.set_user_attr("worker", WORKER)
        return trial, cfg
    raise SearchError(f"{MAX_OVER_BUDGET} points in a row over the budget of "
                      f"{space.budget:.0f} bytes: widen the space or raise --budget")


def tell(study, trial, result: dict):
    """Tell a trained point: (acc_c, packed bytes), the other accuracies as attributes."""
    for k in ("acc_fakequant", "test_acc", "mismatch_c_int"):
        trial.set_user_attr(k, result[k])
    study.tell(trial, [result["acc_c"], trial.user_attrs["packed_bytes"]])


def fail(study, trial, why: str, requeue: bool = False):
    """Tell a point as FAIL with the reason; ``requeue``: its point is asked again first."""
    trial.set_user_attr("error", why[:500])
    study.tell(trial, state=TrialState.FAIL)
    if requeue:
        study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number})


class Failures:
    """Stops a search whose trials keep failing (``limit`` in a row)."""

    def __init__(self, limit: int):
        self.limit, self.row = limit, 0

    def __call__(self, ok: bool, why: str = ""):
        self.row = 0 if ok else self.row + 1
        if self.row >= self.limit:
            raise SearchError(f"{self.row} trials in a row failed, the last with: {why}")


def run(study, space, trials: int, client=None, publish: bool = True, progress: bool = True,
        log=print) -> dict:
    """Run ``study`` until it has ``trials`` completed trials. Returns counts of this
    call: {'trained': .., 'stored': .., 'failed': .., 'completed': study total}."""
    bar = tqdm(total=trials, initial=min(completed(study), trials), desc="trials",
               disable=not progress, mininterval=1)
    counts = dict(trained=0, stored=0, failed=0)
    try:
        if client is None:
            _run_here(study, space, trials, publish, bar, counts)
        else:
            _run_dask(study, space, trials, client, bar, counts)
    finally:
        bar.close()
    return {**counts, "completed": completed(study)}


def _stored(study, trial, cfg, bar, counts) -> bool:
    """Tell a point whose run is already finished; False if it has none."""
    if finished_dir(cfg) is None:
        return False
    tell(study, trial, T.measure(cfg))
    counts["stored"] += 1
    bar.update()
    return True


def _run_here(study, space, target, publish, bar, counts):
    failures = Failures(3)
    while completed(study) < target:
        trial, cfg = ask(study, space)
        try:
            if _stored(study, trial, cfg, bar, counts):
                continue
            result = T.train_here(cfg, publish)
        except KeyboardInterrupt:
            fail(study, trial, "interrupted", requeue=True)
            raise
        except Exception as e:                   # the run's own error: reported, not fatal
            fail(study, trial, f"{type(e).__name__}: {e}")
            counts["failed"] += 1
            failures(False, str(e))
            continue
        tell(study, trial, result)
        counts["trained"] += 1
        failures(True)
        bar.update()


def _workers(client) -> int:
    return max(1, sum(w["nthreads"] for w in client.scheduler_info()["workers"].values()))


def _submit(study, space, client, inflight, target, bar, counts):
    """Ask points until the cluster is busy or the target is in flight; a point whose
    run is in flight already joins that run's task."""
    width = _workers(client)
    while len(inflight) < width and completed(study) + sum(map(len, inflight.values())) < target:
        trial, cfg = ask(study, space)
        if _stored(study, trial, cfg, bar, counts):
            continue
        same = next((f for f, points in inflight.items()
                     if config_key(points[0][1]) == config_key(cfg)), None)
        if same is not None:
            inflight[same].append((trial, cfg))
            continue
        fut = client.submit(T.trial_files, config_dict(cfg), pure=False, retries=1,
                            key=f"trial-{study.study_name}-{trial.number}-{config_key(cfg)}")
        inflight[fut] = [(trial, cfg)]


def _run_dask(study, space, target, client, bar, counts):
    from distributed import wait
    inflight, failures = {}, Failures(max(3, 2 * _workers(client)))
    try:
        while True:
            _submit(study, space, client, inflight, target, bar, counts)
            if not inflight:
                return
            done = wait(list(inflight), return_when="FIRST_COMPLETED").done
            for fut in done:
                _collect(study, fut, inflight.pop(fut), bar, counts, failures)
    except KeyboardInterrupt:
        for fut, points in inflight.items():
            fut.cancel()
            for trial, _ in points:
                fail(study, trial, "interrupted", requeue=True)
        raise


def _collect(study, fut, points, bar, counts, failures):
    """Publish a finished task's run and tell its points; a failed task fails them."""
    cfg = points[0][1]
    try:
        result = T.publish_result(cfg, fut.result())
    except Exception as e:               # the task's own error, as the worker raised it
        for trial, _ in points:
            fail(study, trial, f"{type(e).__name__}: {e}")
        counts["failed"] += len(points)
        failures(False, str(e))
        return
    for trial, _ in points:
        tell(study, trial, result)
        bar.update()
    counts["trained"] += 1
    failures(True)
