/* Spillway guest helper for C: the four exports of spillway:pipeline/pipeline@0.1.0, on top of
 * the `wit-bindgen c` bindings (pipeline.h, generated into the build directory).
 *
 * Ownership follows wit-bindgen's rules: argument lists belong to the callee (freed here), and
 * returned lists and strings must be malloc'd (the generated cabi_post_* functions free them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "spillway_guest.h"

uint32_t sg_node_count(void);
void sg_node_info(uint32_t i, const char **name, int *kind, int32_t *input, sg_window *window,
                  uint64_t *max_out_of_orderness_ms);

enum { KIND_SOURCE, KIND_TRANSFORM, KIND_AGGREGATE, KIND_SINK };

void exports_pipeline_describe(pipeline_graph_t *ret) {
    uint32_t count = sg_node_count();
    spillway_pipeline_types_node_t *nodes = calloc(count ? count : 1, sizeof *nodes);
    if (!nodes) abort();
    for (uint32_t i = 0; i < count; i++) {
        const char *name;
        int kind;
        int32_t input;
        sg_window window;
        uint64_t max_ooo;
        sg_node_info(i, &name, &kind, &input, &window, &max_ooo);
        spillway_pipeline_types_node_t *n = &nodes[i];
        pipeline_string_dup(&n->name, name);
        switch (kind) {
        case KIND_SOURCE:
            n->op.tag = SPILLWAY_PIPELINE_TYPES_OPERATOR_SOURCE;
            pipeline_string_dup(&n->op.val.source, name);
            break;
        case KIND_TRANSFORM:
            n->op.tag = SPILLWAY_PIPELINE_TYPES_OPERATOR_TRANSFORM;
            break;
        case KIND_AGGREGATE:
            n->op.tag = SPILLWAY_PIPELINE_TYPES_OPERATOR_AGGREGATE;
            if (window.sliding) {
                n->op.val.aggregate.window.tag = SPILLWAY_PIPELINE_TYPES_WINDOW_SLIDING;
                n->op.val.aggregate.window.val.sliding.size_ms = window.size_ms;
                n->op.val.aggregate.window.val.sliding.slide_ms = window.slide_ms;
            } else if (window.size_ms == 0) {
                n->op.val.aggregate.window.tag = SPILLWAY_PIPELINE_TYPES_WINDOW_GLOBAL;
            } else {
                n->op.val.aggregate.window.tag = SPILLWAY_PIPELINE_TYPES_WINDOW_TUMBLING;
                n->op.val.aggregate.window.val.tumbling = window.size_ms;
            }
            n->op.val.aggregate.max_out_of_orderness_ms = max_ooo;
            break;
        default:
            n->op.tag = SPILLWAY_PIPELINE_TYPES_OPERATOR_SINK;
            pipeline_string_dup(&n->op.val.sink, name);
            break;
        }
        if (input >= 0) {
            n->inputs.ptr = malloc(sizeof(uint32_t));
            if (!n->inputs.ptr) abort();
            n->inputs.ptr[0] = (uint32_t)input;
            n->inputs.len = 1;
        }
    }
    ret->nodes.ptr = nodes;
    ret->nodes.len = count;
}

/* A guest-error naming the node, like the Rust SDK's. */
static void set_error(pipeline_guest_error_t *err, uint32_t node, const char *message) {
    char text[512];
    const char *name = "?";
    if (node < sg_node_count()) {
        int kind;
        int32_t input;
        sg_window window;
        uint64_t max_ooo;
        sg_node_info(node, &name, &kind, &input, &window, &max_ooo);
    }
    snprintf(text, sizeof text, "node %u (\"%s\") %s", (unsigned)node, name, message);
    pipeline_string_dup(&err->message, text);
}

static void take_output(sg_emitter *out, pipeline_list_u8_t *ret) {
    ret->ptr = out->ptr;
    ret->len = out->len;
}

bool exports_pipeline_transform(uint32_t node, pipeline_list_u8_t *events,
                                pipeline_transform_output_t *ret, pipeline_guest_error_t *err) {
    sg_emitter out = {0};
    sg_record_error *errors = NULL;
    size_t error_count = 0;
    const char *error = NULL;
    bool ok = sg_run_transform(node, (sg_bytes){events->ptr, events->len}, &out, &errors,
                               &error_count, &error);
    pipeline_list_u8_free(events);
    if (!ok) {
        free(out.ptr);
        for (size_t i = 0; i < error_count; i++) free(errors[i].message);
        free(errors);
        set_error(err, node, error);
        return false;
    }
    take_output(&out, &ret->events);
    ret->errors.len = error_count;
    ret->errors.ptr = NULL;
    if (error_count) {
        ret->errors.ptr = malloc(error_count * sizeof *ret->errors.ptr);
        if (!ret->errors.ptr) abort();
        for (size_t i = 0; i < error_count; i++) {
            ret->errors.ptr[i].index = errors[i].index;
            ret->errors.ptr[i].message.ptr = (uint8_t *)errors[i].message; /* freed by post-return */
            ret->errors.ptr[i].message.len = strlen(errors[i].message);
        }
    }
    free(errors);
    return true;
}

/* The body of `aggregate` and `finish`: run the SDK over one batch, hand back its output. */
static bool run_batch(bool (*run)(uint32_t, sg_bytes, sg_emitter *, const char **), uint32_t node,
                      pipeline_list_u8_t *batch, pipeline_list_u8_t *ret,
                      pipeline_guest_error_t *err) {
    sg_emitter out = {0};
    const char *error = NULL;
    bool ok = run(node, (sg_bytes){batch->ptr, batch->len}, &out, &error);
    pipeline_list_u8_free(batch);
    if (!ok) {
        free(out.ptr);
        set_error(err, node, error);
        return false;
    }
    take_output(&out, ret);
    return true;
}

bool exports_pipeline_aggregate(uint32_t node, pipeline_list_u8_t *groups, pipeline_list_u8_t *ret,
                                pipeline_guest_error_t *err) {
    return run_batch(sg_run_aggregate, node, groups, ret, err);
}

bool exports_pipeline_finish(uint32_t node, pipeline_list_u8_t *closings, pipeline_list_u8_t *ret,
                             pipeline_guest_error_t *err) {
    return run_batch(sg_run_finish, node, closings, ret, err);
}
