/* The SRTP benchmark of peerd-bench (SRTPBenchmarks.swift) in plain C on libsrtp2, for the
 * wrapper-overhead ratio. Same policy as SRTPSession (ssrc_any_outbound / ssrc_any_inbound,
 * replay window 1024, no repeat tx), same packet (12-byte header + 100-byte payload), same
 * procedure: per round, prepare BATCH packets with consecutive sequence numbers (untimed), time
 * srtp_protect on each in place, then srtp_unprotect on the peer context in place. 7 timed
 * rounds after one warm-up round; prints the median ns per packet.
 * Build and run: Benchmarks/c/run.sh */
#include <srtp2/srtp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 20000
#define ROUNDS 7
#define PAYLOAD 100
#define SLOT (12 + PAYLOAD + SRTP_MAX_TRAILER_LEN)

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void check(srtp_err_status_t status, const char *what) {
    if (status != srtp_err_status_ok) {
        fprintf(stderr, "%s failed: %d\n", what, (int)status);
        exit(1);
    }
}

typedef void (*policy_setter)(srtp_crypto_policy_t *);

static srtp_t make_context(policy_setter rtp, policy_setter rtcp, unsigned char *key, srtp_ssrc_type_t direction) {
    srtp_policy_t policy;
    memset(&policy, 0, sizeof policy);
    rtp(&policy.rtp);
    rtcp(&policy.rtcp);
    policy.ssrc.type = direction;
    policy.ssrc.value = 0;
    policy.key = key;
    policy.window_size = 1024;
    policy.allow_repeat_tx = 0;
    policy.next = NULL;
    srtp_t context = NULL;
    check(srtp_create(&context, &policy), "srtp_create");
    return context;
}

static void run(const char *label, policy_setter rtp, policy_setter rtcp, int key_length, int salt_length) {
    unsigned char key[64];
    for (int i = 0; i < key_length + salt_length; i++) key[i] = (unsigned char)(rand() & 0xFF);
    srtp_t sender = make_context(rtp, rtcp, key, ssrc_any_outbound);
    srtp_t receiver = make_context(rtp, rtcp, key, ssrc_any_inbound);

    unsigned char payload[PAYLOAD];
    for (int i = 0; i < PAYLOAD; i++) payload[i] = (unsigned char)(i * 131 + 7);
    unsigned char *packets = malloc((size_t)BATCH * SLOT);
    int *lengths = malloc(sizeof(int) * BATCH);
    double protect_rounds[ROUNDS], unprotect_rounds[ROUNDS];
    uint16_t sequence = 1;

    for (int round = 0; round <= ROUNDS; round++) {
        for (int i = 0; i < BATCH; i++) {
            unsigned char *p = packets + (size_t)i * SLOT;
            uint32_t ts = (uint32_t)sequence * 960u;
            p[0] = 0x80; p[1] = 111;
            p[2] = (unsigned char)(sequence >> 8); p[3] = (unsigned char)sequence;
            p[4] = (unsigned char)(ts >> 24); p[5] = (unsigned char)(ts >> 16); p[6] = (unsigned char)(ts >> 8); p[7] = (unsigned char)ts;
            p[8] = 0x12; p[9] = 0x34; p[10] = 0x56; p[11] = 0x78;
            memcpy(p + 12, payload, PAYLOAD);
            lengths[i] = 12 + PAYLOAD;
            sequence++;
        }
        uint64_t start = now_ns();
        for (int i = 0; i < BATCH; i++) check(srtp_protect(sender, packets + (size_t)i * SLOT, &lengths[i]), "srtp_protect");
        uint64_t protect_ns = now_ns() - start;
        start = now_ns();
        for (int i = 0; i < BATCH; i++) check(srtp_unprotect(receiver, packets + (size_t)i * SLOT, &lengths[i]), "srtp_unprotect");
        uint64_t unprotect_ns = now_ns() - start;
        if (lengths[0] != 12 + PAYLOAD || memcmp(packets + 12, payload, PAYLOAD) != 0) {
            fprintf(stderr, "round trip mismatch\n");
            exit(1);
        }
        if (round > 0) {
            protect_rounds[round - 1] = (double)protect_ns / BATCH;
            unprotect_rounds[round - 1] = (double)unprotect_ns / BATCH;
        }
    }
    qsort(protect_rounds, ROUNDS, sizeof(double), compare);
    qsort(unprotect_rounds, ROUNDS, sizeof(double), compare);
    printf("c/%s: protect RTP (12+100 bytes) %.0f ns/op\n", label, protect_rounds[ROUNDS / 2]);
    printf("c/%s: unprotect RTP (12+100 bytes) %.0f ns/op\n", label, unprotect_rounds[ROUNDS / 2]);
    free(packets);
    free(lengths);
    srtp_dealloc(sender);
    srtp_dealloc(receiver);
}

int main(void) {
    check(srtp_init(), "srtp_init");
    srand(42);
    run("GCM-128", srtp_crypto_policy_set_aes_gcm_128_16_auth, srtp_crypto_policy_set_aes_gcm_128_16_auth, 16, 12);
    run("GCM-256", srtp_crypto_policy_set_aes_gcm_256_16_auth, srtp_crypto_policy_set_aes_gcm_256_16_auth, 32, 12);
    run("AES-CM-80", srtp_crypto_policy_set_rtp_default, srtp_crypto_policy_set_rtcp_default, 16, 14);
    srtp_shutdown();
    return 0;
}
