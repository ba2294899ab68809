/*
 * Spillway example in C: requests and response bytes per hour and status class of an Apache
 * access log (the same job and output as the Rust `examples/access-log`).
 *
 * logs -> parse (key = status class such as 2xx, time = request time in UTC, value = response
 * bytes) -> per_hour (tumbling 1 h windows, 60 s out-of-orderness) -> report, one JSON line per
 * hour and status class:
 *
 *   {"hour":"2015-05-17T10:00:00Z","status":"2xx","requests":73,"bytes":5185028}
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "spillway_guest.h"

#define HOUR_MS 3600000
#define MAX_OUT_OF_ORDERNESS_MS 60000

/* Days since 1970-01-01 (Howard Hinnant's algorithm). */
static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

static int64_t days_from_civil(int64_t year, int64_t month, int64_t day) {
    if (month <= 2) year -= 1;
    int64_t era = floor_div(year, 400);
    int64_t yoe = year - era * 400;
    int64_t doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t days, int64_t *year, int *month, int *day) {
    days += 719468;
    int64_t era = floor_div(days, 146097);
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

/* `2015-05-17T10:00:00Z` (with `.123` when there are milliseconds). */
static int rfc3339(char *buf, size_t cap, int64_t ms) {
    int64_t days = floor_div(ms, 86400000), year;
    int64_t rest = ms - days * 86400000;
    int month, day;
    civil_from_days(days, &year, &month, &day);
    int n = snprintf(buf, cap, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d", year, month, day,
                     (int)(rest / 3600000), (int)(rest / 60000 % 60), (int)(rest / 1000 % 60));
    if (rest % 1000 == 0) return n + snprintf(buf + n, cap - n, "Z");
    return n + snprintf(buf + n, cap - n, ".%03dZ", (int)(rest % 1000));
}

/* Parses a run of ASCII digits; false if empty, not all digits, or over UINT64_MAX. */
static bool parse_u64(const uint8_t *s, size_t len, uint64_t *out) {
    if (len == 0) return false;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        uint64_t d = s[i] - '0';
        if (n > (UINT64_MAX - d) / 10) return false;
        n = n * 10 + d;
    }
    *out = n;
    return true;
}

static bool digits(const uint8_t *s, size_t len, uint32_t *out) {
    uint64_t n;
    if (!parse_u64(s, len, &n) || n > UINT32_MAX) return false;
    *out = (uint32_t)n;
    return true;
}

/* `17/May/2015:10:05:03 +0000` as ms since the Unix epoch, UTC. */
static bool parse_timestamp(const uint8_t *s, size_t len, int64_t *ms) {
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (len != 26 || s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' || s[17] != ':' ||
        s[20] != ' ')
        return false;
    uint32_t day, year, hour, minute, second, oh, om, month = 0;
    if (!digits(s, 2, &day) || !digits(s + 7, 4, &year) || !digits(s + 12, 2, &hour) ||
        !digits(s + 15, 2, &minute) || !digits(s + 18, 2, &second) || !digits(s + 22, 2, &oh) ||
        !digits(s + 24, 2, &om))
        return false;
    for (int i = 0; i < 12; i++) {
        if (memcmp(s + 3, months[i], 3) == 0) month = (uint32_t)i + 1;
    }
    int sign = s[21] == '+' ? 1 : s[21] == '-' ? -1 : 0;
    if (month == 0 || sign == 0) return false;
    if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || om > 59) return false;
    int64_t local = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    *ms = (local - sign * (int64_t)(oh * 3600 + om * 60)) * 1000;
    return true;
}

/* Part of a line to quote in a message: at most 40 bytes, cut on a UTF-8 boundary. */
static int excerpt_len(const uint8_t *s, size_t len) {
    size_t n = 0, chars = 0;
    while (n < len && chars < 40) {
        n++;
        while (n < len && (s[n] & 0xC0) == 0x80) n++;
        chars++;
    }
    return (int)n;
}

static const uint8_t *find(const uint8_t *s, size_t len, uint8_t c) { return memchr(s, c, len); }

