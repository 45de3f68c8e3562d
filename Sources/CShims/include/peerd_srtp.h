#ifndef PEERD_SRTP_H
#define PEERD_SRTP_H
#include <stdint.h>
#include <srtp2/auth.h>
#include <srtp2/cipher.h>
#include <srtp2/crypto_types.h> // SRTP_AES_GCM_128, SRTP_HMAC_SHA1, ...

// libsrtp2's crypto on system OpenSSL.
//
// Debian's libsrtp2 is built on NSS. Its AES-GCM calls PK11_Decrypt/PK11_Encrypt for every packet
// (a PKCS#11 session and a key lookup in a table that grows with the number of live sessions), and
// its AES-ICM creates a PK11 context for every packet. libsrtp lets a program replace the cipher
// and authentication types in its crypto kernel (srtp_replace_cipher_type,
// srtp_replace_auth_type), so libsrtp keeps doing SRTP itself (key derivation, replay windows,
// rollover counters, SRTCP) and only the block-cipher and HMAC primitives run on OpenSSL:
//
// - AES-128/256-GCM (RFC 7714): one cipher context per direction keyed once; per packet only the IV;
//   the implementing provider's functions are called directly, without EVP's per-call parameter
//   lookups (see peerd_srtp_gcm_calls_provider);
// - AES-128/192/256-ICM (RFC 3711 counter mode, also libsrtp's key derivation): EVP AES-CTR;
// - HMAC-SHA1: the key's inner and outer pad states hashed once, copied per packet.
//
// libsrtp runs its known-answer tests on every replacement, with the test data of the type it
// replaces too, and refuses a type that fails them.

// Bits of peerd_srtp_openssl_installed().
#define PEERD_SRTP_OPENSSL_GCM 0x1
#define PEERD_SRTP_OPENSSL_ICM 0x2
#define PEERD_SRTP_OPENSSL_HMAC 0x4

// Replaces the types in libsrtp's crypto kernel. Call once, after srtp_init() and before any
// srtp_create(). Returns 0, or the first libsrtp status that refused a replacement (the types
// already replaced stay replaced; the others stay on NSS).
int peerd_srtp_install_openssl(void);

// Capture, on this thread, the blocks our types allocate between begin and end: per cipher its
// block (cipher and state) then its EVP context (for an AES-GCM cipher that calls its provider
// directly, the provider's context), per HMAC its block, in allocation order (libsrtp allocates a
// stream's SRTP cipher and auth before its SRTCP ones). A session's stream clones share
// its template's cipher and auth, so these are what every packet of the session touches in our
// types; the caller may prefetch them (they live until srtp_dealloc). End returns how many were
// captured (at most PEERD_SRTP_CAPTURE_MAX) into `blocks`.
#define PEERD_SRTP_CAPTURE_MAX 8
void peerd_srtp_capture_begin(void);
int peerd_srtp_capture_end(const void **blocks);

// The blocks of libsrtp's own that unprotecting a session's next packet touches, found by walking
// libsrtp 2.5's private layout (srtp_priv.h, rdbx.h of 2.5.x on LP64: srtp_ctx_t starts with the
// stream list's head, a stream-sized block whose `next` is at 0x70; a stream holds its SSRC at 0,
// its session keys at 8, the number of master keys at 16, its replay bitmask's length and words at
// 32 and 40; a session key set its SRTP cipher at 0, auth at 16, key limit at 80). They are the
// list head's link, the newest stream (created on the session's first packet), its session keys, its
// replay bitmask, its key limit and its SRTP auth: cold on every packet of a receiver with many
// connections, and not ours to capture (libsrtp allocates them). Returns how many were written into
// `blocks` and `sizes` (at most PEERD_SRTP_STREAM_BLOCKS), 0 when the session has no stream yet,
// when libsrtp is not 2.5.x, or when the layout does not check out: the stream's SRTP cipher must be
// `rtp_cipher` (the template's, which a clone shares; see peerd_srtp_capture_begin), it must have
// one master key, and its bitmask `window_bits` bits. Addresses only to prefetch: never written.
#define PEERD_SRTP_STREAM_BLOCKS 6
int peerd_srtp_stream_blocks(const void *session, const void *rtp_cipher, unsigned int window_bits,
                             const void **blocks, int *sizes);

// The memory of OpenSSL's own that one of our AES-GCM ciphers (a block from peerd_srtp_capture_begin's
// list: srtp_cipher_t and state) touches per packet: the provider's GCM context, allocated by
// OpenSSL, where its key schedule, GHASH table and IV live (cold on every packet of a receiver with
// many connections: 5 % of its loop at 1,000 streams, `perf`). A cipher that calls its provider
// directly holds that context; one on EVP reaches it through OpenSSL 3.0's private layout
// (evp_local.h: the EVP_CIPHER_CTX's provider context at 168, its fetched cipher at 176). The GCM
// context (ciphercommon_gcm.h) starts with mode, key length and IV length, and points to its own AES
// key schedule, whose round count follows 240 bytes of round keys; the ranges are given only when
// every one of these checks out against OpenSSL's public API and the cipher's own key size. Writes
// at most PEERD_SRTP_CIPHER_STATE_BLOCKS ranges; returns how many (0: not a GCM cipher of ours,
// another OpenSSL, or a layout that does not check out). Addresses only to prefetch: never written.
#define PEERD_SRTP_CIPHER_STATE_BLOCKS 2
int peerd_srtp_cipher_state_blocks(const void *cipher_block, const void **blocks, int *sizes);

// Which of the types are installed (PEERD_SRTP_OPENSSL_* bits).
int peerd_srtp_openssl_installed(void);
// 1 when the AES-GCM types call the provider's AES-128-GCM and AES-256-GCM functions directly (found
// through OpenSSL's provider API on first use), 0 when they go through EVP: the provider lookup
// failed, or PEERD_SRTP_GCM_EVP was in the environment at the first GCM cipher (to compare the two).
int peerd_srtp_gcm_calls_provider(void);
// 1 when a cipher (a block from peerd_srtp_capture_begin's list, or srtp_cipher_t) is one of the
// installed GCM types calling its provider directly; 0 otherwise.
int peerd_srtp_gcm_cipher_calls_provider(const void *cipher_block);
// The GCM types on EVP (SRTP_AES_GCM_128 or _256; NULL for other ids): what the installed types fall
// back to. Not installed; for tests that compare the two paths.
const srtp_cipher_type_t *peerd_srtp_gcm_evp_type(int cipher_id);

// The cipher or auth type libsrtp's crypto kernel uses now for an id; NULL if it has none.
const srtp_cipher_type_t *peerd_srtp_kernel_cipher_type(int cipher_id);
const srtp_auth_type_t *peerd_srtp_kernel_auth_type(int auth_id);

// libsrtp's own (NSS) types, which it exports but does not declare: AES-GCM 128/256, AES-ICM
// 128/192/256 by cipher id, HMAC-SHA1; NULL for other ids. For tests that compare the two.
const srtp_cipher_type_t *peerd_srtp_builtin_cipher_type(int cipher_id);
const srtp_auth_type_t *peerd_srtp_builtin_hmac_sha1(void);

// The description of the cipher type libsrtp's kernel now uses for a cipher id (SRTP_AES_GCM_128,
// ...) or of the auth type for an auth id (SRTP_HMAC_SHA1); NULL if it has none.
const char *peerd_srtp_cipher_description(int cipher_id);
const char *peerd_srtp_auth_description(int auth_id);
#endif
