"""The book's helpers, one namespace for the chapters (``from bitnetlib import book as bk``).

    cache     training runs, looked up by config hash (results store, runs/cache)
    derived   results derived from a run (C engine check, emulated MCU), keyed by code hash
    chapter   a chapter's settings from its parameters cell, provenance
    writeup   the write-up's figures, quoted with their source
    figures   Markdown tables, sizes, weight pictures
    diagrams  the network and the pipeline drawn as boxes and arrows
    sources   C functions and kernel instructions as the book shows them
"""
from .cache import (MissingRuns, cache_root, cached_data, config_key, is_finished, resolve_config,
                    run_cached, publish, require, run_dir_of, run_ref, sweep)
from .derived import (cached_result, checkpoint_model, emulated, firmware_source_hash, mcu_cached,
                      verify_cached)
from .chapter import (CAPACITY_TYPES, PROFILES, PTQ_RECIPE, SMOKE_TRAIN, capacity_sweep, chapter,
                      headline_settings, profile_note, profile_settings, ptq_recipe,
                      show_provenance)
from .provenance import device_name, git_commit, provenance
from .figures import (first_layer_images, markdown_table, n_weights,
                      plot_weight_grid, total_bits)
from .sources import c_function, kernel_instructions
from .writeup import HEADLINE_MODELS, WRITEUP, WRITEUP_WEIGHTS

__all__ = ['MissingRuns', 'cache_root', 'cached_data', 'cached_result', 'checkpoint_model', 'config_key', 'emulated', 'firmware_source_hash', 'is_finished', 'mcu_cached', 'resolve_config', 'run_cached', 'publish', 'require', 'run_dir_of', 'run_ref', 'sweep', 'verify_cached', 'CAPACITY_TYPES', 'PROFILES', 'PTQ_RECIPE', 'SMOKE_TRAIN', 'capacity_sweep', 'chapter', 'headline_settings', 'profile_note', 'profile_settings', 'ptq_recipe', 'provenance', 'show_provenance', 'device_name', 'git_commit', 'first_layer_images', 'markdown_table', 'n_weights', 'plot_weight_grid', 'total_bits', 'c_function', 'kernel_instructions', 'HEADLINE_MODELS', 'WRITEUP', 'WRITEUP_WEIGHTS']
