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
# # Distillation from a float CNN
#
# ## Overview
#
# The research plan's parking lot: "distill CNN with better feature detection to fc
# model ... training works, but no benefit observed. Generally seems a bit instable". The
# ViT quantization summary (shared/seeds/004) finds the opposite for its networks: "with
# proper knowledge distillation (e.g., the floating point model or more accurate
# models), the accuracy of weight quantized model is close to the floating point model".
#
# Our version is plain logit distillation {cite}`hinton2015distilling`: the loss is
# $(1-\alpha)\,\mathrm{CE}(y) + \alpha T^2\,\mathrm{KL}(p_T^{teacher} \| p_T^{student})$
# (`bitnetlib.training.train.distillation_loss`), with a float CNN (the reference CNN's shape, no
# quantization) as the teacher and the 4bitsym 64/64/64 FC network as the student. The
# teacher's logits are computed on the same augmented images the student sees. The
# config keys are `teacher` (the teacher's run directory), `distill_alpha` and
# `distill_temperature`.
#
# The configurations are shipped: `configs/teacher_cnn_float.yaml` (the teacher) and
# `configs/fc_4bitsym_64x3_aug_kd.yaml` (the student with KD, $\alpha$ 0.8, $T$ 2;
# `bitnet train configs/fc_4bitsym_64x3_aug_kd.yaml --set clip=octav` and the like
# give its variants).
#
# At `full` this chapter trains the same configurations (the teacher, and the student
# with and without KD for each seed); at `smoke` a small teacher and short runs.
#
# Three later sections follow issues 13 and 14 (the ViT report): distillation of the
# teacher's features and the teacher's frozen classifier beside the logits alone;
# multi-step distillation through an assistant network; and teachers of three sizes.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # student epochs; None: profile's value (smoke 4, full 60)
teacher_epochs = None  # None: profile's value (smoke 10, full 15)
teacher_channels = None  # CNN channels of the teacher; None: profile's (smoke 16, full 64)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
seeds = None           # student seeds; None: profile's list (smoke [0, 1], full [0, 1])
kd_seeds = None        # seeds of the KD / no-KD comparison; None: profile's (smoke [0, 1],
                       # full 0..9: ten, for a mean against the seed study's spread)
alpha = 0.8            # distillation weight
temperature = 2.0
augment = None         # None: profile's value (smoke off, full on)
device = "auto"
threads = None         # None: profile's value (smoke 1, full all cores)
feature_weight = 1.0   # weight of the feature loss (feature distillation section)
assistant_widths = [128, 128, 128]  # the assistant of multi-step distillation (8bit FC)
teacher_sizes = None   # CNN channels of the teacher-size section; None: profile's
                       # (smoke [8, 16], full [16, 32, 64])

# %% tags=["hide-output"]
import statistics

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from bitnetlib import book as bk
import torch

from bitnetlib.training.distill import forward_with_features
from bitnetlib.training.train import predict_logits

S = bk.chapter(
    globals(),
    smoke=dict(epochs=4, teacher_epochs=10, teacher_channels=16, train_subset=4000, seeds=[0, 1],
               kd_seeds=[0, 1],
               augment=False, threads=1, compile=False, teacher_sizes=[8, 16]),
    full=dict(epochs=60, teacher_epochs=15, teacher_channels=64, train_subset=0, seeds=[0, 1],
              kd_seeds=list(range(10)),
              augment=True, threads=0, compile=True, teacher_sizes=[16, 32, 64]))
shared = dict(train_subset=S.train_subset, augment=S.augment, compile=S.compile, device=device)
teacher_cfg = bk.resolve_config({**shared, "epochs": S.teacher_epochs,
                                 "cnn_channels": S.teacher_channels},
                                base="configs/teacher_cnn_float.yaml")

# %% [markdown]
# ## The teacher

# %%
teacher, teacher_metrics = bk.run_cached(teacher_cfg)
display(Markdown(bk.profile_note(S)))
print(f"float CNN teacher ({teacher_cfg.cnn_channels} channels, {teacher_cfg.epochs} epochs): "
      f"test accuracy {teacher_metrics[-1]['test_acc']:.2f}%")

# %% [markdown]
# ## Students with and without distillation

# %%
kd = dict(teacher=bk.run_ref(teacher_cfg), distill_alpha=alpha,
          distill_temperature=temperature)
grid = [{"seed": s, **extra} for s in S.kd_seeds for extra in ({}, kd)]
runs = bk.sweep(grid, common={**shared, "epochs": S.epochs},
                base="configs/fc_4bitsym_64x3_aug.yaml", desc="students")
