"""Deployment: the exported model and everything that runs it, without torch.

    packing    integer weights <-> packed uint32 words
    model      the exported model's description (``Exported``) and its C header
    intmodel   the integer reference model (the engine's specification, numpy)
    engine     the C engine, built with gcc and loaded with cppyy
    firmware   the CH32V003 firmware build (make, size check)
    rv32ec     instruction decoding for the emulator
    cycles     the CH32V003 cycle model
    emulator   the firmware in Unicorn, with instruction and cycle counts
"""
