/*
 * Spillway guest helper for C (clang --target=wasm32-wasi, wit-bindgen c, wasm-tools).
 *
 * A pipeline author declares the graph in `spillway_build` and writes functions over one event
 * at a time; spillway_guest.c implements the batch framing of wit/pipeline.wit and the four
 * exports of the world `spillway:pipeline/pipeline@0.1.0` on top of the `wit-bindgen c`
 * bindings (pipeline.h / pipeline.c, generated at build time).
 *
 *     #include "spillway_guest.h"
 *
 *     static bool upper(const sg_event *e, sg_emitter *out, sg_error *err) {
 *         if (e->value.len == 0) return sg_fail(err, "empty line");
 *         sg_emit(out, &e->value, e->time, e->value.ptr, e->value.len);
 *         return true;
 *     }
 *
 *     void spillway_build(sg_pipeline *p) {
 *         sg_stream lines = sg_source(p, "lines");
 *         sg_stream keyed = sg_transform(p, lines, "key", upper);
 *         sg_stream counts = sg_aggregate(p, keyed, "count", sg_tumbling_ms(60000), 1000, &COUNT);
 *         sg_sink(p, counts, "counts");
 *     }
 *
 * Accumulators are fixed-size C structs (plain bytes, no pointers): the host stores their bytes
 * and hands them back; the first fold of a (key, window) starts from all-zero bytes, or from
 * `init` when given. A transform that returns false (use `sg_fail`) rejects that one record;
 * what it emitted for that record is dropped. The guest keeps no state between calls.
 */
#ifndef SPILLWAY_GUEST_H
#define SPILLWAY_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Borrowed bytes (valid during the call only). */
typedef struct sg_bytes {
    const uint8_t *ptr;
    size_t len;
} sg_bytes;

/* One event: an optional key, an event time (ms since the Unix epoch, UTC) and a value. */
typedef struct sg_event {
    bool has_key;
    sg_bytes key;
    int64_t time;
    sg_bytes value;
} sg_event;

/* A growable output batch. */
typedef struct sg_emitter {
    uint8_t *ptr;
    size_t len;
    size_t cap;
} sg_emitter;

/* Appends an event; `key` NULL means no key. */
void sg_emit(sg_emitter *out, const sg_bytes *key, int64_t time, const void *value, size_t len);
/* Appends an event whose value is a NUL-terminated string. */
void sg_emit_str(sg_emitter *out, const sg_bytes *key, int64_t time, const char *value);

/* The message of a rejected record. */
typedef struct sg_error {
    char message[256];
} sg_error;

/* Formats the message into `err` (printf-style) and returns false, for `return sg_fail(...)`. */
bool sg_fail(sg_error *err, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* A transform: emits zero or more events for `event`; returns false to reject it. */
typedef bool (*sg_transform_fn)(const sg_event *event, sg_emitter *out, sg_error *err);

/* Window bounds: start inclusive, end exclusive; INT64_MIN..INT64_MAX for the global window. */
typedef struct sg_window_bounds {
    int64_t start;
    int64_t end;
} sg_window_bounds;

/* A window: size_ms 0 = global; otherwise windows of size_ms starting every slide_ms, tumbling
 * (one window per event) unless `sliding`. Build one with the functions below. */
typedef struct sg_window {
    uint64_t size_ms;
    uint64_t slide_ms;
    bool sliding;
} sg_window;

static inline sg_window sg_tumbling_ms(uint64_t size_ms) {
    return (sg_window){size_ms, size_ms, false};
}
/* Overlapping windows: an event is folded into every window that holds its time. The host
 * rejects the pipeline unless 0 < slide_ms <= size_ms. */
static inline sg_window sg_sliding_ms(uint64_t size_ms, uint64_t slide_ms) {
    return (sg_window){size_ms, slide_ms, true};
}
static inline sg_window sg_global_window(void) { return (sg_window){0, 0, false}; }

/* A keyed aggregate over fixed-size accumulators of `acc_size` bytes. */
typedef struct sg_aggregator {
    size_t acc_size;
    /* Optional: sets up a new accumulator (default: all zero bytes). */
    void (*init)(void *acc);
    /* Folds one value into the accumulator. Must not depend on arrival order. */
    void (*fold)(void *acc, sg_bytes value);
    /* Emits the output of a closed window. */
    void (*finish)(sg_bytes key, sg_window_bounds window, const void *acc, sg_emitter *out);
} sg_aggregator;

typedef struct sg_pipeline sg_pipeline;
typedef uint32_t sg_stream; /* a node index */

sg_stream sg_source(sg_pipeline *p, const char *name);
sg_stream sg_transform(sg_pipeline *p, sg_stream input, const char *name, sg_transform_fn fn);
sg_stream sg_aggregate(sg_pipeline *p, sg_stream input, const char *name, sg_window window,
                       uint64_t max_out_of_orderness_ms, const sg_aggregator *aggregator);
void sg_sink(sg_pipeline *p, sg_stream input, const char *name);

/* Defined by the guest author: declares the pipeline. Called once per instance. */
void spillway_build(sg_pipeline *p);

/* The four calls, independent of the bindings (for native tests). Each returns false and
 * sets *error (a static message) on a failure of the whole call. */
typedef struct sg_record_error {
    uint32_t index;
    char *message; /* malloc'd */
} sg_record_error;

bool sg_run_transform(uint32_t node, sg_bytes batch, sg_emitter *out, sg_record_error **errors,
                      size_t *error_count, const char **error);
bool sg_run_aggregate(uint32_t node, sg_bytes batch, sg_emitter *out, const char **error);
bool sg_run_finish(uint32_t node, sg_bytes batch, sg_emitter *out, const char **error);

#ifdef __cplusplus
}
#endif

#endif