is_kd = lambda r: r.cfg.distill_alpha > 0
data = bk.cached_data(teacher_cfg)
teacher_pred = predict_logits(teacher.eval(), data.test_x).argmax(1)
agree = {id(r): 100 * float((predict_logits(r.model, data.test_x).argmax(1) == teacher_pred)
                            .float().mean()) for r in runs}
variant_runs = {f"KD (alpha {alpha:g}, T {temperature:g})": [r for r in runs if is_kd(r)],
                "no KD": [r for r in runs if not is_kd(r)]}
rows = [dict(student=name, seeds=len(rs),
             test_acc_mean=statistics.mean(r.last["test_acc"] for r in rs),
             test_acc_sd=statistics.stdev([r.last["test_acc"] for r in rs]) if len(rs) > 1 else None,
             min=min(r.last["test_acc"] for r in rs), max=max(r.last["test_acc"] for r in rs),
             agrees_with_teacher=sum(agree[id(r)] for r in rs) / len(rs))
        for name, rs in variant_runs.items()]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Student test accuracy per epoch without and with distillation: the mean over the seeds (line) and their range (band); the dotted line is the teacher.", "name": "fig-kd-curves"}}
fig, ax = plt.subplots(figsize=(7, 4))
for (name, rs), color in zip(variant_runs.items(), ("C3", "C0")):
    acc = np.array([[m["test_acc"] for m in r.metrics] for r in rs])     # (seeds, epochs)
    ep = np.arange(1, acc.shape[1] + 1)
    ax.plot(ep, acc.mean(0), color=color, label=f"{name}, mean of {len(rs)} seeds")
    ax.fill_between(ep, acc.min(0), acc.max(0), color=color, alpha=0.2)
ax.axhline(teacher_metrics[-1]["test_acc"], ls=":", color="k", label="teacher")
ax.set(xlabel="epoch", ylabel="test accuracy [%]")
ax.xaxis.get_major_locator().set_params(integer=True)
ax.legend(fontsize=8)
plt.show()

# %%
diffs = [kd_run.last["test_acc"] - plain.last["test_acc"]
         for plain, kd_run in zip(runs[0::2], runs[1::2])]
agree_diff = [agree[id(k)] - agree[id(p)] for p, k in zip(runs[0::2], runs[1::2])]
sem = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
print("KD minus no KD, test accuracy per seed:", " ".join(f"{d:+.2f}" for d in diffs),
      f"points (mean {statistics.mean(diffs):+.3f}, standard error {sem:.3f})")
print("KD minus no KD, agreement with the teacher per seed:",
      " ".join(f"{d:+.2f}" for d in agree_diff), "points")
print(f"KD is better for {sum(d > 0 for d in diffs)} of {len(diffs)} seeds")

# %% [markdown]
# The agreement numbers check the mechanism: a distilled student should copy more of
# the teacher's decisions, including some of its mistakes. Each seed is a pair (the
# same initialization and data order with and without KD), so the mean of the paired
# differences and its standard error say whether KD moves the mean beyond the
# seed-to-seed spread (the table's sd, over ten seeds at `full`: enough to tell whether
# distillation lifts the recipe's mean to 99 %); at `smoke` the students train for a few
# epochs on a subset from a small teacher, and the result says nothing about the
# full-scale question.

# %% [markdown]
# ## Feature distillation and the teacher's classifier
#
# Issue 13 asks for more than the logits: the CNN's point is its better features, so the
# student can also be asked to reproduce them. The feature of a network here is what its
# classifier (the last linear layer) multiplies: the last hidden layer's output after
# the ReLU and the classifier's RMSNorm, a vector of unit RMS per image
# (`bitnetlib.training.distill`). The feature loss adds `distill_feature_weight` times
# the mean squared difference of the student's feature and the teacher's to the loss
# above. There is no projection between the two: the teacher's head (96 -> 64 -> 10)
# and the student's (64/64/64 -> 10) both end in 64 features, and a width mismatch is a
# configuration error. With `distill_frozen_head` the student's classifier is the
# teacher's: its weights are copied from the teacher's float classifier, rounded by the
# student's 4bitsym quantizer like any weights, and never trained, so the student has
# to produce features that this classifier reads. The variants, for the same seeds and
# with the same logit distillation as above: features, the frozen classifier, both.

# %%
variants = {
    "no KD": {},
    "KD": kd,
    "KD + features": {**kd, "distill_feature_weight": feature_weight},
    "KD + frozen head": {**kd, "distill_frozen_head": True},
    "KD + features + frozen head": {**kd, "distill_feature_weight": feature_weight,
                                    "distill_frozen_head": True},
}
student_common = {**shared, "epochs": S.epochs}
STUDENT = "configs/fc_4bitsym_64x3_aug.yaml"
feat_grid = [{"seed": s, **v} for s in S.seeds for v in variants.values()]
assistant_cfg = bk.resolve_config({**student_common, **kd, "quant": "8bit",
                                   "widths": assistant_widths, "seed": S.seeds[0]}, STUDENT)
