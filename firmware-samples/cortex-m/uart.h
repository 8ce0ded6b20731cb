/*
 * The board's first UART for the Cortex-M samples: one of three models,
 * chosen and placed by -D flags from the Makefile (UART_STM32, UART_PL011
 * or UART_CMSDK; UART_BASE, UART_IRQ).
 */
#ifndef VTARGET_SAMPLE_UART_H
#define VTARGET_SAMPLE_UART_H
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

#endif
