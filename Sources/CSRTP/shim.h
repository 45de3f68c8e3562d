#include <srtp2/srtp.h>
// The cipher and auth type interfaces (peerd replaces libsrtp's NSS types with OpenSSL ones).
#include <srtp2/cipher.h>
#include <srtp2/auth.h>
