"""The study: where Optuna keeps it, and opening it with its space checked.

The default storage is one SQLite file per study inside the results store,
``results/optuna/<study>.db`` (beside ``results/runs``; ``$BITNET_STORE`` moves both),
small enough to commit: the trials' parameters, the two objective values and a few
attributes; the runs themselves are in ``results/runs``. Any database URL that Optuna's
RDB storage takes (``postgresql://...``, ``mysql://...``) lets several search processes,
on several machines, share one study.

A study records its space (``Space.as_dict``) in its user attributes when it is
created; opening it again with another space is an error that names what differs, so
that a resumed study never mixes two searches.
"""
import time
from pathlib import Path

from ...training.rundir import store_root
from .space import SearchError, Space

DIRECTIONS = ("maximize", "minimize")       # acc_c, packed bytes
OBJECTIVES = ("acc_c", "packed_bytes")
SAMPLERS = ("nsga2", "tpe")
SEED_STRIDE = 1_000_003      # sampler seed: SEED_STRIDE * seed + trials so far


def default_storage(study: str) -> str:
    """sqlite:///<results>/optuna/<study>.db"""
    return f"sqlite:///{store_root().parent / 'optuna' / f'{study}.db'}"


def sqlite_path(url: str):
    """The file of a sqlite:/// URL (None for other databases)."""
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def storage(url: str, create: bool = True):
    """Optuna's RDB storage at ``url``. SQLite: the folder is made, and writers wait up
    to two minutes for each other's locks (two processes sharing one file)."""
    import optuna
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    path = sqlite_path(url)
    if path is not None and not create and not path.exists():
        raise MissingStudy(f"study database {path} not found")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"connect_args": {"timeout": 120}} if path is not None else {}
    try:
        return retry(lambda: optuna.storages.RDBStorage(url, engine_kwargs=kwargs))
    except (ArgumentError, NoSuchModuleError, ImportError) as e:
        raise SearchError(f"--storage {url}: not a database URL Optuna can open "
                          f"({type(e).__name__}: {str(e).splitlines()[0]})") from None


def retry(fn, tries: int = 5):
    """``fn()``, again after a short wait when a concurrent writer (another process
    creating the same tables or study) makes it fail once."""
    from sqlalchemy.exc import IntegrityError, OperationalError
    for i in range(tries):
        try:
            return fn()
        except (OperationalError, IntegrityError):
            if i == tries - 1:
                raise
            time.sleep(0.5 * (i + 1))


class MissingStudy(RuntimeError):
    """A chapter's study is not stored: names the command that computes it."""


def make_sampler(name: str, seed: int, population: int = 20):
    """NSGA-II (``population`` per generation) or multi-objective TPE, seeded."""
    import optuna
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise SearchError(f"--sampler {name!r}: expected one of {', '.join(SAMPLERS)}")


def open_study(name: str, space: Space, url=None, sampler: str = "nsga2", seed: int = 0,
               population: int = 20):
    """Create or load study ``name`` at ``url`` (default: ``default_storage``). The
    sampler's seed moves on with the trials already there, so that a resumed study
    does not draw its first points again; processes sharing a study should each have
    their own ``seed`` (the same one draws the same points: correct, but wasted)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = storage(url or default_storage(name))
    study = retry(lambda: optuna.create_study(study_name=name, storage=st,
                                              directions=list(DIRECTIONS), load_if_exists=True))
    if [d.name.lower() for d in study.directions] != list(DIRECTIONS):
        raise SearchError(f"study {name!r}: directions {study.directions}, expected "
                          f"{list(DIRECTIONS)} ({', '.join(OBJECTIVES)})")
    check_space(study, space)
    study.sampler = make_sampler(sampler, SEED_STRIDE * seed + len(study.trials), population)
    return study


def check_space(study, space: Space):
    """Record the space in a new study; refuse another space for an existing one."""
    want = space.as_dict()
    have = study.user_attrs.get("space")
    if have is None:
        study.set_user_attr("space", want)
        study.set_user_attr("objectives", list(OBJECTIVES))
        return
    diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diff:
        shown = "; ".join(f"{k}: study {have.get(k)!r}, asked {want.get(k)!r}" for k in diff)
        raise SearchError(f"study {study.study_name!r} was created with another space "
                          f"({shown}); use another --study or the same options")


def load_study(name: str, url=None, hint: str = "make search"):
    """An existing study and its space, read only (no sampler runs); a missing
    database or study is a MissingStudy naming ``hint``."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = url or default_storage(name)
    try:
        study = optuna.load_study(study_name=name, storage=storage(url, create=False))
    except (KeyError, MissingStudy) as e:
        raise MissingStudy(f"study {name!r} not found in {url} ({str(e).strip(chr(39))}); "
                           f"compute it with `{hint}`") from None
    return study, Space(**study.user_attrs["space"])
