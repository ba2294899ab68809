/* Spillway guest helper for C: the builder and the batch framing (see spillway_guest.h).
 * Independent of the WIT bindings, so it also compiles natively for tests. */
#include "spillway_guest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SG_NONE 0xFFFFFFFFu
#define SG_MAX_NODES 64

/* ---- builder ---------------------------------------------------------------------------- */

typedef enum { SG_SOURCE, SG_TRANSFORM, SG_AGGREGATE, SG_SINK } sg_kind;

typedef struct sg_node {
    const char *name;
    sg_kind kind;
    int32_t input; /* -1 for sources */
    sg_transform_fn transform;
    sg_window window;
    uint64_t max_out_of_orderness_ms;
    const sg_aggregator *aggregator;
} sg_node;

struct sg_pipeline {
    sg_node nodes[SG_MAX_NODES];
    uint32_t count;
};

static void sg_abort(const char *message, const char *name) {
    fprintf(stderr, "spillway_build: %s: %s\n", message, name);
    abort();
}

static sg_stream sg_add(sg_pipeline *p, sg_node node) {
    if (p->count == SG_MAX_NODES) sg_abort("too many nodes", node.name);
    for (uint32_t i = 0; i < p->count; i++) {
        if (strcmp(p->nodes[i].name, node.name) == 0) sg_abort("two nodes are named", node.name);
    }
    if (node.input >= (int32_t)p->count) sg_abort("input is not an earlier node", node.name);
    p->nodes[p->count] = node;
    return p->count++;
}

sg_stream sg_source(sg_pipeline *p, const char *name) {
    return sg_add(p, (sg_node){.name = name, .kind = SG_SOURCE, .input = -1});
}

sg_stream sg_transform(sg_pipeline *p, sg_stream input, const char *name, sg_transform_fn fn) {
    return sg_add(p, (sg_node){.name = name, .kind = SG_TRANSFORM, .input = (int32_t)input,
                               .transform = fn});
}

sg_stream sg_aggregate(sg_pipeline *p, sg_stream input, const char *name, sg_window window,
                       uint64_t max_out_of_orderness_ms, const sg_aggregator *aggregator) {
    return sg_add(p, (sg_node){.name = name, .kind = SG_AGGREGATE, .input = (int32_t)input,
                               .window = window,
                               .max_out_of_orderness_ms = max_out_of_orderness_ms,
                               .aggregator = aggregator});
}

void sg_sink(sg_pipeline *p, sg_stream input, const char *name) {
    sg_add(p, (sg_node){.name = name, .kind = SG_SINK, .input = (int32_t)input});
}

/* The pipeline is declared once per instance: the graph is code, not state. */
static sg_pipeline *sg_the_pipeline(void) {
    static sg_pipeline pipeline;
    static bool built;
    if (!built) {
        spillway_build(&pipeline);
        built = true;
    }
    return &pipeline;
}

/* Exposed to spillway_exports.c. */
uint32_t sg_node_count(void) { return sg_the_pipeline()->count; }

void sg_node_info(uint32_t i, const char **name, int *kind, int32_t *input, sg_window *window,
                  uint64_t *max_out_of_orderness_ms) {
    const sg_node *n = &sg_the_pipeline()->nodes[i];
    *name = n->name;
    *kind = (int)n->kind;
    *input = n->input;
    *window = n->window;
    *max_out_of_orderness_ms = n->max_out_of_orderness_ms;
}

/* ---- output ----------------------------------------------------------------------------- */

static void sg_reserve(sg_emitter *out, size_t n) {
    if (out->len + n <= out->cap) return;
    size_t cap = out->cap ? out->cap * 2 : 4096;
    while (cap < out->len + n) cap *= 2;
    uint8_t *ptr = realloc(out->ptr, cap);
    if (!ptr) abort();
    out->ptr = ptr;
    out->cap = cap;
}

static void sg_put(sg_emitter *out, const void *bytes, size_t n) {
    sg_reserve(out, n);
    if (n) memcpy(out->ptr + out->len, bytes, n);
    out->len += n;
}

/* wasm32 is little-endian, as the framing is. */
static void sg_put_u32(sg_emitter *out, uint32_t v) { sg_put(out, &v, 4); }
static void sg_put_i64(sg_emitter *out, int64_t v) { sg_put(out, &v, 8); }

static void sg_put_bytes(sg_emitter *out, const void *bytes, size_t n) {
    sg_put_u32(out, (uint32_t)n);
    sg_put(out, bytes, n);
}

void sg_emit(sg_emitter *out, const sg_bytes *key, int64_t time, const void *value, size_t len) {
    if (key) sg_put_bytes(out, key->ptr, key->len);
    else sg_put_u32(out, SG_NONE);
    sg_put_i64(out, time);
    sg_put_bytes(out, value, len);
}

void sg_emit_str(sg_emitter *out, const sg_bytes *key, int64_t time, const char *value) {
    sg_emit(out, key, time, value, strlen(value));
}

bool sg_fail(sg_error *err, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(err->message, sizeof err->message, format, args);
    va_end(args);
    return false;
}

/* ---- input ------------------------------------------------------------------------------ */

typedef struct sg_reader {
    const uint8_t *ptr;
    size_t len;
    size_t pos;
    bool failed;
} sg_reader;

static bool sg_take(sg_reader *r, size_t n, const uint8_t **out) {
    if (r->failed || n > r->len - r->pos) {
        r->failed = true;
        return false;
    }
    *out = r->ptr + r->pos;
    r->pos += n;
    return true;
}

