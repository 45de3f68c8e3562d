/* The in-process DTLS 1.2 handshake of peerd-bench ("dtls/handshake: handshake only",
 * DTLSBenchmarks.swift) in plain C on OpenSSL, for the wrapper-overhead comparison. Same
 * configuration as DTLSContextCache.makeContext: one SSL_CTX per side (self-signed ECDSA P-256
 * certificate), DTLS 1.2 only, the same cipher and group lists, use_srtp with the four profiles,
 * peer certificate required and checked by a certificate-verify callback that compares the
 * SHA-256 fingerprint, no session cache or tickets, read-ahead, MTU 1200. Per run (untimed):
 * SSL_new on both sides with memory BIOs; timed: the handshake, shuttling every flight across,
 * until both finish, then SRTP keying material export on both sides. 100 runs after 2 warm-up
 * runs; prints the median. Build and run: Benchmarks/c/run.sh */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS 100
#define CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" \
                "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:" \
                "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA"
#define PROFILES "SRTP_AEAD_AES_256_GCM:SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80:SRTP_AES128_CM_SHA1_32"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what) {
    fprintf(stderr, "%s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

typedef struct { EVP_PKEY *key; X509 *cert; unsigned char print[32]; } identity;

static identity make_identity(void) {
    identity id;
    id.key = EVP_EC_gen("P-256");
    id.cert = X509_new();
    if (!id.key || !id.cert) die("key");
    X509_set_version(id.cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(id.cert), rand());
    X509_gmtime_adj(X509_getm_notBefore(id.cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(id.cert), 86400 * 30);
    X509_NAME *name = X509_get_subject_name(id.cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"peerd", -1, -1, 0);
    X509_set_issuer_name(id.cert, name);
    X509_set_pubkey(id.cert, id.key);
    if (X509_sign(id.cert, id.key, EVP_sha256()) <= 0) die("X509_sign");
    unsigned int length = 0;
    X509_digest(id.cert, EVP_sha256(), id.print, &length);
    return id;
}

/* The expected peer fingerprint, per SSL (as DTLSEndpoint keeps it). */
static int verify(X509_STORE_CTX *store, void *arg) {
    (void)arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    const unsigned char *expected = SSL_get_app_data(ssl);
    unsigned char print[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    X509 *cert = X509_STORE_CTX_get0_cert(store);
    if (!cert || !X509_digest(cert, EVP_sha256(), print, &length) || length != 32 || memcmp(print, expected, 32) != 0) {
        X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    X509_STORE_CTX_set_error(store, X509_V_OK);
    return 1;
}

static SSL_CTX *make_context(identity *id) {
    SSL_CTX *ctx = SSL_CTX_new(DTLS_method());
    if (!ctx) die("SSL_CTX_new");
    int ok = SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) == 1
        && SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION) == 1
        && SSL_CTX_use_certificate(ctx, id->cert) == 1
        && SSL_CTX_use_PrivateKey(ctx, id->key) == 1
        && SSL_CTX_check_private_key(ctx) == 1
        && SSL_CTX_set_cipher_list(ctx, CIPHERS) == 1
        && SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") == 1
        && SSL_CTX_set_tlsext_use_srtp(ctx, PROFILES) == 0;
    if (!ok) die("SSL_CTX configuration");
    SSL_CTX_set_options(ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, verify, NULL);
    return ctx;
}

static SSL *make_ssl(SSL_CTX *ctx, unsigned char *expected, int client) {
    SSL *ssl = SSL_new(ctx);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    if (!ssl || !in || !out) die("SSL_new");
    BIO_set_mem_eof_return(in, -1);
    BIO_set_mem_eof_return(out, -1);
    SSL_set_bio(ssl, in, out);
    SSL_set_app_data(ssl, expected);
    DTLS_set_link_mtu(ssl, 1200);
    SSL_set_mtu(ssl, 1200);
    if (client) SSL_set_connect_state(ssl); else SSL_set_accept_state(ssl);
    return ssl;
}

/* Moves what `from` wrote to `to`'s input; returns the bytes moved. */
static long shuttle(SSL *from, SSL *to) {
    char buffer[16384];
    long moved = 0;
    int n;
    while ((n = BIO_read(SSL_get_wbio(from), buffer, sizeof buffer)) > 0) {
        BIO_write(SSL_get_rbio(to), buffer, n);
        moved += n;
    }
    return moved;
}

static int step(SSL *ssl, int *done) {
    if (*done) return 1;
    int result = SSL_do_handshake(ssl);
    if (result == 1) { *done = 1; return 1; }
    int error = SSL_get_error(ssl, result);
    return error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE;
}

int main(void) {
    identity client_id = make_identity(), server_id = make_identity();
    SSL_CTX *client_ctx = make_context(&client_id), *server_ctx = make_context(&server_id);
    double samples[RUNS];
    for (int run = -2; run < RUNS; run++) {
        SSL *client = make_ssl(client_ctx, server_id.print, 1);
        SSL *server = make_ssl(server_ctx, client_id.print, 0);
        int client_done = 0, server_done = 0;
        uint64_t start = now_ns();
        for (int spins = 0; !(client_done && server_done); spins++) {
            if (!step(client, &client_done) || !step(server, &server_done) || spins > 100) die("handshake");
            shuttle(client, server);
            if (!step(server, &server_done)) die("handshake");
            shuttle(server, client);
        }
        unsigned char material[88];
        const char *label = "EXTRACTOR-dtls_srtp";
        if (SSL_export_keying_material(client, material, 88, label, strlen(label), NULL, 0, 0) != 1
            || SSL_export_keying_material(server, material, 88, label, strlen(label), NULL, 0, 0) != 1
            || SSL_get_selected_srtp_profile(client) == NULL)
            die("export");
        uint64_t elapsed = now_ns() - start;
        if (run >= 0) samples[run] = (double)elapsed;
        SSL_free(client);
        SSL_free(server);
    }
    qsort(samples, RUNS, sizeof samples[0], compare);
    printf("c/dtls handshake only (OpenSSL, memory BIOs) %.0f ns/op [min %.0f, max %.0f, n=%d]\n",
           samples[RUNS / 2], samples[0], samples[RUNS - 1], RUNS);
    return 0;
}
