# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---


# %% [markdown]
# # Mixed-precision search with Optuna
#
# ## Overview
#
# Chapter 22 fixes the widths and trains every per-layer weight-type assignment that fits
# a byte budget (or a seeded sample of them). The mixed-precision lab (shared/seeds/003)
# instead lets Optuna {cite}`akiba2019optuna` search the per-layer choices. Here the search
# chooses, for an FC net with chapter 22's number of hidden layers, a weight type for
# every linear layer (from chapter 22's types) *and* every hidden width, with two
# objectives: the **C engine's accuracy** on the 10,000 test images (maximised; the
# exported header run by the host build of the engine, bit-exact with the CH32V003
# firmware) and the **packed weight bytes** (minimised; exact before training, row
# padding included: `bitnetlib.deploy.model.fc_weight_bytes`). Points over the byte
# budget (the uniform `budget_type` model's size, 12 KB at `full`) are not trained.
# Activations stay at 8 bits: the engine implements no other width, so there is nothing
# to search there.
#
# The sampler is NSGA-II {cite}`deb2002nsga2` (or multi-objective TPE). Every trial is an ordinary run of the
# book: trained with chapter 22's recipe through the run cache and the results store and
# keyed by its configuration, so a point that chapter 22 (or an earlier trial) trained
# costs nothing. At `full` this chapter only reads: the study that `make search` ran on
# Dask (`bitnet search`, SQLite in `results/optuna/`, any Optuna database URL with
# `--storage` for a study shared by several machines) and the runs in `results/runs`.
# At `smoke` it runs a small study itself, in the run cache.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": a few minutes on a CPU; "full": reads `make search`'s study
study = None           # study name; None: profile's (full: the one `make search` runs)
trials = None          # smoke: completed trials to run; None: profile's (smoke 6)
sampler = "nsga2"      # smoke: "nsga2" or "tpe" (full: the study's own)
budget_type = "4bitsym"  # the budget: the uniform model of this type at chapter 22's widths
low_type = "2bitsym"   # chapter 22's sensitivity type (its grid is the hand-picked set)
prune_density = 0.5    # fraction of weights kept per layer when pruning the best model
finetune_epochs = None # fine-tuning epochs after pruning; None: profile's (smoke 1, full 5)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.book import search
from bitnetlib.book.mixed import BASE, STUDY, TRIALS, budget_bytes, mixed_settings
from bitnetlib.training.mixed import pareto_front
from bitnetlib.training.prune import pruned_copy
from bitnetlib.training.train import evaluate

M, common = mixed_settings(globals())          # chapter 22's settings and recipe
S = bk.chapter(
    globals(),
    smoke=dict(study="smoke", trials=6, population=4, finetune_epochs=1, threads=1),
    full=dict(study=STUDY, trials=TRIALS, population=20, finetune_epochs=5, threads=0))
S.sampler = sampler
space = search.default_space(S.profile, budget_type, device, seed)
budget = budget_bytes(M, budget_type)

# %% [markdown]
# ## The study

# %%
st, space = search.chapter_study(S, space)
rows = search.trial_rows(st, space)
states = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL")}
done = search.report.done(rows, space.budget)
display(Markdown(bk.profile_note(M)))
display(Markdown(
    f"Study `{st.study_name}`: {len(rows)} trials, {states['COMPLETE']} trained and measured, "
    f"{states['PRUNED']} drawn over the budget of {space.budget:.0f} bytes (not trained), "
    f"{states['FAIL']} failed; space: {space.hidden} hidden layers of "
    f"{', '.join(map(str, space.widths))} neurons, types {', '.join(space.types)}; recipe "
    f"{space.recipe['epochs']} epochs on {space.recipe['train_subset'] or 'all'} training "
    f"images."))

# %% [markdown]
# ## The hand-picked models
#
# The reference points are chapter 22's models, read from the same cache and store: the
# uniform models of every type, each layer lowered alone to `low_type`, and its
# enumerated assignments within the budget, all at chapter 22's fixed widths, measured
# with the search's ruler (C-engine accuracy, exact packed bytes).

