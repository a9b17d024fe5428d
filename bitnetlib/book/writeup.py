"""The write-up's figures (data, quoted with their source) and the book's key models."""

# Every figure the book sets beside ours. "seed" is the write-up text in ../shared/seeds/
# (001_d09a775815afc45b.txt); "anchor" is ../shared/anchor-facts.md (the reference code's
# reported and re-measured figures). None: the source gives no figure. ``point`` is
# (weight bytes, accuracy %) for plots: bits / 8 where the source gives bits, the
# lowest reported accuracy where it gives a range; ``ms`` the (lowest, highest) reported
# inference time on the CH32V003 at 48 MHz, where it gives one.
WRITEUP = {
    "FC 4bitsym 64/64/64": dict(
        acc="99.02 (C engine)", bytes="12.3 KB (100,864 bits)", mismatches="3 in 10,000",
        cycles="about 650,000 (13.66 ms at 48 MHz, CH32V003)",
        train_time="25.5 s/epoch x 60 on a 2-core CPU (reference code rerun)",
        source="seed: 'Verification' and 'Implementation on the CH32V003'; anchor: measured",
        point=(12608, 99.02), ms=(13.66, 13.66)),
    "FC FP130 64/64/64": dict(
        acc="98.66 - 98.86", bytes="12.3 KB (same shape, 4 bits)", mismatches=None,
        cycles="10.03 - 10.17 ms at 48 MHz (about 482,000 - 488,000)", train_time=None,
        source="seed: 'FP1.3.0' update; anchor: reported figures", point=(12608, 98.66),
        ms=(10.03, 10.17)),
    "FC 2bitsym 1 KB": dict(
        acc="94.22", bytes="1.1 KB (4,512 weights)", mismatches=None,
        cycles="1.88 - 2.08 ms at 48 MHz (about 90,000 - 100,000)", train_time=None,
        source="seed: 'Implementation on the CH32V003'; anchor: reported figures",
        point=(1128, 94.22), ms=(1.88, 2.08)),
    "CNN 64": dict(
        acc="99.53 (60 epochs)", bytes="11.0 KB (90,112 bits)", mismatches="4 in 10,000",
        cycles="2.74 M on the CH32V002 (57 ms; needs more than 2 KB RAM)", train_time=None,
        source="seed: 'Aug 15th, 2024: CNN'; anchor: reported figures", point=(11264, 99.53)),
    "CNN 16": dict(
        acc="98.92 (3.2 KB variant)", bytes="3.2 KB", mismatches=None, cycles="14.3 ms",
        train_time=None, source="anchor: reported figures (a smaller head than ours)",
        point=(3277, 98.92)),
}

# The book's key models: name -> (config at `full`, config at `smoke`).
HEADLINE_MODELS = {
    "FC 4bitsym 64/64/64": ("configs/fc_4bitsym_64x3_aug.yaml",) * 2,
    "FC FP130 64/64/64": ("configs/fc_fp130_64x3_aug.yaml",) * 2,
    "FC 2bitsym 1 KB": ("configs/fc1k_2bitsym.yaml",) * 2,
    "CNN 64": ("configs/cnn64.yaml", "configs/cnn16.yaml"),
}

# The write-up's statements on its weights' entropy (chapter 27), quoted with their source.
WRITEUP_WEIGHTS = dict(
    entropy_4bitsym=dict(bits=[3.25, 3.38, 3.35, 3.15], capacity=[81.16, 84.61, 83.85, 78.83],
                         source="seed: 'Model Exporting' (its 4bitsym 64/64/64 export log)"),
    effective_8bit=dict(bits=(5, 6), source="seed: 'exploration with augmentation': 'between "
                        "5 and 6 bits of the 8-bit parameters are effectively used' (judged "
                        "from the accuracy gap to the size trend, not from an entropy)"),
    qat_vs_ptq=dict(source="seed: 'QAT vs PTQ' rant: QAT weights near capacity (codes used "
                    "about equally), 4-bit PTQ weights closer to normal, lower entropy"),
    compression=dict(share=0.8, source="seed: 'quantscale': at about 3 bits of entropy the "
                     "weights could be compressed to less than 80% of their size by entropy "
                     "coding"),
    nf4=dict(source="seed: 'NF4': NF4 reaches the lowest training loss of the 4-bit types"),
)
