#ifndef PEERD_OPENSSL_SHIM_H
#define PEERD_OPENSSL_SHIM_H
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/err.h>
#include <openssl/srtp.h>

static inline long peerd_DTLSv1_get_timeout(SSL *ssl, struct timeval *tv) { return DTLSv1_get_timeout(ssl, tv); }
static inline long peerd_DTLSv1_handle_timeout(SSL *ssl) { return DTLSv1_handle_timeout(ssl); }
static inline long peerd_DTLS_set_link_mtu(SSL *ssl, long mtu) { return DTLS_set_link_mtu(ssl, mtu); }
static inline long peerd_SSL_set_mtu(SSL *ssl, long mtu) { return SSL_set_mtu(ssl, mtu); }
/// Largest plaintext per record (OpenSSL sizes the write buffer from it: 16 KiB by default).
static inline long peerd_SSL_set_max_send_fragment(SSL *ssl, long bytes) { return SSL_set_max_send_fragment(ssl, bytes); }
static inline long peerd_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int v) { return SSL_CTX_set_min_proto_version(ctx, v); }
static inline long peerd_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int v) { return SSL_CTX_set_max_proto_version(ctx, v); }
static inline long peerd_SSL_CTX_set_mode(SSL_CTX *ctx, long m) { return SSL_CTX_set_mode(ctx, m); }
static inline void peerd_SSL_CTX_set_read_ahead(SSL_CTX *ctx, int yes) { SSL_CTX_set_read_ahead(ctx, yes); }
static inline long peerd_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *list) { return SSL_CTX_set1_groups_list(ctx, list); }
static inline long peerd_BIO_set_mem_eof_return(BIO *b, int v) { return BIO_set_mem_eof_return(b, v); }
static inline long peerd_BIO_get_mem_data(BIO *b, char **pp) { return BIO_get_mem_data(b, pp); }
static inline size_t peerd_BIO_pending(BIO *b) { return BIO_pending(b); }
static inline int peerd_BIO_reset(BIO *b) { return (int)BIO_reset(b); }
static inline void peerd_OPENSSL_free(void *p) { OPENSSL_free(p); }
static inline uint64_t peerd_SSL_OP_NO_QUERY_MTU(void) { return SSL_OP_NO_QUERY_MTU; }
static inline uint64_t peerd_SSL_OP_NO_TICKET(void) { return SSL_OP_NO_TICKET; }
static inline uint64_t peerd_SSL_OP_NO_RENEGOTIATION(void) { return SSL_OP_NO_RENEGOTIATION; }
static inline uint64_t peerd_SSL_OP_CIPHER_SERVER_PREFERENCE(void) { return SSL_OP_CIPHER_SERVER_PREFERENCE; }
static inline EVP_PKEY *peerd_EVP_EC_gen_p256(void) { return EVP_EC_gen("P-256"); }
static inline int peerd_DTLS1_2_VERSION(void) { return DTLS1_2_VERSION; }
static inline int peerd_DTLS1_VERSION(void) { return DTLS1_VERSION; }
static inline long peerd_SSL_CTX_set_options(SSL_CTX *ctx, uint64_t op) { return (long)SSL_CTX_set_options(ctx, op); }
static inline long peerd_SSL_set_options(SSL *ssl, uint64_t op) { return (long)SSL_set_options(ssl, op); }
static inline const char *peerd_openssl_version(void) { return OpenSSL_version(OPENSSL_VERSION); }
/// 1 when the extended master secret extension (RFC 7627) was negotiated.
static inline long peerd_SSL_get_extms_support(SSL *ssl) { return SSL_get_extms_support(ssl); }
static inline int peerd_SSL_set_app_data(SSL *ssl, void *data) { return SSL_set_ex_data(ssl, 0, data); }
static inline void *peerd_SSL_get_app_data(const SSL *ssl) { return SSL_get_ex_data(ssl, 0); }
static inline long peerd_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_session_cache_mode(ctx, mode); }
static inline long peerd_SSL_SESS_CACHE_OFF(void) { return SSL_SESS_CACHE_OFF; }
static inline int peerd_X509_set_version3(X509 *x) { return X509_set_version(x, 2); }

// A datagram BIO without a socket: each BIO_write becomes one queued outgoing datagram,
// each BIO_read returns exactly one queued incoming datagram (truncating, like recv, if the
// caller's buffer is smaller). Reads on an empty queue fail with the retry flag set.
BIO *peerd_dgram_bio_new(void);
/// Queues one incoming datagram. Returns 1, or 0 on allocation failure.
int peerd_dgram_bio_push_incoming(BIO *bio, const unsigned char *data, size_t len);
/// Length of the next outgoing datagram, or -1 if there is none.
long peerd_dgram_bio_next_outgoing_len(BIO *bio);
/// Moves the next outgoing datagram into buf (capacity cap) and returns its length, or -1.
long peerd_dgram_bio_pop_outgoing(BIO *bio, unsigned char *buf, size_t cap);
/// Drops every queued datagram in both directions.
void peerd_dgram_bio_clear(BIO *bio);

/// DTLS retransmission timer callback (DTLS_set_timer_cb): the first timeout is the value
/// stored with peerd_dtls_set_timer_config, then it doubles up to the configured maximum.
unsigned int peerd_dtls_timer_cb(SSL *ssl, unsigned int previous_us);
/// Stores the timer configuration for ssl (ex_data slot private to the shims) and installs
/// peerd_dtls_timer_cb. Returns 1 on success.
int peerd_dtls_set_timer_config(SSL *ssl, unsigned int initial_us, unsigned int max_us);
#endif