# %%
hand = search.handpicked_rows(M, common, budget_type, low_type, seed)
hand_in = [h for h in hand if h["packed_bytes"] <= budget]
best_hand = max(hand_in, key=lambda h: (h["acc_c"], -h["packed_bytes"]))
best_found = search.best(rows, budget)
if best_found is None:
    raise search.MissingStudy(f"study {st.study_name!r} has no trained trial within "
                              f"{budget:.0f} bytes: run `make search` (more trials)")
display(Markdown(bk.markdown_table([
    dict(model=h["name"], widths=h["widths"], packed_bytes=h["packed_bytes"],
         acc_c=h["acc_c"]) for h in hand if h["uniform"] or h is best_hand])))

# %% mystnb={"figure": {"caption": "C-engine test accuracy against packed weight bytes: every trained trial (grey) and their Pareto front (solid line); chapter 22's models at its fixed widths: the uniform ones (coloured dots), its per-layer assignments (crosses), their Pareto front (dashed) and the best of them within the budget (star); the dotted line is the byte budget.", "name": "fig-optuna-pareto"}}
front = search.front(rows)
fig, ax = plt.subplots(figsize=(7.5, 4.2))
trained = [r for r in rows if r["state"] == "COMPLETE"]
ax.scatter([r["packed_bytes"] for r in trained], [r["acc_c"] for r in trained], s=14,
           color="0.6", label="searched (trials)")
ax.plot([r["packed_bytes"] for r in front], [r["acc_c"] for r in front], "k-", lw=1,
        label="Pareto front of the search")
mixed22 = [h for h in hand if not h["uniform"]]
ax.scatter([h["packed_bytes"] for h in mixed22], [h["acc_c"] for h in mixed22], s=18, marker="x",
           color="C4", alpha=0.7, label="chapter 22's per-layer assignments")
front22 = [hand[i] for i in pareto_front([(h["packed_bytes"], h["acc_c"]) for h in hand])]
ax.plot([h["packed_bytes"] for h in front22], [h["acc_c"] for h in front22], "--", color="C4",
        lw=1, label="Pareto front of chapter 22's models")
for i, h in enumerate(h for h in hand if h["uniform"]):
    ax.scatter(h["packed_bytes"], h["acc_c"], s=40, color=f"C{i}", zorder=3, label=h["name"])
ax.scatter(best_hand["packed_bytes"], best_hand["acc_c"], s=120, marker="*", color="k",
           zorder=4, label=f"chapter 22's best in budget ({best_hand['name']})")
ax.axvline(budget, ls=":", color="k", label=f"budget ({budget_type})")
ax.set(xlabel="packed weight bytes", ylabel="C-engine test accuracy [%]")
ax.legend(fontsize=7)
plt.show()

# %% tags=["remove-input"]
on_front = ", ".join(f"{search.short(r['types'])} at {r['widths']} ({r['packed_bytes']} B, "
                     f"{r['acc_c']:.2f}%)" for r in front)
dominated = [h["name"] for h in hand if any(
    r["packed_bytes"] <= h["packed_bytes"] and r["acc_c"] >= h["acc_c"] for r in trained)]
display(Markdown(
    f"The search's Pareto front holds {len(front)} of its {len(trained)} trained points: "
    f"{on_front}. {len(dominated)} of chapter 22's {len(hand)} models are matched or beaten "
    f"by a searched point that is no larger and at least as accurate."))

# %% [markdown]
# ## Best so far
#
# The best C-engine accuracy within the budget among the trials up to each trial number,
# against chapter 22's best model within the same budget.

# %% mystnb={"figure": {"caption": "Best C-engine accuracy within the byte budget among the trials so far (line) and every trial within the budget (dots), against chapter 22's best model within the same budget (dashed).", "name": "fig-optuna-best-so-far"}}
curve = search.best_so_far(rows, budget)
fig, ax = plt.subplots(figsize=(7, 3.6))
in_budget = search.report.done(rows, budget)
ax.scatter([r["number"] for r in in_budget], [r["acc_c"] for r in in_budget], s=10,
           color="0.6", label="trial within the budget")
ax.step(*zip(*curve), where="post", color="C0", label="best so far")
ax.axhline(best_hand["acc_c"], ls="--", color="k", label=f"chapter 22's best ({best_hand['name']})")
ax.set(xlabel="trial number", ylabel="C-engine test accuracy [%]")
ax.legend(fontsize=7)
plt.show()

