#ifndef PEERD_HMAC_H
#define PEERD_HMAC_H
#include <stddef.h>
#include <stdint.h>
#include <openssl/sha.h>

// HMAC-SHA1 / HMAC-SHA256 with the key's inner and outer pad states computed once
// (OpenSSL 3's one-shot HMAC() fetches an EVP_MAC on every call, ~8 us for a STUN check).
typedef struct { SHA_CTX inner; SHA_CTX outer; } peerd_hmac_sha1_state;
typedef struct { SHA256_CTX inner; SHA256_CTX outer; } peerd_hmac_sha256_state;

void peerd_hmac_sha1_init(peerd_hmac_sha1_state *state, const uint8_t *key, size_t key_length);
void peerd_hmac_sha1_update(peerd_hmac_sha1_state *state, const uint8_t *data, size_t length);
void peerd_hmac_sha1_final(peerd_hmac_sha1_state *state, uint8_t out[20]);

void peerd_hmac_sha256_init(peerd_hmac_sha256_state *state, const uint8_t *key, size_t key_length);
void peerd_hmac_sha256_update(peerd_hmac_sha256_state *state, const uint8_t *data, size_t length);
void peerd_hmac_sha256_final(peerd_hmac_sha256_state *state, uint8_t out[32]);
#endif
