// libFuzzer's driver entry point (available when linked with -sanitize=fuzzer).
#ifndef PEERD_CFUZZSUPPORT_H
#define PEERD_CFUZZSUPPORT_H
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif
