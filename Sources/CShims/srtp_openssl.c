// libsrtp2 cipher and auth types on system OpenSSL; see peerd_srtp.h for why.
//
// The contracts are libsrtp 2.x's (cipher.h, auth.h), as srtp.c uses them:
// - GCM: set_iv(12-byte IV, direction), set_aad, then encrypt + get_tag (tag written after the
//   ciphertext), or decrypt over ciphertext + tag (length includes the tag; verified, then the
//   length is reduced by it);
// - ICM: init(key || 14-byte salt), set_iv(16-byte IV) sets counter = IV XOR (salt || 00 00),
//   encrypt XORs the key stream;
// - HMAC: init(key), start(), update(data)..., compute(last data, tag length, tag).
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "peerd_srtp.h"
#include "peerd_hmac.h"
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <srtp2/auth.h>
#include <srtp2/cipher.h>
#include <stdlib.h>
#include <string.h>

// Known-answer tests libsrtp exports for its own types (cipher_test_cases.c, hmac*.c); used as
// the self-test data of the replacements.
extern const srtp_cipher_test_case_t srtp_aes_gcm_128_test_case_0;
extern const srtp_cipher_test_case_t srtp_aes_gcm_256_test_case_0;
extern const srtp_cipher_test_case_t srtp_aes_icm_128_test_case_0;
extern const srtp_cipher_test_case_t srtp_aes_icm_192_test_case_0;
extern const srtp_cipher_test_case_t srtp_aes_icm_256_test_case_0;
extern const srtp_auth_test_case_t srtp_hmac_test_case_0;
// libsrtp's own types (NSS on Debian), exported but not declared in its headers.
extern const srtp_cipher_type_t srtp_aes_gcm_128, srtp_aes_gcm_256, srtp_aes_icm_128, srtp_aes_icm_192, srtp_aes_icm_256;
extern const srtp_auth_type_t srtp_hmac;
// Exported by libsrtp2 but not in its installed headers.
extern const srtp_cipher_type_t *srtp_crypto_kernel_get_cipher_type(srtp_cipher_type_id_t id);
extern const srtp_auth_type_t *srtp_crypto_kernel_get_auth_type(srtp_auth_type_id_t id);

static const srtp_cipher_type_t gcm_128, gcm_256, icm_128, icm_192, icm_256;
static const srtp_auth_type_t hmac_sha1;

// MARK: shared by the cipher types

// Each cipher's state starts with its EVP context; the cipher and its state are one allocation.
typedef struct {
    EVP_CIPHER_CTX *ctx;
} evp_state;

// MARK: what a session allocated (prefetch hints)

// The blocks our types allocate while a capture is open on this thread (see peerd_srtp_capture_begin).
static __thread const void *captured[PEERD_SRTP_CAPTURE_MAX];
static __thread int captured_count = -1;

static void capture(const void *block) {
    if (captured_count >= 0 && captured_count < PEERD_SRTP_CAPTURE_MAX) captured[captured_count++] = block;
}

void peerd_srtp_capture_begin(void) { captured_count = 0; }

int peerd_srtp_capture_end(const void **blocks) {
    int count = captured_count < 0 ? 0 : captured_count;
    for (int index = 0; index < count; index++) blocks[index] = captured[index];
    captured_count = -1;
    return count;
}

// MARK: what a session's stream touches (prefetch hints; layout in peerd_srtp.h)

extern unsigned int srtp_get_version(void);

static const void *load_pointer(const void *base, size_t offset) {
    const void *value;
    memcpy(&value, (const unsigned char *)base + offset, sizeof value);
    return value;
}

static uint32_t load_u32(const void *base, size_t offset) {
    uint32_t value;
    memcpy(&value, (const unsigned char *)base + offset, sizeof value);
    return value;
}

