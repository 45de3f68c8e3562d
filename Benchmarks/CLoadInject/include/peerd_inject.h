#ifndef PEERD_INJECT_H
#define PEERD_INJECT_H
#include <stdint.h>

// peerd-load's cheap sender: IPv4 UDP datagrams written onto the loopback interface through one
// AF_PACKET socket, with any source address and port, many per sendmmsg(2). The receiving kernel
// sees each as if a UDP socket bound to its source had sent it (same 5-tuple, same payload; the UDP
// checksum is left 0, "none", which loopback's own sends do not verify either). Linux only; needs
// CAP_NET_RAW.

/// One datagram to write (addresses and ports in host byte order).
typedef struct {
    uint32_t source_ip;
    uint32_t destination_ip;
    uint16_t source_port;
    uint16_t destination_port;
    uint32_t length;
    const uint8_t *payload;
} peerd_inject_datagram;

/// Datagrams written per call at most.
#define PEERD_INJECT_BATCH 64

/// Opens the socket on interface "lo": its descriptor, or -errno.
int peerd_inject_open(void);

/// Writes `count` (1...PEERD_INJECT_BATCH) datagrams: how many the kernel took, or -errno when it
/// took none.
int peerd_inject_send(int fd, const peerd_inject_datagram *datagrams, int count);

/// Settings to put back if the process is ended by SIGINT, SIGTERM or SIGHUP before it restores
/// them itself: each `path` (a /proc/sys file, at most 127 bytes) gets `value` (a short string, at
/// most 15 bytes) written back from the signal handler, which then ends the process as the signal
/// would have. At most 4 settings; returns 0, or -1 when there is no room or a string is too long.
/// (Only async-signal-safe calls run in the handler: open, write, close, sigaction, raise.)
int peerd_inject_restore_on_signal(const char *path, const char *value);

/// Forgets the settings above (call once they are restored); the handlers stay and only re-raise.
void peerd_inject_forget_restores(void);

/// A file the signal handler above removes after it put the settings back (the ledger of what to
/// put back, which a later run reads when this one could not restore). -1 if the path is too long.
int peerd_inject_remove_on_signal(const char *path);

#endif
