// The C primitives alone, as a receiver for `peerd-load run --receiver c`: the work issue 7's
// "C primitives" figure names (UDP receive + libsrtp AES-GCM + an Ogg page per stream), done
// the plainest fast way in C, so that peerd's cost per packet can be set beside it in the same run
// (the machine's speed varies from minute to minute; a ratio measured side by side does not).
//
// What it does per datagram: recvmmsg batches (32 per call, up to 4 calls per wake-up) read every
// 2 ms while datagrams flow, as peerd's shared port does; the stream is found by SSRC in an array;
// srtp_unprotect (or srtp_unprotect_rtcp) with libsrtp on the same OpenSSL AES-GCM peerd installs
// (Sources/CShims/srtp_openssl.c); for RTP, the payload is appended to the stream's Ogg page, which
// is written with one writev a second (header + lacing + body, CRC over the page), as peerd's
// recorder does. Files are made at a stream's first packet. No ICE, DTLS, RTCP handling,
// statistics, talk detection, timers or reordering: those are what peerd adds.
//
// Keys are not negotiated: the senders (`SenderFarm` in raw mode) and this program derive stream
// i's AEAD_AES_256_GCM key and salt from i (see `derive_keys`), and stream i sends SSRC
// 0x50000000 + i to the port this program reports in its "ready" line.
//
// Protocol (JSON lines, as `peerd-load receive`): out {"op":"ready","rss":R,"id":PORT}; in
// {"op":"mark"} -> {"op":"mark","packets":P,"cpuLoopNs":T,"cpuProcessNs":T,"rss":R};
// {"op":"counts"} -> {"op":"counts","perStream":{...}}; {"op":"quit"} -> {"op":"bye","files":F,"bytes":B}.
//
// Build: Benchmarks/c/build_reference_receiver.sh (cc -O2, the shim's C files, -lsrtp2 -lcrypto).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <srtp2/srtp.h>

int peerd_srtp_install_openssl(void);

enum { MAX_STREAMS = 8192, VECTOR = 32, READS_PER_WAKEUP = 4, DATAGRAM = 2048, PAGE_PACKETS = 50 };
static const uint32_t SSRC_BASE = 0x50000000u;

typedef struct {
    srtp_t session;
    int fd;
    uint32_t serial, sequence;
    int64_t granule;
    int packets_in_page;
    int segments;
    uint8_t lacing[255];
    size_t body_length;
    uint8_t body[16384];
    long received;
} stream_state;

static stream_state *streams[MAX_STREAMS];
static const char *directory;
static long total_packets, srtp_failures, unknown_streams, files_made;
static int64_t bytes_written;
static uint32_t crc_table[256];