int peerd_srtp_stream_blocks(const void *session, const void *rtp_cipher, unsigned int window_bits,
                             const void **blocks, int *sizes) {
    static int layout_known = -1;
    if (layout_known < 0) layout_known = (srtp_get_version() >> 16) == 0x0205 && sizeof(void *) == 8;
    if (!layout_known || session == NULL || rtp_cipher == NULL) return 0;
    const void *head = load_pointer(session, 0);
    if (head == NULL) return 0;
    const void *stream = load_pointer(head, 0x70);
    if (stream == NULL) return 0;  // no packet yet: the template is all there is
    const void *keys = load_pointer(stream, 8);
    if (keys == NULL || load_u32(stream, 16) != 1 || load_u32(stream, 32) != window_bits) return 0;
    if (load_pointer(keys, 0) != rtp_cipher) return 0;
    const void *words = load_pointer(stream, 40), *auth = load_pointer(keys, 16), *limit = load_pointer(keys, 80);
    if (words == NULL || auth == NULL || limit == NULL) return 0;
    int count = 0;
    blocks[count] = (const unsigned char *)head + 0x70; sizes[count++] = 16;  // the head's next/prev
    blocks[count] = stream; sizes[count++] = 128;
    blocks[count] = keys; sizes[count++] = 88;
    blocks[count] = words; sizes[count++] = (int)(window_bits / 8);
    blocks[count] = limit; sizes[count++] = 24;
    blocks[count] = auth; sizes[count++] = 32;
    return count;
}

int peerd_srtp_cipher_state_blocks(const void *cipher_block, const void **blocks, int *sizes) {
    static int layout_known = -1;
    if (layout_known < 0) layout_known = (OpenSSL_version_num() >> 20) == 0x300 && sizeof(void *) == 8;
    if (!layout_known || cipher_block == NULL) return 0;
    const srtp_cipher_t *cipher = cipher_block;
    if (cipher->type != &gcm_128 && cipher->type != &gcm_256) return 0;
    EVP_CIPHER_CTX *ctx = ((const evp_state *)cipher->state)->ctx;
    const EVP_CIPHER *evp = EVP_CIPHER_CTX_get0_cipher(ctx);
    if (evp == NULL || load_pointer(ctx, 0) != evp || load_pointer(ctx, 176) != evp) return 0;
    const unsigned char *gcm = load_pointer(ctx, 168);
    if (gcm == NULL || load_u32(gcm, 0) != EVP_CIPH_GCM_MODE) return 0;
    size_t key_length, iv_length;
    memcpy(&key_length, gcm + 8, sizeof key_length);
    memcpy(&iv_length, gcm + 16, sizeof iv_length);
    if ((int)key_length != EVP_CIPHER_CTX_get_key_length(ctx) || iv_length != 12) return 0;
    // The key schedule: the pointer, among the context's words after its IV buffer, that points into
    // the context itself at an AES_KEY (60 round-key words, then the rounds: 10 or 14 here, one less
    // as AES-NI's key setup stores them).
    int rounds = key_length == 32 ? 14 : 10;
    const unsigned char *schedule = NULL;
    for (size_t offset = 232; offset < 720 && schedule == NULL; offset += 8) {
        const unsigned char *candidate = load_pointer(gcm, offset);
        if (candidate <= gcm + offset || candidate >= gcm + 768) continue;
        int stored = (int)load_u32(candidate, 240);
        if (stored == rounds || stored == rounds - 1) schedule = candidate;
    }
    if (schedule == NULL) return 0;
    // The fields and IV (the IV buffer's first 12 bytes), then the buffers, GCM state and key schedule.
    blocks[0] = gcm; sizes[0] = 128;
    blocks[1] = gcm + 192; sizes[1] = (int)(schedule + 244 - (gcm + 192));
    return 2;
}

static srtp_err_status_t new_cipher(srtp_cipher_t **cp, const srtp_cipher_type_t *type, int key_len, size_t state_size) {
    srtp_cipher_t *cipher = calloc(1, sizeof(srtp_cipher_t) + state_size);
    if (cipher == NULL) return srtp_err_status_alloc_fail;
    evp_state *state = (evp_state *)(cipher + 1);
    state->ctx = EVP_CIPHER_CTX_new();
    if (state->ctx == NULL) {
        free(cipher);
        return srtp_err_status_alloc_fail;
    }
    cipher->type = type;
    cipher->state = state;
    cipher->key_len = key_len;
    cipher->algorithm = type->id;
    capture(cipher);     // the cipher and its state: one block
    capture(state->ctx); // the EVP context
    *cp = cipher;
    return srtp_err_status_ok;
}

