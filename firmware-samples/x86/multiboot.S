/*
 * vtarget x86 sample: a multiboot (v1) kernel that prints a banner on COM1
 * and echoes what it receives. It halts between UART interrupts (IRQ4), so
 * an idle target costs the host next to no CPU. 32-bit, protected mode.
 */
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0
    .set COM1, 0x3F8

    /* The header must sit in the first 8 KiB of the file: first in .text. */
    .text
    .code32
    .align 4
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

    .globl _start
_start:
    cli
    lgdt gdt_desc
    ljmp $0x08, $1f
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $stack_top, %esp

    /* COM1: 115200 8N1, FIFOs on, OUT2 so the UART can interrupt. */
    mov $(COM1 + 1), %dx; mov $0x00, %al; out %al, %dx
    mov $(COM1 + 3), %dx; mov $0x80, %al; out %al, %dx
    mov $(COM1 + 0), %dx; mov $0x01, %al; out %al, %dx
    mov $(COM1 + 1), %dx; mov $0x00, %al; out %al, %dx
    mov $(COM1 + 3), %dx; mov $0x03, %al; out %al, %dx
    mov $(COM1 + 2), %dx; mov $0xC7, %al; out %al, %dx
    mov $(COM1 + 4), %dx; mov $0x0B, %al; out %al, %dx

    mov $banner, %esi
    call puts

    /* Every IDT entry points at a handler that acknowledges the PIC and returns. */
    mov $idt, %edi
    mov $256, %ecx
2:  mov $irq_stub, %eax
    mov %ax, (%edi)
    movw $0x08, 2(%edi)
    movw $0x8E00, 4(%edi)
    shr $16, %eax
    mov %ax, 6(%edi)
    add $8, %edi
    loop 2b
    lidt idt_desc

    /* PIC: remap to 0x20/0x28, unmask IRQ4 (COM1) only. */
    mov $0x11, %al; out %al, $0x20; out %al, $0xA0
    mov $0x20, %al; out %al, $0x21
    mov $0x28, %al; out %al, $0xA1
    mov $0x04, %al; out %al, $0x21
    mov $0x02, %al; out %al, $0xA1
    mov $0x01, %al; out %al, $0x21; out %al, $0xA1
    mov $0xEF, %al; out %al, $0x21
    mov $0xFF, %al; out %al, $0xA1

    mov $(COM1 + 1), %dx; mov $0x01, %al; out %al, %dx   /* IER: data available */

idle:
    /* sti's one-instruction shadow makes "sti; hlt" atomic: an IRQ that is
       already pending wakes the hlt rather than slipping in before it. */
    sti
    hlt
    cli
3:  mov $(COM1 + 5), %dx
    in %dx, %al
    test $0x01, %al
    jz idle
    mov $COM1, %dx
    in %dx, %al
    call putc
    jmp 3b

/* putc: %al, waits for the transmitter holding register to be empty. */
putc:
    mov %al, %ah
    mov $(COM1 + 5), %dx
4:  in %dx, %al
    test $0x20, %al
    jz 4b
    mov $COM1, %dx
    mov %ah, %al
    out %al, %dx
    ret

/* puts: NUL-terminated string at %esi. */
puts:
    lodsb
    test %al, %al
    jz 5f
    call putc
    jmp puts
5:  ret

irq_stub:
    push %eax
    mov $0x20, %al
    out %al, $0x20
    pop %eax
    iret

    .section .rodata
banner:
    .asciz "hello from x86 pc\r\nvtarget sample firmware: echo ready\r\n"

    .data
    .align 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF   /* 0x08: code, flat 4 GiB */
    .quad 0x00CF92000000FFFF   /* 0x10: data, flat 4 GiB */
gdt_desc:
    .word gdt_desc - gdt - 1
    .long gdt
idt_desc:
    .word 256 * 8 - 1
    .long idt

    .bss
    .align 16
idt:
    .skip 256 * 8
stack:
    .skip 4096
stack_top:
