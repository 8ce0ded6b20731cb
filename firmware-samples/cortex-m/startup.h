/*
 * Start-up shared by the Cortex-M samples: .data copy, .bss clear, main,
 * and the vector table. A sample includes this after its handlers and
 * names the entries it serves with VECTORS(...), e.g.
 *
 *     VECTORS([15] = systick_handler, [16 + UART_IRQ] = uart_irq);
 *
 * Every other entry is default_handler. Later designated initialisers
 * override the defaults (GCC's -Woverride-init is off for this).
 */
#ifndef VTARGET_STARTUP_H
#define VTARGET_STARTUP_H

#include <stdint.h>

int main(void);

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;

void reset_handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    main();
    for (;;) {}
}

void default_handler(void) {
    for (;;) __asm volatile("wfi");
}

typedef void (*vector_t)(void);

#define IRQ_COUNT 96
#define VECTORS(...)                                                              \
    __attribute__((section(".vectors"), used)) static const vector_t vectors[16 + IRQ_COUNT] = { \
        [0] = (vector_t)&_estack,                                                 \
        [1] = reset_handler,                                                      \
        [2 ... 15] = default_handler,                                             \
        [16 ... 16 + IRQ_COUNT - 1] = default_handler,                            \
        __VA_ARGS__                                                               \
    }

#endif
