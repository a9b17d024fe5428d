"""bitnetlib: low-bit quantization-aware training for the CH32V003 MNIST study.

Modules, each readable top to bottom: ``quant`` (number formats), ``layers``,
``models``, ``data``, ``config``, ``train``, ``ptq``, ``stats``, ``cli``.
"""
__version__ = "0.1.0"
