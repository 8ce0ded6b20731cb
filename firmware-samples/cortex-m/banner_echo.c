/*
 * vtarget sample firmware: prints a banner on the board's first UART, then
 * echoes every byte it receives. A line "ping" is answered with "pong"; a
 * line "stream" is answered with 1 MiB as fast as the UART takes it: 16384
 * lines of 64 bytes, each starting with its number in hex, then "stream done".
 * It sleeps in WFI between interrupts, so an idle target costs the host
 * next to no CPU. One source for every Cortex-M board: the UART model and
 * its addresses come from -D flags set by the Makefile.
 */
#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(addr))

#ifndef BOARD_NAME
#error "BOARD_NAME must be set"
#endif

#if defined(UART_STM32)
/* STM32F1/F2/F4 USART: SR, DR, BRR, CR1 */
#define SR (UART_BASE + 0x00)
#define DR (UART_BASE + 0x04)
#define CR1 (UART_BASE + 0x0C)
static void uart_init(void) { REG(CR1) = (1u << 13) | (1u << 5) | (1u << 3) | (1u << 2); }
static int uart_rx_ready(void) { return (REG(SR) & (1u << 5)) != 0; }
static int uart_tx_full(void) { return (REG(SR) & (1u << 7)) == 0; }
static void uart_ack(void) {}
#elif defined(UART_PL011)
/* Stellaris / PL011: DR, FR, CR, IMSC, ICR */
#define DR (UART_BASE + 0x000)
#define FR (UART_BASE + 0x018)
#define CR (UART_BASE + 0x030)
#define IMSC (UART_BASE + 0x038)
#define ICR (UART_BASE + 0x044)
static void uart_init(void) { REG(CR) = (1u << 0) | (1u << 8) | (1u << 9); REG(IMSC) = (1u << 4) | (1u << 6); }
static int uart_rx_ready(void) { return (REG(FR) & (1u << 4)) == 0; }
static int uart_tx_full(void) { return (REG(FR) & (1u << 5)) != 0; }
static void uart_ack(void) { REG(ICR) = (1u << 4) | (1u << 6); }
#elif defined(UART_CMSDK)
/* ARM CMSDK APB UART: DATA, STATE, CTRL, INTSTATUS/INTCLEAR, BAUDDIV */
#define DATA (UART_BASE + 0x00)
#define STATE (UART_BASE + 0x04)
#define CTRL (UART_BASE + 0x08)
#define INTCLR (UART_BASE + 0x0C)
#define BAUDDIV (UART_BASE + 0x10)
#define DR DATA
/* QEMU's model stops polling its chardev while RX is disabled and only
   re-arms it on a DATA read, so read once after enabling RX. */
static void uart_init(void) {
    REG(BAUDDIV) = 16;
    REG(CTRL) = (1u << 0) | (1u << 1) | (1u << 3);
    (void)REG(DATA);
}
static int uart_rx_ready(void) { return (REG(STATE) & (1u << 1)) != 0; }
static int uart_tx_full(void) { return (REG(STATE) & (1u << 0)) != 0; }
static void uart_ack(void) { REG(INTCLR) = (1u << 1); }
#else
#error "choose UART_STM32, UART_PL011 or UART_CMSDK"
#endif

#define NVIC_ISER(n) (0xE000E100u + 4u * (n))

static volatile uint8_t rx_ring[256];
static volatile uint8_t rx_head, rx_tail;

static void put(char c) {
    while (uart_tx_full()) {}
    REG(DR) = (uint8_t)c;
}

static void puts_(const char *s) {
    while (*s) put(*s++);
}

void uart_irq(void) {
    /* Acknowledge before draining: a byte that lands after the last check
       raises the interrupt again. Acknowledging after draining would clear
       that byte's interrupt too, and a one-byte UART (CMSDK) would stall. */
    uart_ack();
    while (uart_rx_ready()) {
        uint8_t c = (uint8_t)REG(DR);
        uint8_t next = (uint8_t)(rx_head + 1);
        if (next != rx_tail) {
            rx_ring[rx_head] = c;
            rx_head = next;
        }
    }
}

static const char hex[] = "0123456789abcdef";

/* 16384 numbered lines of exactly 64 bytes: a stream whose loss or
   reordering shows in any copy of it. */
static void stream(void) {
    for (unsigned n = 0; n < 16384; n++) {
        for (int shift = 28; shift >= 0; shift -= 4) put(hex[(n >> shift) & 0xF]);
        put(' ');
        for (int i = 0; i < 53; i++) put((char)('a' + (n + i) % 26));
        put('\r');
        put('\n');
    }
    puts_("stream done\r\n");
}

int main(void) {
    static char line[64];
    unsigned len = 0;
    uart_init();
    REG(NVIC_ISER(UART_IRQ / 32)) = 1u << (UART_IRQ % 32);
    puts_("hello from " BOARD_NAME "\r\nvtarget sample firmware: echo ready\r\n");
    for (;;) {
        /* Sleep with interrupts masked: a pending IRQ still wakes WFI, and it
           is taken right after CPSIE, so no byte slips between check and sleep. */
        __asm volatile("cpsid i" ::: "memory");
        if (rx_head == rx_tail) __asm volatile("wfi");
        __asm volatile("cpsie i" ::: "memory");
        while (rx_tail != rx_head) {
            char c = (char)rx_ring[rx_tail];
            rx_tail = (uint8_t)(rx_tail + 1);
            put(c);
            if (c == '\r' || c == '\n') {
                if (len == 4 && line[0] == 'p' && line[1] == 'i' && line[2] == 'n' && line[3] == 'g') {
                    puts_("\r\npong\r\n");
                } else if (len == 6 && line[0] == 's' && line[1] == 't' && line[2] == 'r' && line[3] == 'e'
                           && line[4] == 'a' && line[5] == 'm') {
                    puts_("\r\n");
                    stream();
                }
                len = 0;
            } else if (len < sizeof line) {
                line[len++] = c;
            }
        }
    }
}

/* Start-up: vector table, .data copy, .bss clear. */
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
__attribute__((section(".vectors"), used)) static const vector_t vectors[16 + IRQ_COUNT] = {
    [0] = (vector_t)&_estack,
    [1] = reset_handler,
    [2 ... 15] = default_handler,
    [16 ... 16 + IRQ_COUNT - 1] = default_handler,
    [16 + UART_IRQ] = uart_irq,
};