size_teachers = {c: bk.resolve_config({**shared, "epochs": S.teacher_epochs, "cnn_channels": c},
                                      base="configs/teacher_cnn_float.yaml")
                 for c in S.teacher_sizes}
# the runs that need only the chapter's teacher, named at once; the students of the
# assistant and of the other teachers follow once those exist (below)
bk.require([bk.resolve_config({**student_common, **g}, STUDENT) for g in feat_grid]
           + [assistant_cfg, *size_teachers.values()])
feat_runs = bk.sweep(feat_grid, common=student_common, base=STUDENT, desc="feature KD")


@torch.no_grad()
def feature_mse(model, batch=2000):
    """Mean squared difference of the model's feature and the teacher's on the test set."""
    x = data.test_x
    return sum(float((forward_with_features(model.eval(), x[i:i + batch])[1]
                      - forward_with_features(teacher, x[i:i + batch])[1]).pow(2).sum())
               for i in range(0, len(x), batch)) / (len(x) * teacher[-1].in_features)


names = list(variants)
feat_rows = [dict(seed=r.cfg.seed, variant=names[i % len(names)], test_acc=r.last["test_acc"],
                  agrees_with_teacher=100 * float((predict_logits(r.model, data.test_x).argmax(1)
                                                   == teacher_pred).float().mean()),
                  feature_mse=feature_mse(r.model)) for i, r in enumerate(feat_runs)]
display(Markdown(bk.markdown_table(feat_rows)))

# %% mystnb={"figure": {"caption": "Student test accuracy per distillation variant, one marker per seed, the mean as a bar; the dotted line is the teacher.", "name": "fig-kd-features"}}
mean_acc = {n: sum(r["test_acc"] for r in feat_rows if r["variant"] == n) / len(S.seeds)
            for n in names}
fig, ax = plt.subplots(figsize=(7, 4))
ax.bar(range(len(names)), [mean_acc[n] for n in names], color="0.85")
for k, s in enumerate(S.seeds):
    ax.plot(range(len(names)), [r["test_acc"] for r in feat_rows if r["seed"] == s], "o",
            color=f"C{k}", label=f"seed {s}")
ax.axhline(teacher_metrics[-1]["test_acc"], ls=":", color="k", label="teacher")
lo = min(r["test_acc"] for r in feat_rows)
ax.set_ylim(lo - 0.5 * (max(mean_acc.values()) - lo + 0.2), None)
ax.set_xticks(range(len(names)), [n.replace(" + ", "\n+ ") for n in names], fontsize=8)
ax.set(ylabel="test accuracy [%]")
ax.legend(fontsize=8)
plt.show()

# %% tags=["remove-input"]
best = max(names, key=mean_acc.get)
fmse = {n: sum(r["feature_mse"] for r in feat_rows if r["variant"] == n) / len(S.seeds)
        for n in names}
lower = lambda a, b: "lower" if fmse[a] < fmse[b] else "not lower"
display(Markdown(
    f"Mean test accuracy over {len(S.seeds)} seeds: "
    + ", ".join(f"{n} {mean_acc[n]:.2f}%" for n in names)
    + f"; the best mean is {best}. Against logit distillation alone: "
    + ", ".join(f"{n} {mean_acc[n] - mean_acc['KD']:+.2f}" for n in names[2:])
    + " points. The mean squared difference to the teacher's features on the test set is "
    f"{fmse['KD + features']:.3f} with the feature loss, {lower('KD + features', 'KD')} than "
    f"the {fmse['KD']:.3f} of logit distillation alone ({fmse['no KD']:.3f} without any "
    f"distillation; {fmse['KD + frozen head']:.3f} with the frozen classifier alone). Profile "
    f"`{S.profile}`; differences of a tenth of a point are within the seed-to-seed "
    f"variation."))

# %% [markdown]
# ## Multi-step distillation: teacher, assistant, student
#
# The ViT report (shared/seeds/004) lists multi-step distillation, teacher -> teacher
# assistant -> student, for a large gap between teacher and student. Here the assistant
# is an 8bit FC network 128/128/128, distilled from the CNN like the students above
# (one seed); the 4bitsym 64/64/64 students are then distilled from the assistant
# instead of the CNN (`teacher: run:<assistant>`, the same $\alpha$ and $T$). Nothing new
# is needed for this: any finished run can be a teacher, quantized or not. The
# assistant's last hidden layer is wider than the student's, so this step uses the logits
# only.

