#define _GNU_SOURCE
#include "peerd_udp.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

int peerd_recv_batch(int fd, uint8_t *buffers, size_t buffer_size, unsigned int count,
                     uint32_t *lengths, uint8_t *sources, size_t source_size) {
    if (count == 0) return 0;
    if (count > 64) count = 64;
    struct mmsghdr messages[64];
    struct iovec vectors[64];
    memset(messages, 0, sizeof(struct mmsghdr) * count);
    for (unsigned int i = 0; i < count; i++) {
        vectors[i].iov_base = buffers + (size_t)i * buffer_size;
        vectors[i].iov_len = buffer_size;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_name = sources + (size_t)i * source_size;
        messages[i].msg_hdr.msg_namelen = (socklen_t)source_size;
    }
    int received;
    do {
        received = recvmmsg(fd, messages, count, MSG_DONTWAIT, NULL);
    } while (received < 0 && errno == EINTR);
    if (received < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    for (int i = 0; i < received; i++) {
        lengths[i] = (messages[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0 : messages[i].msg_len;
    }
    return received;
}
