// Spillway example in JavaScript: requests and response bytes per hour and status class of an
// Apache access log (the same job and output as the Rust `examples/access-log`).
//
// logs -> parse (key = status class such as 2xx, time = request time in UTC, value = response
// bytes) -> per_hour (tumbling 1 h windows, 60 s out-of-orderness) -> report, one JSON line per
// hour and status class:
//
//   {"hour":"2015-05-17T10:00:00Z","status":"2xx","requests":73,"bytes":5185028}

import { Aggregator, Reject, Window, exportPipeline, utf8 } from '../../guest-sdk/js/spillway-guest.js';

const HOUR_MS = 3_600_000;
const MAX_OUT_OF_ORDERNESS_MS = 60_000;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const TWO_32 = 4294967296;

const floorDiv = (a, b) => Math.floor(a / b);

/** Days since 1970-01-01 (Howard Hinnant's algorithm). */
function daysFromCivil(year, month, day) {
  const y = month <= 2 ? year - 1 : year;
  const era = floorDiv(y, 400);
  const yoe = y - era * 400;
  const doy = floorDiv(153 * ((month + 9) % 12) + 2, 5) + day - 1;
  const doe = yoe * 365 + floorDiv(yoe, 4) - floorDiv(yoe, 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(days) {
  const z = days + 719468;
  const era = floorDiv(z, 146097);
  const doe = z - era * 146097;
  const yoe = floorDiv(doe - floorDiv(doe, 1460) + floorDiv(doe, 36524) - floorDiv(doe, 146096), 365);
  const doy = doe - (365 * yoe + floorDiv(yoe, 4) - floorDiv(yoe, 100));
  const mp = floorDiv(5 * doy + 2, 153);
  const day = doy - floorDiv(153 * mp + 2, 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

const pad = (n, width) => String(n).padStart(width, '0');

/** `2015-05-17T10:00:00Z` (with `.123` when there are milliseconds). */
function rfc3339(ms) {
  const days = floorDiv(ms, 86400000);
  const [y, mo, d] = civilFromDays(days);
  const rest = ms - days * 86400000;
  const text = `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(floorDiv(rest, 3600000), 2)}:${pad(
    floorDiv(rest, 60000) % 60,
    2,
  )}:${pad(floorDiv(rest, 1000) % 60, 2)}`;
  return rest % 1000 === 0 ? `${text}Z` : `${text}.${pad(rest % 1000, 3)}Z`;
}

const excerpt = (s) => Array.from(s).slice(0, 40).join('');
const isDigits = (s) => s.length > 0 && /^[0-9]+$/.test(s);

/** `17/May/2015:10:05:03 +0000` as ms since the Unix epoch, UTC, or null. */
function parseTimestamp(s) {
  if (s.length !== 26) return null;
  if (s[2] !== '/' || s[6] !== '/' || s[11] !== ':' || s[14] !== ':' || s[17] !== ':' || s[20] !== ' ') {
    return null;
  }
  const fields = [s.slice(0, 2), s.slice(7, 11), s.slice(12, 14), s.slice(15, 17), s.slice(18, 20), s.slice(22, 24), s.slice(24, 26)];
  if (!fields.every(isDigits)) return null;
  const [day, year, hour, minute, second, oh, om] = fields.map(Number);
  const month = MONTHS.indexOf(s.slice(3, 6)) + 1;
  const sign = s[21] === '+' ? 1 : s[21] === '-' ? -1 : 0;
  if (month === 0 || sign === 0) return null;
  if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || om > 59) return null;
  const local = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  return (local - sign * (oh * 3600 + om * 60)) * 1000;
}

function closingQuote(field) {
  for (let i = 0; i < field.length; ) {
    const c = field[i];
    if (c === '\\') i += 2;
    else if (c === '"') return i;
    else i += 1;
  }
  return -1;
}

/**
 * `HOST IDENT USER [TIME] "REQUEST" STATUS SIZE ...` -> `{ timeMs, status, bytes }`.
 * Throws `Reject` (which rejects the record) saying what is wrong.
 */
function parseLine(line) {
  const open = line.indexOf('[');
  const close = open < 0 ? -1 : line.indexOf(']', open);
  if (close < 0) throw new Reject('no [timestamp] in the line');
  const stamp = line.slice(open + 1, close);
  const timeMs = parseTimestamp(stamp);
  if (timeMs === null) {
    throw new Reject(`timestamp "${excerpt(stamp)}" is not like 17/May/2015:10:05:03 +0000`);
  }
  let rest = line.slice(close + 1);
  if (!rest.startsWith(' "')) throw new Reject('no quoted request after the timestamp');
  rest = rest.slice(2);
  const end = closingQuote(rest);
  if (end < 0) throw new Reject('no quoted request after the timestamp');
  rest = rest.slice(end + 1);
  if (!rest.startsWith(' ')) throw new Reject('no status and size after the request');
  const fields = rest.slice(1).split(' ');
  const status = fields[0];
  if (status === '') throw new Reject('no status and size after the request');
  if (status.length !== 3 || !isDigits(status)) {
    throw new Reject(`status "${excerpt(status)}" is not three digits`);
  }
  const size = fields.length > 1 ? fields[1] : '';
  let bytes = 0;
  if (size !== '-') {
    if (!isDigits(size) || BigInt(size) >= 1n << 64n) {
      throw new Reject(`response size "${excerpt(size)}" is neither a number nor -`);
    }
    bytes = Number(size);
  }
  return { timeMs, status, bytes };
}

function parse(event, out) {
  const request = parseLine(utf8(event.value));
  const value = new Uint8Array(8);
  const view = new DataView(value.buffer);
  view.setUint32(0, request.bytes % TWO_32, true);
  view.setUint32(4, Math.floor(request.bytes / TWO_32), true);
  out.emit(`${request.status[0]}xx`, request.timeMs, value);
}

/** Counts requests and sums their response bytes; the accumulator is [requests, bytes]. */
class Traffic extends Aggregator {
  zero() {
    return [0, 0];
  }

  fold(acc, value) {
    acc[0] += 1;
    if (value.length === 8) {
      const view = new DataView(value.buffer, value.byteOffset, 8);
      acc[1] += view.getUint32(0, true) + view.getUint32(4, true) * TWO_32;
    }
    return acc;
  }

  finish(key, window, acc, out) {
    // Written by hand to keep exactly this key order and format.
    const line = `{"hour":"${rfc3339(window.start)}","status":${JSON.stringify(utf8(key))},"requests":${acc[0]},"bytes":${acc[1]}}`;
    out.emit(null, window.start, line);
  }
}

function build(p) {
  p.source('logs')
    .transform('parse', parse)
    .aggregate('per_hour', Window.tumblingMs(HOUR_MS), MAX_OUT_OF_ORDERNESS_MS, new Traffic())
    .sink('report');
}

const pipeline = exportPipeline(build);
export const describe = pipeline.describe;
export const transform = pipeline.transform;
export const aggregate = pipeline.aggregate;
export const finish = pipeline.finish;
