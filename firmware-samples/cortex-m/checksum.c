/*
 * vtarget sample firmware for record/replay: keeps a running CRC-32 over
 * every byte received on the board's first UART and, at the end of each
 * non-empty line, prints how many bytes it has seen, the CRC and the
 * SysTick count at that moment:
 *
 *     sum 12 crc 3610a686 t 0000002a
 *
 * The tick count depends on when each byte arrived, in guest time: a
 * replay that fed the input at other moments would print other ticks, so
 * byte-identical output shows that the timing was reproduced, not only the
 * bytes. A line "fail" prints "checksum FAILED" (a failure to record).
 * A line "trickle" starts a steady stream of numbered 64-byte lines, one
 * every 8 SysTicks (about 1 KiB/s at lm3s6965evb's 125 ticks/s), for
 * measuring what a recording of a chatty target costs per minute.
 */
#include <stdint.h>

#include "uart.h"

#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u

static volatile uint8_t rx_ring[256];
static volatile uint8_t rx_head, rx_tail;
static volatile uint32_t ticks;

static void put(char c) {
    while (uart_tx_full()) {}
    REG(DR) = (uint8_t)c;
}

static void puts_(const char *s) {
    while (*s) put(*s++);
}

static const char hex[] = "0123456789abcdef";

static void hex32(uint32_t v) {
    for (int shift = 28; shift >= 0; shift -= 4) put(hex[(v >> shift) & 0xF]);
}

static void dec(uint32_t v) {
    char b[10];
    int n = 0;
    do { b[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) put(b[--n]);
}

void uart_irq(void) {
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

void systick_handler(void) { ticks++; }

static uint32_t crc32_update(uint32_t crc, uint8_t byte) {
    crc ^= byte;
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    return crc;
}

/* One numbered trickle line: 8 hex digits, a space, 53 letters, CR LF. */
static void trickle_line(uint32_t n) {
    hex32(n);
    put(' ');
    for (int i = 0; i < 53; i++) put((char)('a' + (n + i) % 26));
    puts_("\r\n");
}

int main(void) {
    uint32_t crc = 0xFFFFFFFFu, count = 0;
    uint32_t trickled = 0, trickle_at = 0;
    int trickling = 0;
    char line[8];
    unsigned len = 0;
    uart_init();
#ifdef UART_PL011
    /* The PL011's 16-byte receive FIFO (LCR_H.FEN): under QEMU's record
       mode input bytes reach the UART as fast as they arrive, not as fast
       as the guest reads them, and a one-byte register would keep only the
       last of a burst. */
    REG(UART_BASE + 0x02C) |= 1u << 4;
#endif
    REG(NVIC_ISER(UART_IRQ / 32)) = 1u << (UART_IRQ % 32);
    REG(SYST_RVR) = 100000u;
    REG(SYST_CVR) = 0;
    REG(SYST_CSR) = 7; /* processor clock, interrupt, enable */
    puts_("checksum sample on " BOARD_NAME ": ready\r\n");
    for (;;) {
        __asm volatile("cpsid i" ::: "memory");
        if (rx_head == rx_tail) __asm volatile("wfi");
        __asm volatile("cpsie i" ::: "memory");
        if (trickling && ticks - trickle_at >= 8) {
            trickle_at = ticks;
            trickle_line(trickled++);
        }
        while (rx_tail != rx_head) {
            uint8_t c = rx_ring[rx_tail];
            rx_tail = (uint8_t)(rx_tail + 1);
            crc = crc32_update(crc, c);
            count++;
            if (c != '\r' && c != '\n') {
                if (len < sizeof line) line[len] = (char)c;
                len++;
                continue;
            }
            if (len == 0) continue;
            puts_("sum ");
            dec(count);
            puts_(" crc ");
            hex32(~crc);
            puts_(" t ");
            hex32(ticks);
            puts_("\r\n");
            if (len == 4 && line[0] == 'f' && line[1] == 'a' && line[2] == 'i' && line[3] == 'l') puts_("checksum FAILED\r\n");
            if (len == 7 && line[0] == 't' && line[1] == 'r' && line[2] == 'i' && line[3] == 'c' && line[4] == 'k'
                && line[5] == 'l' && line[6] == 'e') {
                trickling = 1;
                trickle_at = ticks;
            }
            len = 0;
        }
    }
}

#include "startup.h"

VECTORS([15] = systick_handler, [16 + UART_IRQ] = uart_irq);
