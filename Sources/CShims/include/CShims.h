// Umbrella header: helpers for C APIs that Swift cannot import (macros, variadic calls).
#ifndef PEERD_CSHIMS_H
#define PEERD_CSHIMS_H
#include "peerd_openssl.h"
#include "peerd_opus.h"
#include "peerd_alsa.h"
#include "peerd_hmac.h"
#include "peerd_srtp.h"
#include "peerd_udp.h"
#endif
