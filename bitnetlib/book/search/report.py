"""A study as the chapter reads it: one row per trial, the Pareto front, best-so-far.

Reads the study only (values and attributes as the search told them); nothing is
trained or measured here.

>>> rows = [dict(number=0, state="COMPLETE", acc_c=90.0, packed_bytes=900),
...         dict(number=1, state="PRUNED", acc_c=None, packed_bytes=5000),
...         dict(number=2, state="COMPLETE", acc_c=95.0, packed_bytes=2000),
...         dict(number=3, state="COMPLETE", acc_c=93.0, packed_bytes=2500)]
>>> [r["number"] for r in front(rows)], best_so_far(rows)
([0, 2], [(0, 90.0), (2, 95.0), (3, 95.0)])
"""
from ...training.mixed import pareto_front


def trial_rows(study, space) -> list:
    """Every trial: number, state, acc_c, packed_bytes, widths, types, config key and the
    other accuracies (None where a trial has none)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        widths, types = space.layers(t.params) if len(t.params) == len(space.distributions()) \
            else (None, None)
        a = t.user_attrs
        rows.append(dict(number=t.number, state=t.state.name,
                         acc_c=t.values[0] if t.values else None,
                         packed_bytes=a.get("packed_bytes"), widths=widths, types=types,
                         key=a.get("key"), acc_fakequant=a.get("acc_fakequant"),
                         test_acc=a.get("test_acc"), worker=a.get("worker")))
    return rows


def done(rows, budget: float = 0) -> list:
    """The completed trials within ``budget`` bytes (0: all)."""
    return [r for r in rows if r["state"] == "COMPLETE"
            and (not budget or r["packed_bytes"] <= budget)]


def front(rows, budget: float = 0) -> list:
    """The completed trials on the Pareto front of (packed bytes, acc_c), by size."""
    ok = done(rows, budget)
    return [ok[i] for i in pareto_front([(r["packed_bytes"], r["acc_c"]) for r in ok])]


def best_so_far(rows, budget: float = 0) -> list:
    """(trial number, best acc_c of the completed trials up to it) at each completed one."""
    out, best = [], float("-inf")
    for r in sorted(done(rows, budget), key=lambda r: r["number"]):
        best = max(best, r["acc_c"])
        out.append((r["number"], best))
    return out


def best(rows, budget: float = 0):
    """The completed trial within ``budget`` with the highest acc_c (fewer bytes on a tie)."""
    ok = done(rows, budget)
    return max(ok, key=lambda r: (r["acc_c"], -r["packed_bytes"])) if ok else None
