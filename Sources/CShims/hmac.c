// The low-level SHA interfaces are deprecated in OpenSSL 3 but remain the fastest way to keep
// precomputed HMAC pad states; HMAC itself is RFC 2104.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "peerd_hmac.h"
#include <string.h>

#define HMAC_BLOCK 64

static void pads(const uint8_t *key, size_t key_length, uint8_t ipad[HMAC_BLOCK], uint8_t opad[HMAC_BLOCK],
                 int sha256) {
    uint8_t block[HMAC_BLOCK];
    memset(block, 0, sizeof block);
    if (key_length > HMAC_BLOCK) {
        if (sha256) SHA256(key, key_length, block); else SHA1(key, key_length, block);
    } else if (key_length > 0) {
        memcpy(block, key, key_length);
    }
    for (int i = 0; i < HMAC_BLOCK; i++) {
        ipad[i] = block[i] ^ 0x36;
        opad[i] = block[i] ^ 0x5c;
    }
}

void peerd_hmac_sha1_init(peerd_hmac_sha1_state *state, const uint8_t *key, size_t key_length) {
    uint8_t ipad[HMAC_BLOCK], opad[HMAC_BLOCK];
    pads(key, key_length, ipad, opad, 0);
    SHA1_Init(&state->inner);
    SHA1_Update(&state->inner, ipad, HMAC_BLOCK);
    SHA1_Init(&state->outer);
    SHA1_Update(&state->outer, opad, HMAC_BLOCK);
}

void peerd_hmac_sha1_update(peerd_hmac_sha1_state *state, const uint8_t *data, size_t length) {
    SHA1_Update(&state->inner, data, length);
}

void peerd_hmac_sha1_final(peerd_hmac_sha1_state *state, uint8_t out[20]) {
    uint8_t inner[20];
    SHA1_Final(inner, &state->inner);
    SHA_CTX outer = state->outer;
    SHA1_Update(&outer, inner, sizeof inner);
    SHA1_Final(out, &outer);
}

void peerd_hmac_sha256_init(peerd_hmac_sha256_state *state, const uint8_t *key, size_t key_length) {
    uint8_t ipad[HMAC_BLOCK], opad[HMAC_BLOCK];
    pads(key, key_length, ipad, opad, 1);
    SHA256_Init(&state->inner);
    SHA256_Update(&state->inner, ipad, HMAC_BLOCK);
    SHA256_Init(&state->outer);
    SHA256_Update(&state->outer, opad, HMAC_BLOCK);
}

void peerd_hmac_sha256_update(peerd_hmac_sha256_state *state, const uint8_t *data, size_t length) {
    SHA256_Update(&state->inner, data, length);
}

void peerd_hmac_sha256_final(peerd_hmac_sha256_state *state, uint8_t out[32]) {
    uint8_t inner[32];
    SHA256_Final(inner, &state->inner);
    SHA256_CTX outer = state->outer;
    SHA256_Update(&outer, inner, sizeof inner);
    SHA256_Final(out, &outer);
}
