"""Spillway example in Python: requests and response bytes per hour and status class of an
Apache access log (the same job and output as the Rust `examples/access-log`).

logs -> parse (key = status class such as 2xx, time = request time in UTC, value = response
bytes) -> per_hour (tumbling 1 h windows, 60 s out-of-orderness) -> report, one JSON line per
hour and status class:

    {"hour":"2015-05-17T10:00:00Z","status":"2xx","requests":73,"bytes":5185028}
"""

import spillway_guest as sg

HOUR_MS = 3_600_000
MAX_OUT_OF_ORDERNESS_MS = 60_000

MONTHS = {
    m.encode(): i + 1
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    )
}


def days_from_civil(year, month, day):
    """Days since 1970-01-01 (Howard Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def civil_from_days(days):
    days += 719_468
    era = days // 146_097
    doe = days - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def rfc3339(ms):
    """`2015-05-17T10:00:00Z` (with `.123` when there are milliseconds)."""
    year, month, day = civil_from_days(ms // 86_400_000)
    rest = ms % 86_400_000
    text = "%04d-%02d-%02dT%02d:%02d:%02d" % (
        year, month, day, rest // 3_600_000, rest // 60_000 % 60, rest // 1000 % 60
    )
    return text + ("Z" if rest % 1000 == 0 else ".%03dZ" % (rest % 1000))


def excerpt(b):
    return b.decode("utf-8", "replace")[:40]


def digits(b):
    if not b or not b.isdigit():
        return None
    return int(b)


def parse_timestamp(s):
    """`17/May/2015:10:05:03 +0000` as ms since the Unix epoch, UTC, or None."""
    if len(s) != 26 or s[2:3] != b"/" or s[6:7] != b"/" or s[11:12] != b":":
        return None
    if s[14:15] != b":" or s[17:18] != b":" or s[20:21] != b" ":
        return None
    day, month, year = digits(s[0:2]), MONTHS.get(s[3:6]), digits(s[7:11])
    hour, minute, second = digits(s[12:14]), digits(s[15:17]), digits(s[18:20])
    sign = {b"+": 1, b"-": -1}.get(s[21:22])
    oh, om = digits(s[22:24]), digits(s[24:26])
    if None in (day, month, year, hour, minute, second, sign, oh, om):
        return None
    if not 1 <= day <= 31 or hour > 23 or minute > 59 or second > 60 or om > 59:
        return None
    local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
    return (local - sign * (oh * 3600 + om * 60)) * 1000


def closing_quote(field):
    i, n = 0, len(field)
    while i < n:
        c = field[i]
        if c == 0x5C:  # backslash
            i += 2
        elif c == 0x22:  # quote
            return i
        else:
            i += 1
    return None


def parse_line(line):
    """`HOST IDENT USER [TIME] "REQUEST" STATUS SIZE ...` -> (time_ms, status, bytes).

    Raises ValueError (which rejects the record) saying what is wrong."""
    open_ = line.find(b"[")
    close = line.find(b"]", open_) if open_ >= 0 else -1
    if close < 0:
        raise ValueError("no [timestamp] in the line")
    stamp = line[open_ + 1 : close]
    time_ms = parse_timestamp(stamp)
    if time_ms is None:
        raise ValueError(
            'timestamp "%s" is not like 17/May/2015:10:05:03 +0000' % excerpt(stamp)
        )
    rest = line[close + 1 :]
    if not rest.startswith(b' "'):
        raise ValueError("no quoted request after the timestamp")
    rest = rest[2:]
    end = closing_quote(rest)
    if end is None:
        raise ValueError("no quoted request after the timestamp")
    rest = rest[end + 1 :]
    if not rest.startswith(b" "):
        raise ValueError("no status and size after the request")
    fields = rest[1:].split(b" ")
    status = fields[0]
    if not status:
        raise ValueError("no status and size after the request")
    if len(status) != 3 or not status.isdigit():
        raise ValueError('status "%s" is not three digits' % excerpt(status))
    size = fields[1] if len(fields) > 1 else b""
    if size == b"-":
        size_bytes = 0
    else:
        size_bytes = digits(size)
        if size_bytes is None or size_bytes >= 1 << 64:
            raise ValueError('response size "%s" is neither a number nor -' % excerpt(size))
    return time_ms, status, size_bytes


def parse(event, out):
    time_ms, status, size = parse_line(event.value)
    out.emit(status[:1] + b"xx", time_ms, size.to_bytes(8, "little"))


class Traffic(sg.Aggregator):
    """Counts requests and sums their response bytes; the accumulator is [requests, bytes]."""

    def zero(self):
        return [0, 0]

    def fold(self, acc, value):
        acc[0] += 1
        if len(value) == 8:
            acc[1] += int.from_bytes(value, "little")
        return acc

    def finish(self, key, window, acc, out):
        # Written by hand to keep exactly this key order and format.
        line = '{"hour":"%s","status":%s,"requests":%d,"bytes":%d}' % (
            rfc3339(window.start),
            sg.json.dumps(key.decode("utf-8", "replace"), ensure_ascii=False),
            acc[0],
            acc[1],
        )
        out.emit(None, window.start, line)


def build(p):
    (
        p.source("logs")
        .transform("parse", parse)
        .aggregate("per_hour", sg.Window.tumbling_ms(HOUR_MS), MAX_OUT_OF_ORDERNESS_MS, Traffic())
        .sink("report")
    )


if sg.wit_world is not None:
    WitWorld = sg.export(build)
