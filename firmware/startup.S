/* Start-up for the CH32V003 (RV32EC): stack, gp, copy .data and .ramfunc from
 * flash to SRAM, zero .bss, call main. No vendor SDK. */
    .section .init, "ax"
    .globl _start
_start:
    .option push
    .option norelax
    la   gp, __global_pointer$
    .option pop
    la   sp, _estack
    la   a0, __data_load
    la   a1, __data_start
    la   a2, __data_end
    call copy_words
    la   a0, __ramfunc_load
    la   a1, __ramfunc_start
    la   a2, __ramfunc_end
    call copy_words
    la   a1, __bss_start
    la   a2, __bss_end
1:  bgeu a1, a2, 2f
    sw   zero, 0(a1)
    addi a1, a1, 4
    j    1b
2:  call main
3:  j    3b

/* copy [a1, a2) from a0, word by word */
copy_words:
    bgeu a1, a2, 2f
1:  lw   a3, 0(a0)
    sw   a3, 0(a1)
    addi a0, a0, 4
    addi a1, a1, 4
    bltu a1, a2, 1b
2:  ret

#if BN_FW_INPUT_FLASH
/* the test image, in flash like the write-up's demo images (main.c) */
    .section .rodata.bn_fw_input, "a"
    .balign 4
    .globl bn_fw_input
bn_fw_input:
    .space BN_FW_INPUT
#endif