# %% tags=["remove-input"]
passed = next((n for n, acc in curve if acc >= best_hand["acc_c"]), None)
display(Markdown(
    f"Within {budget:.0f} bytes the search's best after {len(rows)} trials is "
    f"{search.short(best_found['types'])} at widths {best_found['widths']} "
    f"({best_found['packed_bytes']} bytes, {best_found['acc_c']:.2f}%, trial "
    f"{best_found['number']}); chapter 22's best is {best_hand['name']} at "
    f"{best_hand['widths']} ({best_hand['packed_bytes']} bytes, {best_hand['acc_c']:.2f}%). "
    + (f"The search first reached it at trial {passed}." if passed is not None else
       "The search did not reach it within these trials.")))

# %% [markdown]
# ## The best searched model, pruned
#
# The best searched configuration within the budget is pruned by L1 magnitude to
# `prune_density` of its weights per layer (chapter 18's pruning), evaluated at once and
# after fine-tuning (chapter 18's recipe: `init_from` the trained run, `prune`,
# `prune_density`, a few epochs). Accuracies in this section are the fake-quantized
# model's: the export refuses pruned layers of a type without a zero level (4bitsym,
# 2bitsym), so the C engine cannot run every pruned model.

# %%
point = space.point(best_found["widths"], best_found["types"])
best_cfg = space.config(point)
tune_cfg = bk.resolve_config({**space.overrides(point), "init_from": bk.run_ref(best_cfg),
                              "prune": "l1", "prune_density": prune_density,
                              "epochs": S.finetune_epochs}, space.base)
bk.require([best_cfg, tune_cfg])
dense, _ = bk.run_cached(best_cfg)
tuned, _ = bk.run_cached(tune_cfg)
data = bk.cached_data(best_cfg)
acc = lambda model: evaluate(model, data.test_x, data.test_y)[1]
pruned_rows = [
    dict(model="dense (searched)", acc_fakequant=acc(dense)),
    dict(model=f"L1-pruned to {prune_density:g}, no fine-tuning",
         acc_fakequant=acc(pruned_copy(dense, best_cfg, "l1", prune_density))),
    dict(model=f"L1-pruned to {prune_density:g}, fine-tuned {S.finetune_epochs} epoch(s)",
         acc_fakequant=acc(tuned))]
display(Markdown(bk.markdown_table(pruned_rows)))

# %% tags=["remove-input"]
a, b, c = (r["acc_fakequant"] for r in pruned_rows)
display(Markdown(
    f"Keeping {prune_density:g} of the weights per layer costs {a - b:.2f} points without fine-tuning and "
    f"{a - c:.2f} points after {S.finetune_epochs} epoch(s) of fine-tuning. The packed size "
    f"stays {best_found['packed_bytes']} bytes: the engine's weight format is dense, so the "
    f"zeros pay off only with a sparse format (chapter 18)."))

# %% [markdown]
# ## Searched against hand-picked at the same budget

# %% tags=["remove-input"]
display(Markdown(bk.markdown_table([
    dict(model=f"searched (trial {best_found['number']})", widths=best_found["widths"],
         types=search.short(best_found["types"]), packed_bytes=best_found["packed_bytes"],
         acc_c=best_found["acc_c"]),
    dict(model=f"hand-picked ({best_hand['name']})", widths=best_hand["widths"],
         types=search.short(best_hand["types"]), packed_bytes=best_hand["packed_bytes"],
         acc_c=best_hand["acc_c"])])))
gain = best_found["acc_c"] - best_hand["acc_c"]
display(Markdown(
    f"At the same budget of {budget:.0f} bytes the searched model is {gain:+.2f} points "
    f"{'above' if gain >= 0 else 'below'} the best hand-picked one, with "
    f"{best_found['packed_bytes'] - best_hand['packed_bytes']:+d} bytes. "
    + ("At `smoke` both come from tiny runs of one seed: the sign of such a difference is "
       "not a result." if S.profile == "smoke" else
       "One seed per model: differences of a few tenths of a point are within the "
       "seed-to-seed spread of chapter 25.")))

# %% [markdown]
# ## Provenance

# %%
bk.show_provenance(S)