# %%
assistant, assistant_metrics = bk.run_cached(assistant_cfg)
via = dict(teacher=bk.run_ref(assistant_cfg), distill_alpha=alpha,
           distill_temperature=temperature)
size_grid = [{"seed": s, **kd, "teacher": bk.run_ref(size_teachers[c])}
             for c in S.teacher_sizes for s in S.seeds]
bk.require([bk.resolve_config({**student_common, "seed": s, **via}, STUDENT) for s in S.seeds]
           + [bk.resolve_config({**student_common, **g}, STUDENT) for g in size_grid])
via_runs = bk.sweep([{"seed": s, **via} for s in S.seeds], common=student_common, base=STUDENT,
                    desc="via assistant")
direct = {r.cfg.seed: r.last["test_acc"] for r in runs if is_kd(r)}
plain = {r.cfg.seed: r.last["test_acc"] for r in runs if not is_kd(r)}
ms_rows = [dict(seed=r.cfg.seed, no_KD=plain[r.cfg.seed], KD_from_CNN=direct[r.cfg.seed],
                KD_via_assistant=r.last["test_acc"]) for r in via_runs]
display(Markdown(bk.markdown_table(ms_rows)))

# %% tags=["remove-input"]
ms_diff = [r["KD_via_assistant"] - r["KD_from_CNN"] for r in ms_rows]
display(Markdown(
    f"The assistant ({assistant_cfg.quant} FC {assistant_cfg.widths}) reaches "
    f"{assistant_metrics[-1]['test_acc']:.2f}% against the CNN teacher's "
    f"{teacher_metrics[-1]['test_acc']:.2f}%. Students distilled through it minus students "
    f"distilled from the CNN directly, per seed: "
    + ", ".join(f"{d:+.2f}" for d in ms_diff)
    + f" points (mean {sum(ms_diff) / len(ms_diff):+.2f}; profile `{S.profile}`)."))

# %% [markdown]
# ## The teacher's size
#
# Does a better teacher make a better student? The teacher configuration with 16, 32
# and 64 channels (the chapter's teacher has 64 at `full`; at `smoke` 8 and 16), the
# same epochs, and for each one the 4bitsym students distilled from it as above (logits,
# $\alpha$ and $T$ as in the first section, the same seeds). A run whose configuration is
# the chapter's own teacher or student is the same run (the same key).

# %%
size_teacher_acc = {c: bk.run_cached(size_teachers[c])[1][-1]["test_acc"]   # teachers first
                    for c in S.teacher_sizes}
size_runs = bk.sweep(size_grid, common=student_common, base=STUDENT, desc="teacher sizes")
size_rows = []
for c in S.teacher_sizes:
    accs = [r.last["test_acc"] for r in size_runs if r.cfg.teacher == bk.run_ref(size_teachers[c])]
    size_rows.append(dict(channels=c, teacher_acc=size_teacher_acc[c],
                          student_mean_acc=sum(accs) / len(accs),
                          **{f"student_seed_{s}": a for s, a in zip(S.seeds, accs)}))
display(Markdown(bk.markdown_table(size_rows)))

# %% mystnb={"figure": {"caption": "Teacher test accuracy (squares) and the mean test accuracy of the 4bitsym students distilled from it (circles, seeds as dots) against the teacher's number of channels; the dotted line is the students' mean without distillation.", "name": "fig-kd-teacher-size"}}
fig, ax = plt.subplots(figsize=(7, 4))
ch = [r["channels"] for r in size_rows]
ax.plot(ch, [r["teacher_acc"] for r in size_rows], "s-", color="C3", label="teacher")
ax.plot(ch, [r["student_mean_acc"] for r in size_rows], "o-", color="C0", label="student (mean)")
for s in S.seeds:
    ax.plot(ch, [r[f"student_seed_{s}"] for r in size_rows], ".", color="C0", alpha=0.5)
ax.axhline(sum(plain.values()) / len(plain), ls=":", color="k", label="student without KD")
ax.set(xlabel="teacher CNN channels", ylabel="test accuracy [%]", xscale="log")
ax.minorticks_off()
ax.set_xticks(ch, [str(c) for c in ch])
ax.legend(fontsize=8)
plt.show()

# %% tags=["remove-input"]
small, large = size_rows[0], size_rows[-1]
display(Markdown(
    f"From {small['channels']} to {large['channels']} channels the teacher's test accuracy "
    f"changes by {large['teacher_acc'] - small['teacher_acc']:+.2f} points and the mean of its "
    f"students by {large['student_mean_acc'] - small['student_mean_acc']:+.2f} points "
    f"({len(S.seeds)} seeds each; profile `{S.profile}`)."))

# %% [markdown]
# ## Provenance

# %%
bk.show_provenance(S)
