#define _GNU_SOURCE
#include "peerd_inject.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int peerd_inject_open(void) {
    unsigned index = if_nametoindex("lo");
    if (index == 0) return -errno;
    // Protocol 0: the socket receives nothing (ETH_P_ALL would copy every loopback packet to it).
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_ll address;
    memset(&address, 0, sizeof address);
    address.sll_family = AF_PACKET;
    address.sll_protocol = 0;
    address.sll_ifindex = (int)index;
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);  // loopback has no qdisc anyway
    int buffer = 16 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer, sizeof buffer);
    return fd;
}

enum { HEADER = 14 + 20 + 8 };

static uint16_t ipv4_checksum(const uint8_t *header) {
    uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2) sum += (uint32_t)(header[i] << 8 | header[i + 1]);
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

static void put16(uint8_t *at, uint16_t value) { at[0] = (uint8_t)(value >> 8); at[1] = (uint8_t)value; }
static void put32(uint8_t *at, uint32_t value) { put16(at, (uint16_t)(value >> 16)); put16(at + 2, (uint16_t)value); }

int peerd_inject_send(int fd, const peerd_inject_datagram *datagrams, int count) {
    if (count <= 0) return 0;
    if (count > PEERD_INJECT_BATCH) count = PEERD_INJECT_BATCH;
    uint8_t headers[PEERD_INJECT_BATCH][HEADER];
    struct iovec vectors[PEERD_INJECT_BATCH][2];
    struct mmsghdr messages[PEERD_INJECT_BATCH];
    memset(messages, 0, sizeof(struct mmsghdr) * (size_t)count);
    for (int k = 0; k < count; k++) {
        const peerd_inject_datagram *datagram = &datagrams[k];
        uint8_t *h = headers[k];
        // Ethernet: loopback's addresses are all zero; EtherType IPv4.
        memset(h, 0, 12);
        put16(h + 12, ETH_P_IP);
        uint8_t *ip = h + 14;
        ip[0] = 0x45;                                    // version 4, 20-byte header
        ip[1] = 0;                                       // DSCP/ECN
        put16(ip + 2, (uint16_t)(20 + 8 + datagram->length));
        put16(ip + 4, 0);                                // identification (DF set: no fragments)
        put16(ip + 6, 0x4000);                           // DF
        ip[8] = 64;                                      // TTL
        ip[9] = IPPROTO_UDP;
        put16(ip + 10, 0);
        put32(ip + 12, datagram->source_ip);
        put32(ip + 16, datagram->destination_ip);
        put16(ip + 10, ipv4_checksum(ip));
        uint8_t *udp = ip + 20;
        put16(udp, datagram->source_port);
        put16(udp + 2, datagram->destination_port);
        put16(udp + 4, (uint16_t)(8 + datagram->length));
        put16(udp + 6, 0);                               // no checksum (IPv4 allows it)
        vectors[k][0].iov_base = h;
        vectors[k][0].iov_len = HEADER;
        vectors[k][1].iov_base = (void *)datagram->payload;
        vectors[k][1].iov_len = datagram->length;
        messages[k].msg_hdr.msg_iov = vectors[k];
        messages[k].msg_hdr.msg_iovlen = 2;
    }
    int sent = sendmmsg(fd, messages, (unsigned)count, 0);
    return sent < 0 ? -errno : sent;
}

// Settings to put back on a fatal signal (see the header). Written before the handlers are
// installed and read only by them; `restore_count` is the publication point.
static struct { char path[128]; char value[16]; } restores[4];
static volatile sig_atomic_t restore_count = 0;
static int handlers_installed = 0;
// A file the handler removes once the settings are back (the ledger a later run would restore from).
static char ledger_path[128];
static volatile sig_atomic_t ledger_set = 0;

static void restore_and_reraise(int signal_number) {
    int count = restore_count;
    restore_count = 0;
    for (int index = count - 1; index >= 0; index--) {
        int fd = open(restores[index].path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t ignored = write(fd, restores[index].value, strlen(restores[index].value));
        (void)ignored;
        close(fd);
    }
    if (count > 0 && ledger_set) unlink(ledger_path);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    sigaction(signal_number, &action, NULL);
    raise(signal_number);
}

int peerd_inject_restore_on_signal(const char *path, const char *value) {
    int count = restore_count;
    if (count >= 4 || strlen(path) >= sizeof restores[0].path || strlen(value) >= sizeof restores[0].value) return -1;
    strcpy(restores[count].path, path);
    strcpy(restores[count].value, value);
    restore_count = count + 1;
    if (!handlers_installed) {
        handlers_installed = 1;
        const int signals[] = {SIGINT, SIGTERM, SIGHUP};
        for (unsigned index = 0; index < sizeof signals / sizeof signals[0]; index++) {
            struct sigaction action;
            memset(&action, 0, sizeof action);
            action.sa_handler = restore_and_reraise;
            sigemptyset(&action.sa_mask);
            for (unsigned other = 0; other < sizeof signals / sizeof signals[0]; other++) sigaddset(&action.sa_mask, signals[other]);
            sigaction(signals[index], &action, NULL);
        }
    }
    return 0;
}

void peerd_inject_forget_restores(void) { restore_count = 0; }

int peerd_inject_remove_on_signal(const char *path) {
    if (strlen(path) >= sizeof ledger_path) return -1;
    ledger_set = 0;
    strcpy(ledger_path, path);
    ledger_set = 1;
    return 0;
}