static uint32_t sg_u32(sg_reader *r) {
    const uint8_t *p;
    uint32_t v = 0;
    if (sg_take(r, 4, &p)) memcpy(&v, p, 4);
    return v;
}

static int64_t sg_i64(sg_reader *r) {
    const uint8_t *p;
    int64_t v = 0;
    if (sg_take(r, 8, &p)) memcpy(&v, p, 8);
    return v;
}

static sg_bytes sg_read_bytes(sg_reader *r, uint32_t n) {
    sg_bytes b = {NULL, 0};
    if (sg_take(r, n, &b.ptr)) b.len = n;
    return b;
}

static const char *const SG_MALFORMED = "malformed batch: a record is cut short";

static const sg_node *sg_node_of(uint32_t index, sg_kind kind, const char **error) {
    sg_pipeline *p = sg_the_pipeline();
    if (index >= p->count) {
        *error = "no such node";
        return NULL;
    }
    if (p->nodes[index].kind != kind) {
        *error = kind == SG_TRANSFORM ? "the node is not a transform" : "the node is not an aggregate";
        return NULL;
    }
    return &p->nodes[index];
}

bool sg_run_transform(uint32_t node, sg_bytes batch, sg_emitter *out, sg_record_error **errors,
                      size_t *error_count, const char **error) {
    const sg_node *n = sg_node_of(node, SG_TRANSFORM, error);
    if (!n) return false;
    sg_reader r = {batch.ptr, batch.len, 0, false};
    size_t cap = 0;
    *errors = NULL;
    *error_count = 0;
    for (uint32_t index = 0; r.pos < r.len; index++) {
        sg_event e;
        uint32_t key_len = sg_u32(&r);
        e.has_key = key_len != SG_NONE;
        e.key = e.has_key ? sg_read_bytes(&r, key_len) : (sg_bytes){NULL, 0};
        e.time = sg_i64(&r);
        e.value = sg_read_bytes(&r, sg_u32(&r));
        if (r.failed) {
            *error = SG_MALFORMED;
            return false;
        }
        size_t mark = out->len;
        sg_error err;
        err.message[0] = 0;
        if (!n->transform(&e, out, &err)) {
            out->len = mark;
            if (*error_count == cap) {
                cap = cap ? cap * 2 : 8;
                *errors = realloc(*errors, cap * sizeof **errors);
                if (!*errors) abort();
            }
            (*errors)[*error_count].index = index;
            (*errors)[*error_count].message = strdup(err.message);
            (*error_count)++;
        }
    }
    return true;
}

bool sg_run_aggregate(uint32_t node, sg_bytes batch, sg_emitter *out, const char **error) {
    const sg_node *n = sg_node_of(node, SG_AGGREGATE, error);
    if (!n) return false;
    const sg_aggregator *agg = n->aggregator;
    uint8_t *acc = malloc(agg->acc_size ? agg->acc_size : 1);
    if (!acc) abort();
    sg_reader r = {batch.ptr, batch.len, 0, false};
    while (r.pos < r.len) {
        sg_read_bytes(&r, sg_u32(&r)); /* key */
        sg_i64(&r);                    /* window start */
        uint32_t acc_len = sg_u32(&r);
        if (acc_len == SG_NONE) {
            memset(acc, 0, agg->acc_size);
            if (agg->init) agg->init(acc);
        } else {
            sg_bytes stored = sg_read_bytes(&r, acc_len);
            if (!r.failed && stored.len != agg->acc_size) {
                free(acc);
                *error = "an accumulator has the wrong size";
                return false;
            }
            if (stored.len) memcpy(acc, stored.ptr, stored.len);
        }
        uint32_t count = sg_u32(&r);
        for (uint32_t i = 0; i < count && !r.failed; i++) {
            sg_bytes value = sg_read_bytes(&r, sg_u32(&r));
            if (!r.failed) agg->fold(acc, value);
        }
        if (r.failed) {
            free(acc);
            *error = SG_MALFORMED;
            return false;
        }
        sg_put_bytes(out, acc, agg->acc_size);
    }
    free(acc);
    return true;
}

bool sg_run_finish(uint32_t node, sg_bytes batch, sg_emitter *out, const char **error) {
    const sg_node *n = sg_node_of(node, SG_AGGREGATE, error);
    if (!n) return false;
    const sg_aggregator *agg = n->aggregator;
    sg_reader r = {batch.ptr, batch.len, 0, false};
    while (r.pos < r.len) {
        sg_bytes key = sg_read_bytes(&r, sg_u32(&r));
        sg_window_bounds w;
        w.start = sg_i64(&r);
        w.end = sg_i64(&r);
        sg_bytes acc = sg_read_bytes(&r, sg_u32(&r));
        if (r.failed) {
            *error = SG_MALFORMED;
            return false;
        }
        if (acc.len != agg->acc_size) {
            *error = "an accumulator has the wrong size";
            return false;
        }
        /* Copy for alignment: the struct's fields may be wider than the batch's alignment. */
        uint8_t stack[256];
        uint8_t *copy = agg->acc_size <= sizeof stack ? stack : malloc(agg->acc_size);
        if (!copy) abort();
        if (acc.len) memcpy(copy, acc.ptr, acc.len);
        agg->finish(key, w, copy, out);
        if (copy != stack) free(copy);
    }
    return true;
}
