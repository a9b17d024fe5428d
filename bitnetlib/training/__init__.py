"""Training (PyTorch): from a configuration to a trained run directory.

    config, data, quant, layers, models    what is trained, on what
    schedule, train, rundir                the loop, its per-epoch schedules, its files
    stats, export                          per-layer statistics; the deploy description
    ptq, prune, swa, mixed, lsq, probes    the write-up's and research plan's options
"""
