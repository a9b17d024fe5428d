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

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # student epochs; None: profile's value (smoke 4, full 60)
teacher_epochs = None  # None: profile's value (smoke 10, full 15)
teacher_channels = None  # CNN channels of the teacher; None: profile's (smoke 16, full 64)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
seeds = None           # student seeds; None: profile's list (smoke [0, 1], full [0, 1])
alpha = 0.8            # distillation weight
temperature = 2.0
augment = None         # None: profile's value (smoke off, full on)
device = "auto"
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.training.train import predict_logits

S = bk.chapter(
    globals(),
    smoke=dict(epochs=4, teacher_epochs=10, teacher_channels=16, train_subset=4000, seeds=[0, 1],
               augment=False, threads=1, compile=False),
    full=dict(epochs=60, teacher_epochs=15, teacher_channels=64, train_subset=0, seeds=[0, 1],
              augment=True, threads=0, compile=True))
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
grid = [{"seed": s, **extra} for s in S.seeds for extra in ({}, kd)]
runs = bk.sweep(grid, common={**shared, "epochs": S.epochs},
                base="configs/fc_4bitsym_64x3_aug.yaml", desc="students")
is_kd = lambda r: r.cfg.distill_alpha > 0
data = bk.cached_data(teacher_cfg)
teacher_pred = predict_logits(teacher.eval(), data.test_x).argmax(1)
agree = {id(r): 100 * float((predict_logits(r.model, data.test_x).argmax(1) == teacher_pred)
                            .float().mean()) for r in runs}
rows = [dict(seed=r.cfg.seed, KD=f"alpha {r.cfg.distill_alpha:g}, T {r.cfg.distill_temperature:g}"
             if is_kd(r) else "no", test_acc=r.last["test_acc"], test_loss=r.last["test_loss"],
             agrees_with_teacher=agree[id(r)]) for r in runs]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Student test accuracy per epoch without (solid) and with (dashed) distillation, one colour per seed; the dotted line is the teacher.", "name": "fig-kd-curves"}}
fig, ax = plt.subplots(figsize=(7, 4))
for r in runs:
    ep = [m["epoch"] for m in r.metrics]
    ax.plot(ep, [m["test_acc"] for m in r.metrics], "--" if is_kd(r) else "-",
            color=f"C{S.seeds.index(r.cfg.seed)}", marker="o", ms=3,
            label=f"seed {r.cfg.seed}, {'KD' if is_kd(r) else 'no KD'}")
ax.axhline(teacher_metrics[-1]["test_acc"], ls=":", color="k", label="teacher")
ax.set(xlabel="epoch", ylabel="test accuracy [%]")
ax.xaxis.get_major_locator().set_params(integer=True)
ax.legend(fontsize=8)
plt.show()

# %%
diffs = [kd_run.last["test_acc"] - plain.last["test_acc"]
         for plain, kd_run in zip(runs[0::2], runs[1::2])]
agree_diff = [agree[id(k)] - agree[id(p)] for p, k in zip(runs[0::2], runs[1::2])]
print("KD minus no KD, test accuracy per seed:", " ".join(f"{d:+.2f}" for d in diffs),
      f"points (mean {sum(diffs) / len(diffs):+.2f})")
print("KD minus no KD, agreement with the teacher per seed:",
      " ".join(f"{d:+.2f}" for d in agree_diff), "points")
print(f"KD is better for {sum(d > 0 for d in diffs)} of {len(diffs)} seeds")

# %% [markdown]
# The agreement numbers check the mechanism: a distilled student should copy more of
# the teacher's decisions, including some of its mistakes. With a handful of seeds a
# mean gain of a tenth of a point is at the level of seed-to-seed variation (the no-KD
# full runs above already span 0.07 points); at `smoke` the students train for a few
# epochs on a subset from a small teacher, and the result says nothing about the
# full-scale question.
#
# ## Provenance

# %%
bk.show_provenance(S)
