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

#include "uart.h"

#ifdef CAN_NODE
/* An SLCAN node on a second STM32 USART (the profile's CAN UART): node 1
   counts, sending 100#NN on every SysTick; node 2 answers each frame with
   the same data under id+1. Both report what they receive on UART0. */
#define CAN_SR (CAN_UART_BASE + 0x00)
#define CAN_DR (CAN_UART_BASE + 0x04)
#define CAN_CR1 (CAN_UART_BASE + 0x0C)
#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u
static volatile uint8_t can_ring[256];
static volatile uint8_t can_head, can_tail;
static volatile uint32_t ticks;

void can_uart_irq(void) {
    while (REG(CAN_SR) & (1u << 5)) {
        uint8_t c = (uint8_t)REG(CAN_DR);
        uint8_t next = (uint8_t)(can_head + 1);
        if (next != can_tail) {
            can_ring[can_head] = c;
            can_head = next;
        }
    }
}

void systick_handler(void) { ticks++; }

static void can_put(char c) {
    while (!(REG(CAN_SR) & (1u << 7))) {}
    REG(CAN_DR) = (uint8_t)c;
}
#endif

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

#ifdef CAN_NODE
static const char HEX[] = "0123456789ABCDEF";

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Sends tIIIL<data>\r on the CAN UART. */
static void can_send(unsigned id, const uint8_t *data, unsigned len) {
    can_put('t');
    can_put(HEX[(id >> 8) & 0xF]); can_put(HEX[(id >> 4) & 0xF]); can_put(HEX[id & 0xF]);
    can_put(HEX[len]);
    for (unsigned i = 0; i < len; i++) { can_put(HEX[data[i] >> 4]); can_put(HEX[data[i] & 0xF]); }
    can_put('\r');
}

/* One SLCAN line received: report it on UART0, and node 2 answers. */
static void can_line(const char *l, unsigned n) {
    if (n < 5 || l[0] != 't') return;
    int a = hexval(l[1]), b = hexval(l[2]), c = hexval(l[3]), len = hexval(l[4]);
    if (a < 0 || b < 0 || c < 0 || len < 0 || len > 8 || n != 5u + 2u * (unsigned)len) return;
    unsigned id = (unsigned)(a << 8 | b << 4 | c);
    uint8_t data[8];
    for (int i = 0; i < len; i++) data[i] = (uint8_t)(hexval(l[5 + 2 * i]) << 4 | hexval(l[6 + 2 * i]));
    puts_("can rx ");
    for (unsigned i = 1; i < n; i++) put(l[i]);
    puts_("\r\n");
#if CAN_NODE == 2
    can_send((id + 1) & 0x7FF, data, (unsigned)len);
#else
    (void)id;
    (void)data;
#endif
}
#endif

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
#ifdef CAN_NODE
    static char can_l[32];
    unsigned can_n = 0;
    uint32_t sent_at = 0;
    uint8_t counter = 0;
    REG(CAN_CR1) = (1u << 13) | (1u << 5) | (1u << 3) | (1u << 2);
    REG(NVIC_ISER(CAN_UART_IRQ / 32)) = 1u << (CAN_UART_IRQ % 32);
#if CAN_NODE == 1
    REG(SYST_RVR) = SYSTICK_RELOAD;
    REG(SYST_CVR) = 0;
    REG(SYST_CSR) = 7; /* processor clock, interrupt, enable */
#endif
    puts_("slcan node ");
    put((char)('0' + CAN_NODE));
    puts_(" on the CAN UART\r\n");
#endif
    puts_("hello from " BOARD_NAME "\r\nvtarget sample firmware: echo ready\r\n");
    for (;;) {
        /* Sleep with interrupts masked: a pending IRQ still wakes WFI, and it
           is taken right after CPSIE, so no byte slips between check and sleep. */
        __asm volatile("cpsid i" ::: "memory");
#ifdef CAN_NODE
        if (rx_head == rx_tail && can_head == can_tail && ticks == sent_at) __asm volatile("wfi");
#else
        if (rx_head == rx_tail) __asm volatile("wfi");
#endif
        __asm volatile("cpsie i" ::: "memory");
#ifdef CAN_NODE
        while (can_tail != can_head) {
            char c = (char)can_ring[can_tail];
            can_tail = (uint8_t)(can_tail + 1);
            if (c == '\r') {
                can_line(can_l, can_n);
                can_n = 0;
            } else if (c != '\n' && can_n < sizeof can_l) {
                can_l[can_n++] = c;
            }
        }
        if (ticks != sent_at) {
            sent_at = ticks;
            can_send(0x100, &counter, 1);
            counter++;
        }
#endif
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

#include "startup.h"

#ifdef CAN_NODE
VECTORS([16 + UART_IRQ] = uart_irq, [15] = systick_handler, [16 + CAN_UART_IRQ] = can_uart_irq);
#else
VECTORS([16 + UART_IRQ] = uart_irq);
#endif
