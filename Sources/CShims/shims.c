#include "CShims.h"
#include <alsa/asoundlib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void peerd_alsa_quiet(const char *file, int line, const char *function, int err, const char *fmt, ...) {
    (void)file; (void)line; (void)function; (void)err; (void)fmt;
}

void peerd_alsa_silence_errors(void) {
    snd_lib_error_set_handler(peerd_alsa_quiet);
}

// MARK: - Datagram BIO

typedef struct peerd_dgram {
    struct peerd_dgram *next;
    size_t len;
    unsigned char data[];
} peerd_dgram;

typedef struct {
    peerd_dgram *in_head, *in_tail;
    peerd_dgram *out_head, *out_tail;
} peerd_dgram_queue;

static BIO_METHOD *peerd_dgram_method = NULL;
static pthread_once_t peerd_dgram_once = PTHREAD_ONCE_INIT;

static void peerd_free_list(peerd_dgram *d) {
    while (d) { peerd_dgram *n = d->next; free(d); d = n; }
}

static int peerd_dgram_create(BIO *b) {
    peerd_dgram_queue *q = calloc(1, sizeof(*q));
    if (!q) return 0;
    BIO_set_data(b, q);
    BIO_set_init(b, 1);
    return 1;
}

static int peerd_dgram_destroy(BIO *b) {
    peerd_dgram_queue *q = BIO_get_data(b);
    if (q) {
        peerd_free_list(q->in_head);
        peerd_free_list(q->out_head);
        free(q);
    }
    BIO_set_data(b, NULL);
    return 1;
}

static int peerd_dgram_write(BIO *b, const char *buf, int len) {
    peerd_dgram_queue *q = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!q || len < 0) return -1;
    peerd_dgram *d = malloc(sizeof(peerd_dgram) + (size_t)len);
    if (!d) return -1;
    d->next = NULL;
    d->len = (size_t)len;
    if (len > 0) memcpy(d->data, buf, (size_t)len);
    if (q->out_tail) q->out_tail->next = d; else q->out_head = d;
    q->out_tail = d;
    return len;
}

static int peerd_dgram_read(BIO *b, char *buf, int len) {
    peerd_dgram_queue *q = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!q || len < 0) return -1;
    peerd_dgram *d = q->in_head;
    if (!d) {
        BIO_set_retry_read(b);
        return -1;
    }
    q->in_head = d->next;
    if (!q->in_head) q->in_tail = NULL;
    size_t n = d->len < (size_t)len ? d->len : (size_t)len;
    if (n > 0) memcpy(buf, d->data, n);
    free(d);
    return (int)n;
}

static long peerd_dgram_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)num; (void)ptr;
    peerd_dgram_queue *q = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DGRAM_SET_NEXT_TIMEOUT:
    case BIO_CTRL_DGRAM_SET_CONNECTED:
    case BIO_CTRL_DGRAM_SET_PEER:
        return 1;
    case BIO_CTRL_PENDING:
        return (q && q->in_head) ? (long)q->in_head->len : 0;
    case BIO_CTRL_WPENDING:
        return 0;
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
    case BIO_CTRL_DGRAM_MTU_EXCEEDED:
        return 0;
    default:
        return 0;
    }
}

static void peerd_dgram_init_method(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "peerd datagram queue");
    if (!m) return;
    BIO_meth_set_write(m, peerd_dgram_write);
    BIO_meth_set_read(m, peerd_dgram_read);
    BIO_meth_set_ctrl(m, peerd_dgram_ctrl);
    BIO_meth_set_create(m, peerd_dgram_create);
    BIO_meth_set_destroy(m, peerd_dgram_destroy);
    peerd_dgram_method = m;
}

BIO *peerd_dgram_bio_new(void) {
    pthread_once(&peerd_dgram_once, peerd_dgram_init_method);
    if (!peerd_dgram_method) return NULL;
    return BIO_new(peerd_dgram_method);
}

int peerd_dgram_bio_push_incoming(BIO *bio, const unsigned char *data, size_t len) {
    peerd_dgram_queue *q = BIO_get_data(bio);
    if (!q) return 0;
    peerd_dgram *d = malloc(sizeof(peerd_dgram) + len);
    if (!d) return 0;
    d->next = NULL;
    d->len = len;
    if (len > 0) memcpy(d->data, data, len);
    if (q->in_tail) q->in_tail->next = d; else q->in_head = d;
    q->in_tail = d;
    return 1;
}

long peerd_dgram_bio_next_outgoing_len(BIO *bio) {
    peerd_dgram_queue *q = BIO_get_data(bio);
    if (!q || !q->out_head) return -1;
    return (long)q->out_head->len;
}

long peerd_dgram_bio_pop_outgoing(BIO *bio, unsigned char *buf, size_t cap) {
    peerd_dgram_queue *q = BIO_get_data(bio);
    if (!q || !q->out_head) return -1;
    peerd_dgram *d = q->out_head;
    q->out_head = d->next;
    if (!q->out_head) q->out_tail = NULL;
    size_t n = d->len < cap ? d->len : cap;
    if (n > 0) memcpy(buf, d->data, n);
    free(d);
    return (long)n;
}

void peerd_dgram_bio_clear(BIO *bio) {
    peerd_dgram_queue *q = BIO_get_data(bio);
    if (!q) return;
    peerd_free_list(q->in_head);
    peerd_free_list(q->out_head);
    q->in_head = q->in_tail = q->out_head = q->out_tail = NULL;
}

// MARK: - DTLS timer

typedef struct { unsigned int initial_us, max_us; } peerd_timer_config;

static int peerd_timer_index = -1;
static pthread_once_t peerd_timer_once = PTHREAD_ONCE_INIT;

static void peerd_timer_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    free(ptr);
}

static void peerd_timer_init_index(void) {
    peerd_timer_index = SSL_get_ex_new_index(0, "peerd timer", NULL, NULL, peerd_timer_free);
}

unsigned int peerd_dtls_timer_cb(SSL *ssl, unsigned int previous_us) {
    peerd_timer_config *c = peerd_timer_index >= 0 ? SSL_get_ex_data(ssl, peerd_timer_index) : NULL;
    unsigned int initial = c ? c->initial_us : 1000000u;
    unsigned int max = c ? c->max_us : 60000000u;
    if (previous_us == 0) return initial;
    unsigned long long next = (unsigned long long)previous_us * 2u;
    return next > max ? max : (unsigned int)next;
}

int peerd_dtls_set_timer_config(SSL *ssl, unsigned int initial_us, unsigned int max_us) {
    pthread_once(&peerd_timer_once, peerd_timer_init_index);
    if (peerd_timer_index < 0) return 0;
    peerd_timer_config *c = malloc(sizeof(*c));
    if (!c) return 0;
    c->initial_us = initial_us;
    c->max_us = max_us < initial_us ? initial_us : max_us;
    if (!SSL_set_ex_data(ssl, peerd_timer_index, c)) { free(c); return 0; }
    DTLS_set_timer_cb(ssl, peerd_dtls_timer_cb);
    return 1;
}
