#ifndef PEERD_MEMORY_H
#define PEERD_MEMORY_H

#include <stddef.h>

/// Bytes the C heap has handed out and not taken back: glibc's mallinfo2() small blocks in use
/// plus mmapped blocks. Swift's Glibc module does not import <malloc.h>, hence this function.
/// 0 where the C library has no mallinfo2.
size_t peerd_heap_bytes_in_use(void);

#endif