/* `HOST IDENT USER [TIME] "REQUEST" STATUS SIZE ...`: emits (status class, time, bytes). */
static bool parse(const sg_event *event, sg_emitter *out, sg_error *err) {
    const uint8_t *line = event->value.ptr, *end = line + event->value.len;
    const uint8_t *open = find(line, event->value.len, '[');
    const uint8_t *close = open ? find(open, (size_t)(end - open), ']') : NULL;
    if (!close) return sg_fail(err, "no [timestamp] in the line");
    int64_t time_ms;
    size_t stamp_len = (size_t)(close - open - 1);
    if (!parse_timestamp(open + 1, stamp_len, &time_ms))
        return sg_fail(err, "timestamp \"%.*s\" is not like 17/May/2015:10:05:03 +0000",
                       excerpt_len(open + 1, stamp_len), (const char *)open + 1);

    const uint8_t *p = close + 1;
    if (end - p < 2 || p[0] != ' ' || p[1] != '"') return sg_fail(err, "no quoted request after the timestamp");
    p += 2;
    while (p < end && *p != '"') p += *p == '\\' ? 2 : 1;
    if (p >= end) return sg_fail(err, "no quoted request after the timestamp");
    p++;
    if (p >= end || *p != ' ') return sg_fail(err, "no status and size after the request");
    p++;

    const uint8_t *status = p;
    const uint8_t *space = find(p, (size_t)(end - p), ' ');
    size_t status_len = (size_t)((space ? space : end) - status);
    if (status_len == 0) return sg_fail(err, "no status and size after the request");
    uint64_t ignored;
    if (status_len != 3 || !parse_u64(status, 3, &ignored))
        return sg_fail(err, "status \"%.*s\" is not three digits", excerpt_len(status, status_len),
                       (const char *)status);

    const uint8_t *size = space ? space + 1 : end;
    const uint8_t *size_end = find(size, (size_t)(end - size), ' ');
    size_t size_len = (size_t)((size_end ? size_end : end) - size);
    uint64_t bytes = 0;
    if (!(size_len == 1 && size[0] == '-') && !parse_u64(size, size_len, &bytes))
        return sg_fail(err, "response size \"%.*s\" is neither a number nor -",
                       excerpt_len(size, size_len), (const char *)size);

    uint8_t class[3] = {status[0], 'x', 'x'};
    sg_bytes key = {class, 3};
    sg_emit(out, &key, time_ms, &bytes, sizeof bytes); /* 8 bytes, little-endian */
    return true;
}

/* The accumulator: plain bytes, stored by the host. */
typedef struct totals {
    uint64_t requests;
    uint64_t bytes;
} totals;

static void fold(void *acc, sg_bytes value) {
    totals *t = acc;
    t->requests++;
    if (value.len == 8) {
        uint64_t bytes;
        memcpy(&bytes, value.ptr, 8);
        t->bytes += bytes;
    }
}

static void finish(sg_bytes key, sg_window_bounds window, const void *acc, sg_emitter *out) {
    const totals *t = acc;
    char hour[40], line[160];
    rfc3339(hour, sizeof hour, window.start);
    /* The key is the status class, three ASCII characters: no JSON escaping needed. */
    snprintf(line, sizeof line,
             "{\"hour\":\"%s\",\"status\":\"%.*s\",\"requests\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
             hour, (int)key.len, (const char *)key.ptr, t->requests, t->bytes);
    sg_emit_str(out, NULL, window.start, line);
}

static const sg_aggregator TRAFFIC = {
    .acc_size = sizeof(totals),
    .fold = fold,
    .finish = finish,
};

void spillway_build(sg_pipeline *p) {
    sg_stream logs = sg_source(p, "logs");
    sg_stream parsed = sg_transform(p, logs, "parse", parse);
    sg_stream per_hour =
        sg_aggregate(p, parsed, "per_hour", sg_tumbling_ms(HOUR_MS), MAX_OUT_OF_ORDERNESS_MS, &TRAFFIC);
    sg_sink(p, per_hour, "report");
}