static void free_cipher(srtp_cipher_t *cipher, size_t state_size) {
    EVP_CIPHER_CTX_free(((evp_state *)cipher->state)->ctx); // clears the key schedule
    OPENSSL_cleanse(cipher, sizeof(srtp_cipher_t) + state_size);
    free(cipher);
}

// MARK: AES-GCM

typedef struct {
    EVP_CIPHER_CTX *ctx; // first, as in evp_state
    int key_size;
    int tag_len;
    int encrypt; // -1 until set_iv
} gcm_state;

static srtp_err_status_t gcm_alloc(srtp_cipher_t **cp, int key_len, int tag_len) {
    const srtp_cipher_type_t *type;
    int key_size;
    if (key_len == SRTP_AES_GCM_128_KEY_LEN_WSALT) {
        type = &gcm_128;
        key_size = SRTP_AES_128_KEY_LEN;
    } else if (key_len == SRTP_AES_GCM_256_KEY_LEN_WSALT) {
        type = &gcm_256;
        key_size = SRTP_AES_256_KEY_LEN;
    } else {
        return srtp_err_status_bad_param;
    }
    if (tag_len != 8 && tag_len != 16) return srtp_err_status_bad_param;
    srtp_err_status_t status = new_cipher(cp, type, key_len, sizeof(gcm_state));
    if (status != srtp_err_status_ok) return status;
    gcm_state *state = (*cp)->state;
    state->key_size = key_size;
    state->tag_len = tag_len;
    state->encrypt = -1;
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_dealloc(srtp_cipher_t *cipher) {
    free_cipher(cipher, sizeof(gcm_state));
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_init(void *opaque, const uint8_t *key) {
    gcm_state *state = opaque;
    const EVP_CIPHER *evp = state->key_size == SRTP_AES_256_KEY_LEN ? EVP_aes_256_gcm() : EVP_aes_128_gcm();
    state->encrypt = -1;
    // The key schedule is made here, once; set_iv only changes the IV.
    if (!EVP_CipherInit_ex(state->ctx, evp, NULL, key, NULL, 1)) {
        ERR_clear_error();
        return srtp_err_status_init_fail;
    }
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_set_iv(void *opaque, uint8_t *iv, srtp_cipher_direction_t direction) {
    gcm_state *state = opaque;
    if (direction != srtp_direction_encrypt && direction != srtp_direction_decrypt) return srtp_err_status_bad_param;
    state->encrypt = direction == srtp_direction_encrypt;
    // The IV length is GCM's default, 12 bytes.
    if (!EVP_CipherInit_ex(state->ctx, NULL, NULL, NULL, iv, state->encrypt)) {
        ERR_clear_error();
        return srtp_err_status_init_fail;
    }
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_set_aad(void *opaque, const uint8_t *aad, uint32_t aad_len) {
    gcm_state *state = opaque;
    int length = 0;
    if (state->encrypt < 0 || aad_len > INT32_MAX) return srtp_err_status_bad_param;
    if (!EVP_CipherUpdate(state->ctx, NULL, &length, aad, (int)aad_len)) {
        ERR_clear_error();
        return srtp_err_status_algo_fail;
    }
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_encrypt(void *opaque, uint8_t *buffer, unsigned int *length) {
    gcm_state *state = opaque;
    int written = 0;
    if (state->encrypt != 1 || *length > INT32_MAX) return srtp_err_status_bad_param;
    if (*length > 0 && !EVP_CipherUpdate(state->ctx, buffer, &written, buffer, (int)*length)) {
        ERR_clear_error();
        return srtp_err_status_cipher_fail;
    }
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_get_tag(void *opaque, uint8_t *tag, uint32_t *length) {
    gcm_state *state = opaque;
    int written = 0;
    if (state->encrypt != 1) return srtp_err_status_bad_param;
    if (!EVP_CipherFinal_ex(state->ctx, NULL, &written) ||
        !EVP_CIPHER_CTX_ctrl(state->ctx, EVP_CTRL_GCM_GET_TAG, state->tag_len, tag)) {
        ERR_clear_error();
        return srtp_err_status_algo_fail;
    }
    *length = (uint32_t)state->tag_len;
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_decrypt(void *opaque, uint8_t *buffer, unsigned int *length) {
    gcm_state *state = opaque;
    int written = 0;
    if (state->encrypt != 0 || *length > INT32_MAX) return srtp_err_status_bad_param;
    if (*length < (unsigned int)state->tag_len) return srtp_err_status_auth_fail;
    unsigned int ciphertext_length = *length - (unsigned int)state->tag_len;
    if (!EVP_CIPHER_CTX_ctrl(state->ctx, EVP_CTRL_GCM_SET_TAG, state->tag_len, buffer + ciphertext_length)) {
        ERR_clear_error();
        return srtp_err_status_algo_fail;
    }
    if (ciphertext_length > 0 && !EVP_CipherUpdate(state->ctx, buffer, &written, buffer, (int)ciphertext_length)) {
        ERR_clear_error();
        return srtp_err_status_cipher_fail;
    }
    // Final checks the tag.
    if (!EVP_CipherFinal_ex(state->ctx, NULL, &written)) {
        ERR_clear_error();
        return srtp_err_status_auth_fail;
    }
    *length = ciphertext_length;
    return srtp_err_status_ok;
}

static const srtp_cipher_type_t gcm_128 = {
    gcm_alloc, gcm_dealloc, gcm_init, gcm_set_aad, gcm_encrypt, gcm_decrypt, gcm_set_iv, gcm_get_tag,
    "AES-128 GCM on OpenSSL (peerd)", &srtp_aes_gcm_128_test_case_0, SRTP_AES_GCM_128,
};
static const srtp_cipher_type_t gcm_256 = {
    gcm_alloc, gcm_dealloc, gcm_init, gcm_set_aad, gcm_encrypt, gcm_decrypt, gcm_set_iv, gcm_get_tag,
    "AES-256 GCM on OpenSSL (peerd)", &srtp_aes_gcm_256_test_case_0, SRTP_AES_GCM_256,
};

// MARK: AES-ICM (counter mode)

typedef struct {
    EVP_CIPHER_CTX *ctx; // first, as in evp_state
    uint8_t offset[16]; // salt || 00 00
    int key_size;
    int keyed;
} icm_state;

static srtp_err_status_t icm_alloc(srtp_cipher_t **cp, int key_len, int tag_len) {
    (void)tag_len;
    const srtp_cipher_type_t *type;
    int key_size;
    switch (key_len) {
    case SRTP_AES_ICM_128_KEY_LEN_WSALT: type = &icm_128; key_size = SRTP_AES_128_KEY_LEN; break;
    case SRTP_AES_ICM_192_KEY_LEN_WSALT: type = &icm_192; key_size = SRTP_AES_192_KEY_LEN; break;
    case SRTP_AES_ICM_256_KEY_LEN_WSALT: type = &icm_256; key_size = SRTP_AES_256_KEY_LEN; break;
    default: return srtp_err_status_bad_param;
    }
    srtp_err_status_t status = new_cipher(cp, type, key_len, sizeof(icm_state));
    if (status != srtp_err_status_ok) return status;
    ((icm_state *)(*cp)->state)->key_size = key_size;
    return srtp_err_status_ok;
}

static srtp_err_status_t icm_dealloc(srtp_cipher_t *cipher) {
    free_cipher(cipher, sizeof(icm_state));
    return srtp_err_status_ok;
}

static srtp_err_status_t icm_init(void *opaque, const uint8_t *key) {
    icm_state *state = opaque;
    const EVP_CIPHER *evp;
    switch (state->key_size) {
    case SRTP_AES_128_KEY_LEN: evp = EVP_aes_128_ctr(); break;
    case SRTP_AES_192_KEY_LEN: evp = EVP_aes_192_ctr(); break;
    default: evp = EVP_aes_256_ctr(); break;
    }
    memset(state->offset, 0, sizeof state->offset);
    memcpy(state->offset, key + state->key_size, SRTP_SALT_LEN);
    state->keyed = 0;
    if (!EVP_EncryptInit_ex(state->ctx, evp, NULL, key, NULL)) {
        ERR_clear_error();
        return srtp_err_status_init_fail;
    }
    state->keyed = 1;
    return srtp_err_status_ok;
}

static srtp_err_status_t icm_set_iv(void *opaque, uint8_t *iv, srtp_cipher_direction_t direction) {
    (void)direction; // counter mode: the same operation both ways
    icm_state *state = opaque;
    uint8_t counter[16];
    if (!state->keyed) return srtp_err_status_bad_param;
    for (int i = 0; i < 16; i++) counter[i] = state->offset[i] ^ iv[i];
    // libsrtp's counter is 16 bits wide in the last two bytes, which start at zero here; a packet
    // (at most 65,535 bytes, 4,096 blocks) never carries into the bytes above them, so OpenSSL's
    // 128-bit counter gives the same key stream.
    if (!EVP_EncryptInit_ex(state->ctx, NULL, NULL, NULL, counter)) {
        ERR_clear_error();
        return srtp_err_status_init_fail;
    }
    return srtp_err_status_ok;
}

static srtp_err_status_t icm_encrypt(void *opaque, uint8_t *buffer, unsigned int *length) {
    icm_state *state = opaque;
    int written = 0;
    if (!state->keyed || *length > INT32_MAX) return srtp_err_status_bad_param;
    if (*length > 0 && !EVP_EncryptUpdate(state->ctx, buffer, &written, buffer, (int)*length)) {
        ERR_clear_error();
        return srtp_err_status_cipher_fail;
    }
    return srtp_err_status_ok;
}

static const srtp_cipher_type_t icm_128 = {
    icm_alloc, icm_dealloc, icm_init, NULL, icm_encrypt, icm_encrypt, icm_set_iv, NULL,
    "AES-128 ICM on OpenSSL (peerd)", &srtp_aes_icm_128_test_case_0, SRTP_AES_ICM_128,
};
static const srtp_cipher_type_t icm_192 = {
    icm_alloc, icm_dealloc, icm_init, NULL, icm_encrypt, icm_encrypt, icm_set_iv, NULL,
    "AES-192 ICM on OpenSSL (peerd)", &srtp_aes_icm_192_test_case_0, SRTP_AES_ICM_192,
};
static const srtp_cipher_type_t icm_256 = {
    icm_alloc, icm_dealloc, icm_init, NULL, icm_encrypt, icm_encrypt, icm_set_iv, NULL,
    "AES-256 ICM on OpenSSL (peerd)", &srtp_aes_icm_256_test_case_0, SRTP_AES_ICM_256,
};

// MARK: HMAC-SHA1

typedef struct {
    peerd_hmac_sha1_state keyed;   // pads hashed once, by init
    peerd_hmac_sha1_state running; // a copy of keyed, from start
} hmac_state;

static srtp_err_status_t hmac_alloc(srtp_auth_t **ap, int key_len, int out_len) {
    if (key_len < 0 || key_len > 20 || out_len < 0 || out_len > 20) return srtp_err_status_bad_param;
    srtp_auth_t *auth = calloc(1, sizeof(srtp_auth_t) + sizeof(hmac_state));
    if (auth == NULL) return srtp_err_status_alloc_fail;
    auth->type = &hmac_sha1;
    auth->state = auth + 1;
    auth->out_len = out_len;
    auth->key_len = key_len;
    auth->prefix_len = 0;
    capture(auth); // the auth and its state: one block
    *ap = auth;
    return srtp_err_status_ok;
}

static srtp_err_status_t hmac_dealloc(srtp_auth_t *auth) {
    OPENSSL_cleanse(auth, sizeof(srtp_auth_t) + sizeof(hmac_state));
    free(auth);
    return srtp_err_status_ok;
}

static srtp_err_status_t hmac_init(void *opaque, const uint8_t *key, int key_len) {
    hmac_state *state = opaque;
    if (key_len < 0 || key_len > 20) return srtp_err_status_bad_param;
    peerd_hmac_sha1_init(&state->keyed, key, (size_t)key_len);
    state->running = state->keyed;
    return srtp_err_status_ok;
}

static srtp_err_status_t hmac_start(void *opaque) {
    hmac_state *state = opaque;
    state->running = state->keyed;
    return srtp_err_status_ok;
}

static srtp_err_status_t hmac_update(void *opaque, const uint8_t *data, int length) {
    hmac_state *state = opaque;
    if (length < 0) return srtp_err_status_bad_param;
    peerd_hmac_sha1_update(&state->running, data, (size_t)length);
    return srtp_err_status_ok;
}

static srtp_err_status_t hmac_compute(void *opaque, const uint8_t *data, int length, int tag_len, uint8_t *tag) {
    hmac_state *state = opaque;
    uint8_t digest[20];
    if (length < 0 || tag_len < 0 || tag_len > 20) return srtp_err_status_bad_param;
    peerd_hmac_sha1_update(&state->running, data, (size_t)length);
    peerd_hmac_sha1_final(&state->running, digest);
    memcpy(tag, digest, (size_t)tag_len);
    OPENSSL_cleanse(digest, sizeof digest);
    return srtp_err_status_ok;
}

static const srtp_auth_type_t hmac_sha1 = {
    hmac_alloc, hmac_dealloc, hmac_init, hmac_compute, hmac_update, hmac_start,
    "HMAC-SHA1 on OpenSSL (peerd)", &srtp_hmac_test_case_0, SRTP_HMAC_SHA1,
};

// MARK: installation

static int installed = 0;

int peerd_srtp_install_openssl(void) {
    srtp_err_status_t first_failure = srtp_err_status_ok;
    struct { const srtp_cipher_type_t *type; int bit; } ciphers[] = {
        { &gcm_128, PEERD_SRTP_OPENSSL_GCM }, { &gcm_256, PEERD_SRTP_OPENSSL_GCM },
        { &icm_128, PEERD_SRTP_OPENSSL_ICM }, { &icm_192, PEERD_SRTP_OPENSSL_ICM }, { &icm_256, PEERD_SRTP_OPENSSL_ICM },
    };
    // A bit is set only when every type of its family was accepted.
    int refused = 0;
    for (size_t i = 0; i < sizeof ciphers / sizeof ciphers[0]; i++) {
        srtp_err_status_t status = srtp_replace_cipher_type(ciphers[i].type, ciphers[i].type->id);
        if (status == srtp_err_status_ok) {
            installed |= ciphers[i].bit;
        } else {
            refused |= ciphers[i].bit;
            if (first_failure == srtp_err_status_ok) first_failure = status;
        }
    }
    srtp_err_status_t status = srtp_replace_auth_type(&hmac_sha1, SRTP_HMAC_SHA1);
    if (status == srtp_err_status_ok) {
        installed |= PEERD_SRTP_OPENSSL_HMAC;
    } else if (first_failure == srtp_err_status_ok) {
        first_failure = status;
    }
    installed &= ~refused;
    return (int)first_failure;
}

int peerd_srtp_openssl_installed(void) { return installed; }

const srtp_cipher_type_t *peerd_srtp_kernel_cipher_type(int cipher_id) {
    return srtp_crypto_kernel_get_cipher_type((srtp_cipher_type_id_t)cipher_id);
}

const srtp_auth_type_t *peerd_srtp_kernel_auth_type(int auth_id) {
    return srtp_crypto_kernel_get_auth_type((srtp_auth_type_id_t)auth_id);
}

const srtp_cipher_type_t *peerd_srtp_builtin_cipher_type(int cipher_id) {
    switch (cipher_id) {
    case SRTP_AES_GCM_128: return &srtp_aes_gcm_128;
    case SRTP_AES_GCM_256: return &srtp_aes_gcm_256;
    case SRTP_AES_ICM_128: return &srtp_aes_icm_128;
    case SRTP_AES_ICM_192: return &srtp_aes_icm_192;
    case SRTP_AES_ICM_256: return &srtp_aes_icm_256;
    default: return NULL;
    }
}

const srtp_auth_type_t *peerd_srtp_builtin_hmac_sha1(void) { return &srtp_hmac; }

const char *peerd_srtp_cipher_description(int cipher_id) {
    const srtp_cipher_type_t *type = srtp_crypto_kernel_get_cipher_type((srtp_cipher_type_id_t)cipher_id);
    return type ? type->description : NULL;
}

const char *peerd_srtp_auth_description(int auth_id) {
    const srtp_auth_type_t *type = srtp_crypto_kernel_get_auth_type((srtp_auth_type_id_t)auth_id);
    return type ? type->description : NULL;
}
