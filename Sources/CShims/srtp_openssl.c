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
#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <pthread.h>
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

static const srtp_cipher_type_t gcm_128, gcm_256, gcm_128_evp, gcm_256_evp, icm_128, icm_192, icm_256;
static const srtp_auth_type_t hmac_sha1;

// MARK: shared by the cipher types

// Each cipher's state starts with its EVP context; the cipher and its state are one allocation.
typedef struct {
    EVP_CIPHER_CTX *ctx;
} evp_state;

// The implementing provider's AES-GCM functions (see "AES-GCM" below).
typedef struct {
    void *provider_context;
    OSSL_FUNC_cipher_newctx_fn *newctx;
    OSSL_FUNC_cipher_freectx_fn *freectx;
    OSSL_FUNC_cipher_encrypt_init_fn *encrypt_init;
    OSSL_FUNC_cipher_decrypt_init_fn *decrypt_init;
    OSSL_FUNC_cipher_update_fn *update;
    OSSL_FUNC_cipher_final_fn *final;
    OSSL_FUNC_cipher_get_ctx_params_fn *get_ctx_params;
    OSSL_FUNC_cipher_set_ctx_params_fn *set_ctx_params;
} provider_gcm;

typedef struct {
    EVP_CIPHER_CTX *ctx; // first, as in evp_state; NULL when `direct`
    const provider_gcm *direct;
    void *algctx;        // the provider's GCM context when `direct`
    int key_size;
    int tag_len;
    int encrypt; // -1 until set_iv
} gcm_state;

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
    if (cipher->type != &gcm_128 && cipher->type != &gcm_256 && cipher->type != &gcm_128_evp && cipher->type != &gcm_256_evp) return 0;
    const gcm_state *state = cipher->state;
    const unsigned char *gcm;
    if (state->direct != NULL) {
        gcm = state->algctx;  // the provider's context itself
    } else {
        EVP_CIPHER_CTX *ctx = state->ctx;
        const EVP_CIPHER *evp = EVP_CIPHER_CTX_get0_cipher(ctx);
        if (evp == NULL || load_pointer(ctx, 0) != evp || load_pointer(ctx, 176) != evp) return 0;
        if (EVP_CIPHER_CTX_get_key_length(ctx) != state->key_size) return 0;
        gcm = load_pointer(ctx, 168);
    }
    if (gcm == NULL || load_u32(gcm, 0) != EVP_CIPH_GCM_MODE) return 0;
    size_t key_length, iv_length;
    memcpy(&key_length, gcm + 8, sizeof key_length);
    memcpy(&iv_length, gcm + 16, sizeof iv_length);
    if ((int)key_length != state->key_size || iv_length != 12) return 0;
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

// `with_evp`: the state gets an EVP context (not for an AES-GCM cipher that calls the provider directly).
static srtp_err_status_t new_cipher(srtp_cipher_t **cp, const srtp_cipher_type_t *type, int key_len, size_t state_size,
                                    int with_evp) {
    srtp_cipher_t *cipher = calloc(1, sizeof(srtp_cipher_t) + state_size);
    if (cipher == NULL) return srtp_err_status_alloc_fail;
    evp_state *state = (evp_state *)(cipher + 1);
    if (with_evp) {
        state->ctx = EVP_CIPHER_CTX_new();
        if (state->ctx == NULL) {
            free(cipher);
            return srtp_err_status_alloc_fail;
        }
    }
    cipher->type = type;
    cipher->state = state;
    cipher->key_len = key_len;
    cipher->algorithm = type->id;
    capture(cipher);                    // the cipher and its state: one block
    if (with_evp) capture(state->ctx);  // the EVP context
    *cp = cipher;
    return srtp_err_status_ok;
}

static void free_cipher(srtp_cipher_t *cipher, size_t state_size) {
    EVP_CIPHER_CTX_free(((evp_state *)cipher->state)->ctx); // clears the key schedule
    OPENSSL_cleanse(cipher, sizeof(srtp_cipher_t) + state_size);
    free(cipher);
}