static int64_t clock_ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static long rss_bytes(void) {
    long pages = 0, resident = 0;
    FILE *file = fopen("/proc/self/statm", "r");
    if (file) {
        if (fscanf(file, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(file);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

// Same derivation as SenderFarm.rawKeys(index:) in Benchmarks/peerd-load/Sender.swift.
static void derive_keys(int index, uint8_t key_and_salt[44]) {
    for (int i = 0; i < 32; i++) key_and_salt[i] = (uint8_t)((index * 7 + i * 13 + 1) & 0xFF);
    for (int i = 0; i < 12; i++) key_and_salt[32 + i] = (uint8_t)((index * 11 + i * 3 + 5) & 0xFF);
}

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i << 24;
        for (int j = 0; j < 8; j++) r = (r & 0x80000000u) ? (r << 1) ^ 0x04C11DB7u : r << 1;
        crc_table[i] = r;
    }
}

static uint32_t crc_update(uint32_t crc, const uint8_t *bytes, size_t length) {
    for (size_t i = 0; i < length; i++) crc = (crc << 8) ^ crc_table[((crc >> 24) ^ bytes[i]) & 0xFF];
    return crc;
}

static void put_le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

// Writes one page: `segments` lacing values and `body_length` body bytes.
static void write_page(stream_state *s, uint8_t flags, const uint8_t *lacing, int segments, const uint8_t *body, size_t body_length) {
    uint8_t header[27 + 255];
    memcpy(header, "OggS", 4);
    header[4] = 0;
    header[5] = flags;
    put_le64(header + 6, (uint64_t)s->granule);
    put_le32(header + 14, s->serial);
    put_le32(header + 18, s->sequence++);
    put_le32(header + 22, 0);
    header[26] = (uint8_t)segments;
    memcpy(header + 27, lacing, (size_t)segments);
    size_t header_length = 27 + (size_t)segments;
    uint32_t crc = crc_update(crc_update(0, header, header_length), body, body_length);
    put_le32(header + 22, crc);
    struct iovec parts[2] = {{header, header_length}, {(void *)body, body_length}};
    ssize_t written = writev(s->fd, parts, 2);
    if (written > 0) bytes_written += written;
}

static void write_headers(stream_state *s) {
    uint8_t head[19] = {'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, 1, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0};
    uint8_t tags[8 + 4 + 1 + 4] = {'O', 'p', 'u', 's', 'T', 'a', 'g', 's', 1, 0, 0, 0, 'c', 0, 0, 0, 0};
    uint8_t lacing = sizeof head;
    write_page(s, 0x02, &lacing, 1, head, sizeof head);
    lacing = sizeof tags;
    write_page(s, 0x00, &lacing, 1, tags, sizeof tags);
}

static void flush_page(stream_state *s) {
    if (s->segments == 0) return;
    write_page(s, 0x00, s->lacing, s->segments, s->body, s->body_length);
    s->segments = 0;
    s->body_length = 0;
    s->packets_in_page = 0;
}

static stream_state *make_stream(int index, uint32_t ssrc) {
    stream_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    uint8_t key[44];
    derive_keys(index, key);
    srtp_policy_t policy;
    memset(&policy, 0, sizeof policy);
    srtp_crypto_policy_set_aes_gcm_256_16_auth(&policy.rtp);
    srtp_crypto_policy_set_aes_gcm_256_16_auth(&policy.rtcp);
    policy.ssrc.type = ssrc_specific;
    policy.ssrc.value = ssrc;
    policy.key = key;
    policy.window_size = 1024;
    if (srtp_create(&s->session, &policy) != srtp_err_status_ok) {
        free(s);
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/stream-%d.ogg", directory, index);
    s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    s->serial = ssrc;
    if (s->fd >= 0) {
        files_made++;
        write_headers(s);
    }
    return s;
}

static void handle_datagram(uint8_t *bytes, int length) {
    if (length < 12 || (bytes[0] & 0xC0) != 0x80) return;
    int rtcp = bytes[1] >= 192 && bytes[1] <= 223;
    uint32_t ssrc = rtcp ? (uint32_t)bytes[4] << 24 | bytes[5] << 16 | bytes[6] << 8 | bytes[7]
                         : (uint32_t)bytes[8] << 24 | bytes[9] << 16 | bytes[10] << 8 | bytes[11];
    uint32_t index = ssrc - SSRC_BASE;
    if (index >= MAX_STREAMS) { unknown_streams++; return; }
    stream_state *s = streams[index];
    if (!s && !(s = streams[index] = make_stream((int)index, ssrc))) { unknown_streams++; return; }
    if (rtcp) {
        if (srtp_unprotect_rtcp(s->session, bytes, &length) != srtp_err_status_ok) srtp_failures++;
        return;
    }
    if (srtp_unprotect(s->session, bytes, &length) != srtp_err_status_ok) { srtp_failures++; return; }
    int offset = 12 + 4 * (bytes[0] & 0x0F);
    if ((bytes[0] & 0x10) && offset + 4 <= length) offset += 4 + 4 * (bytes[offset + 2] << 8 | bytes[offset + 3]);
    if ((bytes[0] & 0x20) && length > offset) length -= bytes[length - 1];
    if (offset > length) return;
    int payload = length - offset;
    s->received++;
    total_packets++;
    if (s->fd < 0) return;
    int needed = payload / 255 + 1;
    if (s->segments + needed > 255 || s->body_length + (size_t)payload > sizeof s->body) flush_page(s);
    memcpy(s->body + s->body_length, bytes + offset, (size_t)payload);
    s->body_length += (size_t)payload;
    for (int i = 0; i < needed - 1; i++) s->lacing[s->segments++] = 255;
    s->lacing[s->segments++] = (uint8_t)(payload % 255);
    s->granule += 960;
    if (++s->packets_in_page >= PAGE_PACKETS) flush_page(s);
}

static uint8_t buffers[VECTOR][DATAGRAM];
static struct mmsghdr messages[VECTOR];
static struct iovec vectors[VECTOR];
static struct sockaddr_storage sources[VECTOR];

// Reads up to READS_PER_WAKEUP batches; returns how many datagrams.
static int read_batches(int socket_fd) {
    int total = 0;
    for (int read = 0; read < READS_PER_WAKEUP; read++) {
        for (int i = 0; i < VECTOR; i++) {
            vectors[i].iov_base = buffers[i];
            vectors[i].iov_len = DATAGRAM;
            memset(&messages[i].msg_hdr, 0, sizeof messages[i].msg_hdr);
            messages[i].msg_hdr.msg_iov = &vectors[i];
            messages[i].msg_hdr.msg_iovlen = 1;
            messages[i].msg_hdr.msg_name = &sources[i];
            messages[i].msg_hdr.msg_namelen = sizeof sources[i];
        }
        int count = recvmmsg(socket_fd, messages, VECTOR, MSG_DONTWAIT, NULL);
        if (count <= 0) break;
        for (int i = 0; i < count; i++) handle_datagram(buffers[i], (int)messages[i].msg_len);
        total += count;
        if (count < VECTOR) break;
    }
    return total;
}

static void reply(const char *line) {
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

// Handles the complete lines in `input`; returns 0 after "quit".
static int handle_commands(char *input, size_t *length) {
    char *start = input;
    char *newline;
    int running = 1;
    while ((newline = memchr(start, '\n', *length - (size_t)(start - input))) != NULL) {
        *newline = 0;
        char line[512];
        if (strstr(start, "\"mark\"")) {
            snprintf(line, sizeof line, "{\"op\":\"mark\",\"packets\":%ld,\"cpuLoopNs\":%lld,\"cpuProcessNs\":%lld,\"rss\":%ld}",
                     total_packets, (long long)clock_ns(CLOCK_THREAD_CPUTIME_ID), (long long)clock_ns(CLOCK_PROCESS_CPUTIME_ID), rss_bytes());
            reply(line);
        } else if (strstr(start, "\"counts\"")) {
            fputs("{\"op\":\"counts\",\"perStream\":{", stdout);
            int first = 1;
            for (int i = 0; i < MAX_STREAMS; i++) {
                if (!streams[i]) continue;
                printf("%s\"%d\":%ld", first ? "" : ",", i, streams[i]->received);
                first = 0;
            }
            snprintf(line, sizeof line, "},\"message\":\"srtp failures %ld, unknown %ld\"}", srtp_failures, unknown_streams);
            reply(line);
        } else if (strstr(start, "\"quit\"")) {
            for (int i = 0; i < MAX_STREAMS; i++) {
                if (!streams[i]) continue;
                if (streams[i]->fd >= 0) { flush_page(streams[i]); close(streams[i]->fd); }
                srtp_dealloc(streams[i]->session);
            }
            snprintf(line, sizeof line, "{\"op\":\"bye\",\"files\":%ld,\"bytes\":%lld}", files_made, (long long)bytes_written);
            reply(line);
            running = 0;
        } else if (strstr(start, "\"offer\"")) {
            reply("{\"op\":\"error\",\"message\":\"the C reference receiver takes no offers (raw SRTP only)\"}");
        }
        start = newline + 1;
    }
    size_t rest = *length - (size_t)(start - input);
    memmove(input, start, rest);
    *length = rest;
    return running;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s DIR\n", argv[0]); return 2; }
    directory = argv[1];
    signal(SIGPIPE, SIG_IGN);
    crc_init();
    if (srtp_init() != srtp_err_status_ok || peerd_srtp_install_openssl() != 0) { fprintf(stderr, "srtp init failed\n"); return 1; }
    int socket_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int size = 16 << 20;  /* as peerd's shared port: forced when permitted (CAP_NET_ADMIN), else capped by rmem_max */
    if (setsockopt(socket_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
        setsockopt(socket_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7F000001)};
    socklen_t address_length = sizeof address;
    if (bind(socket_fd, (struct sockaddr *)&address, sizeof address) != 0 ||
        getsockname(socket_fd, (struct sockaddr *)&address, &address_length) != 0) { perror("bind"); return 1; }
    char line[256];
    snprintf(line, sizeof line, "{\"op\":\"ready\",\"rss\":%ld,\"id\":%d}", rss_bytes(), ntohs(address.sin_port));
    reply(line);

    char input[1 << 16];
    size_t input_length = 0;
    int paced = 0;  // reading every 2 ms while datagrams flow; else waiting for the socket
    int64_t next_read = 0;
    for (;;) {
        struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = socket_fd, .events = POLLIN}};
        int64_t now = clock_ns(CLOCK_MONOTONIC);
        struct timespec timeout = {0, 0};
        if (paced && next_read > now) timeout.tv_nsec = next_read - now;
        int ready = ppoll(fds, paced ? 1 : 2, paced ? &timeout : NULL, NULL);
        if (ready < 0 && errno != EINTR) break;
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            ssize_t got = read(0, input + input_length, sizeof input - input_length - 1);
            if (got <= 0) break;
            input_length += (size_t)got;
            if (!handle_commands(input, &input_length)) break;
        }
        now = clock_ns(CLOCK_MONOTONIC);
        if ((paced && now >= next_read) || (!paced && (fds[1].revents & POLLIN))) {
            int count = read_batches(socket_fd);
            paced = count > 0;
            next_read = clock_ns(CLOCK_MONOTONIC) + (count >= VECTOR * READS_PER_WAKEUP ? 0 : 2000000);
        }
    }
    return 0;
}
