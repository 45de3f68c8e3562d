#ifndef PEERD_OPENSSL_SHIM_H
#define PEERD_OPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

static inline long peerd_DTLSv1_get_timeout(SSL *ssl, struct timeval *tv) { return DTLSv1_get_timeout(ssl, tv); }
static inline long peerd_DTLSv1_handle_timeout(SSL *ssl) { return DTLSv1_handle_timeout(ssl); }
static inline long peerd_DTLS_set_link_mtu(SSL *ssl, long mtu) { return DTLS_set_link_mtu(ssl, mtu); }
static inline long peerd_SSL_set_mtu(SSL *ssl, long mtu) { return SSL_set_mtu(ssl, mtu); }
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
static inline EVP_PKEY *peerd_EVP_EC_gen_p256(void) { return EVP_EC_gen("P-256"); }
static inline int peerd_DTLS1_2_VERSION(void) { return DTLS1_2_VERSION; }
static inline int peerd_DTLS1_VERSION(void) { return DTLS1_VERSION; }
static inline long peerd_SSL_CTX_set_options(SSL_CTX *ctx, uint64_t op) { return (long)SSL_CTX_set_options(ctx, op); }
static inline const char *peerd_openssl_version(void) { return OpenSSL_version(OPENSSL_VERSION); }
#endif