// MARK: AES-GCM

// OpenSSL 3's EVP layer costs more per packet than the cipher itself on 100-byte SRTP payloads:
// every IV set through EVP_CipherInit_ex asks the provider for the IV length (an OSSL_PARAM
// get_ctx_params, a dozen string compares; 3.0 does not cache it), and every tag set through
// EVP_CIPHER_CTX_ctrl builds and parses another parameter array (`perf`, 1,000 streams: 5 % of the
// receive loop). So the cipher calls the implementing provider's AES-GCM functions directly, with
// the provider's own context, through OpenSSL's public provider API: the provider that
// EVP_CIPHER_fetch picks for "AES-128-GCM"/"AES-256-GCM", its dispatch table from
// OSSL_PROVIDER_query_operation, its context from OSSL_PROVIDER_get0_provider_ctx. The calls are the
// ones EVP makes (init with the IV only, update for AAD then data, tag as a parameter, final), minus
// EVP's bookkeeping. Where that lookup fails, the cipher uses EVP as before.

static provider_gcm direct_gcm[2]; // AES-128-GCM, AES-256-GCM
static int direct_gcm_found[2];
static pthread_once_t direct_gcm_once = PTHREAD_ONCE_INIT;

// Whether `names` (an algorithm's "name:alias:OID" list) holds `name`.
static int names_hold(const char *names, const char *name) {
    size_t length = strlen(name);
    for (const char *at = names; at != NULL && *at != 0;) {
        const char *colon = strchr(at, ':');
        size_t item = colon ? (size_t)(colon - at) : strlen(at);
        if (item == length && OPENSSL_strncasecmp(at, name, length) == 0) return 1;
        at = colon ? colon + 1 : NULL;
    }
    return 0;
}

static int find_direct_gcm(const char *name, provider_gcm *out) {
    // The fetched cipher is kept for the process lifetime: it holds its provider loaded.
    EVP_CIPHER *fetched = EVP_CIPHER_fetch(NULL, name, NULL);
    if (fetched == NULL) return 0;
    OSSL_PROVIDER *provider = (OSSL_PROVIDER *)EVP_CIPHER_get0_provider(fetched);
    if (provider == NULL) return 0;
    int no_store = 0;
    const OSSL_ALGORITHM *algorithms = OSSL_PROVIDER_query_operation(provider, OSSL_OP_CIPHER, &no_store);
    const OSSL_DISPATCH *dispatch = NULL;
    for (const OSSL_ALGORITHM *algorithm = algorithms; algorithm != NULL && algorithm->algorithm_names != NULL; algorithm++) {
        if (names_hold(algorithm->algorithm_names, name)) {
            dispatch = algorithm->implementation;
            break;
        }
    }
    provider_gcm found = { OSSL_PROVIDER_get0_provider_ctx(provider) };
    for (; dispatch != NULL && dispatch->function_id != 0; dispatch++) {
        switch (dispatch->function_id) {
        case OSSL_FUNC_CIPHER_NEWCTX: found.newctx = OSSL_FUNC_cipher_newctx(dispatch); break;
        case OSSL_FUNC_CIPHER_FREECTX: found.freectx = OSSL_FUNC_cipher_freectx(dispatch); break;
        case OSSL_FUNC_CIPHER_ENCRYPT_INIT: found.encrypt_init = OSSL_FUNC_cipher_encrypt_init(dispatch); break;
        case OSSL_FUNC_CIPHER_DECRYPT_INIT: found.decrypt_init = OSSL_FUNC_cipher_decrypt_init(dispatch); break;
        case OSSL_FUNC_CIPHER_UPDATE: found.update = OSSL_FUNC_cipher_update(dispatch); break;
        case OSSL_FUNC_CIPHER_FINAL: found.final = OSSL_FUNC_cipher_final(dispatch); break;
        case OSSL_FUNC_CIPHER_GET_CTX_PARAMS: found.get_ctx_params = OSSL_FUNC_cipher_get_ctx_params(dispatch); break;
        case OSSL_FUNC_CIPHER_SET_CTX_PARAMS: found.set_ctx_params = OSSL_FUNC_cipher_set_ctx_params(dispatch); break;
        default: break;
        }
    }
    // The table is the provider's static data; what we took from it outlives the query.
    if (algorithms != NULL) OSSL_PROVIDER_unquery_operation(provider, OSSL_OP_CIPHER, algorithms);
    if (found.provider_context == NULL || found.newctx == NULL || found.freectx == NULL || found.encrypt_init == NULL ||
        found.decrypt_init == NULL || found.update == NULL || found.final == NULL || found.get_ctx_params == NULL ||
        found.set_ctx_params == NULL) {
        return 0;
    }
    *out = found;
    return 1;
}

