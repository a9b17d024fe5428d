"""bitnetlib: low-bit quantization-aware training for the CH32V003 MNIST study.

The package is the pipeline, one stage per subpackage; imports run one way, down
this list:

    wtypes     the weight types: the one table both stages read (no torch)
    deploy     the exported model and everything that runs it, without torch:
               packing, the C header, the integer reference model, the C engine
               (cppyy), the CH32V003 firmware build, its emulator and cycle model
    training   PyTorch: quantizers, layers, models, MNIST and augmentation, the
               training loop and its run directory, statistics, export to ``deploy``'s
               model description, and the research-plan options (pruning, SWA,
               mixed precision, LSQ, probes of the activations)
    pipeline   the run-directory commands: export, verify, mcu (training -> deploy)
    book       the chapters' helpers: run cache, settings and provenance, the
               write-up's figures, tables and plots, C sources as shown
    cli        the ``bitnet`` command
"""
__version__ = "0.1.0"
