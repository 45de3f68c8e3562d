#ifndef PEERD_UDP_H
#define PEERD_UDP_H
#include <stddef.h>
#include <stdint.h>

// recvmmsg(2) for a batch of datagrams straight into caller-owned memory (Swift's Glibc module does
// not declare recvmmsg or struct mmsghdr: they need _GNU_SOURCE, defined in udp.c).
//
// Reads up to `count` datagrams (at most 64) from the non-blocking socket `fd`: datagram i lands at
// buffers + i * buffer_size, its length in lengths[i], its source address (a sockaddr_in or
// sockaddr_in6) at sources + i * source_size (source_size at least sizeof(struct sockaddr_in6)).
// A datagram longer than buffer_size is marked with lengths[i] = 0 (truncated: to be dropped).
// Returns how many were read, 0 when none was waiting, or -errno on an error.
int peerd_recv_batch(int fd, uint8_t *buffers, size_t buffer_size, unsigned int count,
                     uint32_t *lengths, uint8_t *sources, size_t source_size);

// Prefetches `lines` cache lines from `address` into every cache level: a hint, which never faults,
// even on memory freed since the address was taken. Asked for writing (a retain, a counter), but
// without a PRFCHW target x86 compilers emit a read prefetch (PREFETCHT0); PREFETCHW itself, through
// inline assembly, measured 1–5 % more CPU per packet (peerd-load, paired, 2026-12-06).
static inline void peerd_prefetch_lines(const void *address, int lines) {
    const char *line = (const char *)address;
    for (int index = 0; index < lines; index++) __builtin_prefetch(line + 64 * index, 1, 3);
}
#endif