static void find_direct_gcms(void) {
    // PEERD_SRTP_GCM_EVP: the installed types use EVP (to compare the two in one build).
    if (getenv("PEERD_SRTP_GCM_EVP") != NULL) return;
    direct_gcm_found[0] = find_direct_gcm("AES-128-GCM", &direct_gcm[0]);
    direct_gcm_found[1] = find_direct_gcm("AES-256-GCM", &direct_gcm[1]);
    ERR_clear_error();
}

static const provider_gcm *direct_gcm_for(int key_size) {
    pthread_once(&direct_gcm_once, find_direct_gcms);
    int index = key_size == SRTP_AES_256_KEY_LEN ? 1 : 0;
    return direct_gcm_found[index] ? &direct_gcm[index] : NULL;
}

int peerd_srtp_gcm_calls_provider(void) {
    return direct_gcm_for(SRTP_AES_128_KEY_LEN) != NULL && direct_gcm_for(SRTP_AES_256_KEY_LEN) != NULL;
}

// The tag through the provider's context parameters: set (the tag to check, before decrypting) or
// get (the tag computed, after final when encrypting).
static int provider_tag(const gcm_state *state, uint8_t *tag, int set) {
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, (size_t)state->tag_len),
        OSSL_PARAM_construct_end(),
    };
    return set ? state->direct->set_ctx_params(state->algctx, params) : state->direct->get_ctx_params(state->algctx, params);
}

