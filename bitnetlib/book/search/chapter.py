"""Chapter 28's study and its reference models.

At ``full`` the chapter reads the study that ``make search`` ran (``results/optuna``)
and trains nothing; at ``smoke`` it runs a small study itself, in the run cache
(``runs/cache/optuna/``, never in ``results/``), named by a digest of its space so that
a changed space starts a new study and a rerun reads the old one.
"""
from ...deploy.model import fc_weight_bytes
from ...training.models import N_CLASSES, layer_quants
from ...training.rundir import cache_root
from ..cache import recompute_requested, sweep
from ..derived import verify_cached
from ..mixed import BASE, STUDY, TRIALS, handpicked_grid
from .loop import run
from .space import IN_FEATURES
from .study import load_study, open_study, sqlite_path

def smoke_storage(name: str) -> str:
    return f"sqlite:///{cache_root() / 'optuna' / f'{name}.db'}"


def chapter_study(S, space, progress=True):
    """(study, space): at ``full`` read from the results store's storage (a missing
    study stops with MissingStudy naming ``make search``); at ``smoke`` run here."""
    if S.profile == "full":
        study, stored_space = load_study(S.study)
        return study, stored_space
    name = f"{S.study}-{space.digest()}"
    url = smoke_storage(name)
    if recompute_requested():
        sqlite_path(url).unlink(missing_ok=True)
    study = open_study(name, space, url, S.sampler, S.seed, S.population)
    run(study, space, S.trials, publish=False, progress=progress)
    return study, space


def short(types) -> str:
    """2bitsym/8bit/... as 2s/8b/..."""
    return "/".join(q.replace("bitsym", "s").replace("bit", "b") for q in types)


def handpicked_rows(M, common, budget_type: str, low_type: str, seed: int = 0) -> list:
    """Chapter 22's models (its runs, read from the cache or store) with the search's
    ruler: exact packed bytes and the C engine's accuracy (``verify_cached``)."""
    runs = sweep(handpicked_grid(M, budget_type, low_type, seed), base=BASE, common=common,
                 desc="chapter 22's models")
    rows = []
    for i, r in enumerate(runs):
        types = layer_quants(r.cfg)
        v = verify_cached(r.cfg)
        rows.append(dict(name=f"uniform {types[0]}" if i < len(M.types) else short(types),
                         uniform=i < len(M.types), widths=list(r.cfg.widths), types=types,
                         packed_bytes=fc_weight_bytes([IN_FEATURES, *r.cfg.widths, N_CLASSES],
                                                      types),
                         acc_c=v["acc_c"], acc_fakequant=v["acc_fakequant"], cfg=r.cfg))
    return rows