// `use_provider`: call the provider directly when it was found (the installed types), else EVP.
static srtp_err_status_t gcm_alloc_with(srtp_cipher_t **cp, int key_len, int tag_len, int use_provider) {
    const srtp_cipher_type_t *type;
    int key_size;
    if (key_len == SRTP_AES_GCM_128_KEY_LEN_WSALT) {
        type = use_provider ? &gcm_128 : &gcm_128_evp;
        key_size = SRTP_AES_128_KEY_LEN;
    } else if (key_len == SRTP_AES_GCM_256_KEY_LEN_WSALT) {
        type = use_provider ? &gcm_256 : &gcm_256_evp;
        key_size = SRTP_AES_256_KEY_LEN;
    } else {
        return srtp_err_status_bad_param;
    }
    if (tag_len != 8 && tag_len != 16) return srtp_err_status_bad_param;
    const provider_gcm *direct = use_provider ? direct_gcm_for(key_size) : NULL;
    void *algctx = NULL;
    if (direct != NULL) {
        algctx = direct->newctx(direct->provider_context);
        if (algctx == NULL) {
            ERR_clear_error();
            return srtp_err_status_alloc_fail;
        }
    }
    srtp_err_status_t status = new_cipher(cp, type, key_len, sizeof(gcm_state), direct == NULL);
    if (status != srtp_err_status_ok) {
        if (algctx != NULL) direct->freectx(algctx);
        return status;
    }
    gcm_state *state = (*cp)->state;
    state->direct = direct;
    state->algctx = algctx;
    if (algctx != NULL) capture(algctx);  // in the EVP context's place
    state->key_size = key_size;
    state->tag_len = tag_len;
    state->encrypt = -1;
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_alloc(srtp_cipher_t **cp, int key_len, int tag_len) {
    return gcm_alloc_with(cp, key_len, tag_len, 1);
}

static srtp_err_status_t gcm_alloc_evp(srtp_cipher_t **cp, int key_len, int tag_len) {
    return gcm_alloc_with(cp, key_len, tag_len, 0);
}

int peerd_srtp_gcm_cipher_calls_provider(const void *cipher_block) {
    const srtp_cipher_t *cipher = cipher_block;
    if (cipher == NULL || (cipher->type != &gcm_128 && cipher->type != &gcm_256)) return 0;
    return ((const gcm_state *)cipher->state)->direct != NULL;
}

static srtp_err_status_t gcm_dealloc(srtp_cipher_t *cipher) {
    gcm_state *state = cipher->state;
    if (state->algctx != NULL) state->direct->freectx(state->algctx); // clears the key schedule
    free_cipher(cipher, sizeof(gcm_state));
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_init(void *opaque, const uint8_t *key) {
    gcm_state *state = opaque;
    state->encrypt = -1;
    // The key schedule is made here, once; set_iv only changes the IV.
    if (state->direct != NULL) {
        if (!state->direct->encrypt_init(state->algctx, key, (size_t)state->key_size, NULL, 0, NULL)) {
            ERR_clear_error();
            return srtp_err_status_init_fail;
        }
        return srtp_err_status_ok;
    }
    const EVP_CIPHER *evp = state->key_size == SRTP_AES_256_KEY_LEN ? EVP_aes_256_gcm() : EVP_aes_128_gcm();
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
    int ok;
    if (state->direct != NULL) {
        ok = state->encrypt ? state->direct->encrypt_init(state->algctx, NULL, 0, iv, 12, NULL)
                            : state->direct->decrypt_init(state->algctx, NULL, 0, iv, 12, NULL);
    } else {
        ok = EVP_CipherInit_ex(state->ctx, NULL, NULL, NULL, iv, state->encrypt);
    }
    if (!ok) {
        ERR_clear_error();
        return srtp_err_status_init_fail;
    }
    return srtp_err_status_ok;
}

// One update: AAD when `out` is NULL, else data (in place).
static int gcm_update(gcm_state *state, uint8_t *out, const uint8_t *in, size_t length) {
    if (state->direct != NULL) {
        size_t written = 0;
        return state->direct->update(state->algctx, out, &written, length, in, length);
    }
    int written = 0;
    return EVP_CipherUpdate(state->ctx, out, &written, in, (int)length);
}

static srtp_err_status_t gcm_set_aad(void *opaque, const uint8_t *aad, uint32_t aad_len) {
    gcm_state *state = opaque;
    if (state->encrypt < 0 || aad_len > INT32_MAX) return srtp_err_status_bad_param;
    if (!gcm_update(state, NULL, aad, aad_len)) {
        ERR_clear_error();
        return srtp_err_status_algo_fail;
    }
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_encrypt(void *opaque, uint8_t *buffer, unsigned int *length) {
    gcm_state *state = opaque;
    if (state->encrypt != 1 || *length > INT32_MAX) return srtp_err_status_bad_param;
    if (*length > 0 && !gcm_update(state, buffer, buffer, *length)) {
        ERR_clear_error();
        return srtp_err_status_cipher_fail;
    }
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_get_tag(void *opaque, uint8_t *tag, uint32_t *length) {
    gcm_state *state = opaque;
    if (state->encrypt != 1) return srtp_err_status_bad_param;
    int ok;
    if (state->direct != NULL) {
        size_t written = 0;
        ok = state->direct->final(state->algctx, NULL, &written, 0) && provider_tag(state, tag, 0);
    } else {
        int written = 0;
        ok = EVP_CipherFinal_ex(state->ctx, NULL, &written) &&
             EVP_CIPHER_CTX_ctrl(state->ctx, EVP_CTRL_GCM_GET_TAG, state->tag_len, tag);
    }
    if (!ok) {
        ERR_clear_error();
        return srtp_err_status_algo_fail;
    }
    *length = (uint32_t)state->tag_len;
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_decrypt(void *opaque, uint8_t *buffer, unsigned int *length) {
    gcm_state *state = opaque;
    if (state->encrypt != 0 || *length > INT32_MAX) return srtp_err_status_bad_param;
    if (*length < (unsigned int)state->tag_len) return srtp_err_status_auth_fail;
    unsigned int ciphertext_length = *length - (unsigned int)state->tag_len;
    uint8_t *tag = buffer + ciphertext_length;
    int tag_set;
    if (state->direct != NULL) {
        tag_set = provider_tag(state, tag, 1);
    } else {
        tag_set = EVP_CIPHER_CTX_ctrl(state->ctx, EVP_CTRL_GCM_SET_TAG, state->tag_len, tag);
    }
    if (!tag_set) {
        ERR_clear_error();
        return srtp_err_status_algo_fail;
    }
    if (ciphertext_length > 0 && !gcm_update(state, buffer, buffer, ciphertext_length)) {
        ERR_clear_error();
        return srtp_err_status_cipher_fail;
    }
    // Final checks the tag.
    int verified;
    if (state->direct != NULL) {
        size_t written = 0;
        verified = state->direct->final(state->algctx, NULL, &written, 0);
    } else {
        int written = 0;
        verified = EVP_CipherFinal_ex(state->ctx, NULL, &written);
    }
    if (!verified) {
        ERR_clear_error();
        return srtp_err_status_auth_fail;
    }
    *length = ciphertext_length;
    return srtp_err_status_ok;
}

// A GCM type: every function but alloc is shared (the state says which path a cipher takes).
#define GCM_TYPE(alloc, description, test_case, id) \
    { alloc, gcm_dealloc, gcm_init, gcm_set_aad, gcm_encrypt, gcm_decrypt, gcm_set_iv, gcm_get_tag, description, test_case, id }
static const srtp_cipher_type_t gcm_128 =
    GCM_TYPE(gcm_alloc, "AES-128 GCM on OpenSSL (peerd)", &srtp_aes_gcm_128_test_case_0, SRTP_AES_GCM_128);
static const srtp_cipher_type_t gcm_256 =
    GCM_TYPE(gcm_alloc, "AES-256 GCM on OpenSSL (peerd)", &srtp_aes_gcm_256_test_case_0, SRTP_AES_GCM_256);
// The same on EVP, not installed: what the installed types fall back to, for tests (peerd_srtp_gcm_evp_type).
static const srtp_cipher_type_t gcm_128_evp =
    GCM_TYPE(gcm_alloc_evp, "AES-128 GCM on OpenSSL EVP (peerd)", &srtp_aes_gcm_128_test_case_0, SRTP_AES_GCM_128);
static const srtp_cipher_type_t gcm_256_evp =
    GCM_TYPE(gcm_alloc_evp, "AES-256 GCM on OpenSSL EVP (peerd)", &srtp_aes_gcm_256_test_case_0, SRTP_AES_GCM_256);
#undef GCM_TYPE

const srtp_cipher_type_t *peerd_srtp_gcm_evp_type(int cipher_id) {
    switch (cipher_id) {
    case SRTP_AES_GCM_128: return &gcm_128_evp;
    case SRTP_AES_GCM_256: return &gcm_256_evp;
    default: return NULL;
    }
}

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
    srtp_err_status_t status = new_cipher(cp, type, key_len, sizeof(icm_state), 1);
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
