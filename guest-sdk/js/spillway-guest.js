// Spillway guest helper for JavaScript (ComponentizeJS).
//
// A pipeline author declares the graph with a small builder and writes functions over one
// event at a time; this module implements the batch framing of `wit/pipeline.wit` and the four
// exports of the world `spillway:pipeline/pipeline@0.1.0`.
//
//   import { Window, Aggregator, Reject, exportPipeline } from './spillway-guest.js';
//
//   function build(p) {
//     p.source('lines')
//       .transform('parse', (event, out) => out.emit('key', event.time, event.value))
//       .aggregate('count', Window.tumblingMs(60_000), 1_000, new Count())
//       .sink('counts');
//   }
//   const pipeline = exportPipeline(build);
//   export const describe = pipeline.describe;
//   export const transform = pipeline.transform;
//   export const aggregate = pipeline.aggregate;
//   export const finish = pipeline.finish;
//
// Keys and values are Uint8Array (a string given to `emit` is encoded as UTF-8). Event times
// are Numbers of milliseconds (exact up to 2^53; the global window's bounds are -2^63 and 2^63).
// A transform that throws `Reject` rejects that one record; any other exception fails the
// whole call and stops the job. The guest keeps no state between calls.

const NONE = 0xffffffff;
const TWO_32 = 4294967296;
export const I64_MIN = -9223372036854775808; // -2^63, exact as a Number
export const I64_MAX = 9223372036854775807; // rounds to 2^63

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8');

/** Decodes bytes as UTF-8 (invalid sequences become U+FFFD). */
export function utf8(bytes) {
  return decoder.decode(bytes);
}

/** Throw this from a transform to reject one record with a message. */
export class Reject extends Error {}

/** A growable byte buffer that writes the framing. */
export class Writer {
  constructor(capacity = 4096) {
    this.buf = new Uint8Array(capacity);
    this.view = new DataView(this.buf.buffer);
    this.len = 0;
  }

  reserve(n) {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const buf = new Uint8Array(size);
    buf.set(this.buf.subarray(0, this.len));
    this.buf = buf;
    this.view = new DataView(buf.buffer);
  }

  u32(n) {
    this.reserve(4);
    this.view.setUint32(this.len, n, true);
    this.len += 4;
  }

  i64(n) {
    this.reserve(8);
    let v;
    if (typeof n === 'bigint') v = n;
    else if (n >= I64_MAX) v = 0x7fffffffffffffffn;
    else if (n <= I64_MIN) v = -0x8000000000000000n;
    else v = BigInt(Math.trunc(n));
    this.view.setBigInt64(this.len, v, true);
    this.len += 8;
  }

  raw(bytes) {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  bytes(bytes) {
    if (typeof bytes === 'string') bytes = encoder.encode(bytes);
    this.u32(bytes.length);
    this.raw(bytes);
  }

  optBytes(bytes) {
    if (bytes === null || bytes === undefined) this.u32(NONE);
    else this.bytes(bytes);
  }

  finish() {
    return this.buf.slice(0, this.len);
  }
}

/** Collects output events into one event batch. */
export class Emitter {
  constructor() {
    this.w = new Writer();
  }

  /** Appends an event: key (Uint8Array, string or null), time (ms), value (Uint8Array or string). */
  emit(key, time, value) {
    this.w.optBytes(key);
    this.w.i64(time);
    this.w.bytes(value);
  }
}

/** A cursor over a batch; throws `FrameError` when a record is cut short. */
export class FrameError extends Error {}

class Reader {
  constructor(batch) {
    this.buf = batch;
    this.view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
    this.pos = 0;
  }

  more() {
    return this.pos < this.buf.length;
  }

  check(n, field) {
    if (this.pos + n > this.buf.length) {
      throw new FrameError(`malformed batch: ${field} cut short at byte ${this.pos}`);
    }
  }

  u32(field) {
    this.check(4, field);
    const n = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return n;
  }

  i64(field) {
    this.check(8, field);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getInt32(this.pos + 4, true);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  take(n, field) {
    this.check(n, field);
    const bytes = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return bytes;
  }

  bytes(field) {
    return this.take(this.u32(field), field);
  }

  optBytes(field) {
    const n = this.u32(field);
    return n === NONE ? null : this.take(n, field);
  }
}

/** Yields `{ key, time, value }` for each event of an event batch. */
export function* readEvents(batch) {
  const r = new Reader(batch);
  while (r.more()) {
    const key = r.optBytes('event key');
    const time = r.i64('event time');
    const value = r.bytes('event value');
    yield { key, time, value };
  }
}

/** Yields `{ key, windowStart, accumulator (or null), values }` for each group. */
export function* readGroups(batch) {
  const r = new Reader(batch);
  while (r.more()) {
    const key = r.bytes('group key');
    const windowStart = r.i64('group window start');
    const accumulator = r.optBytes('group accumulator');
    const count = r.u32('group value count');
    const values = new Array(count);
    for (let i = 0; i < count; i++) values[i] = r.bytes('group value');
    yield { key, windowStart, accumulator, values };
  }
}

/** Yields `{ key, start, end, accumulator }` for each closed window. */
export function* readClosings(batch) {
  const r = new Reader(batch);
  while (r.more()) {
    const key = r.bytes('closing key');
    const start = r.i64('closing window start');
    const end = r.i64('closing window end');
    const accumulator = r.bytes('closing accumulator');
    yield { key, start, end, accumulator };
  }
}

/** An event-time window. */
export const Window = {
  global: Object.freeze({ sizeMs: null, slideMs: null }),
  tumblingMs(sizeMs) {
    if (!(sizeMs > 0)) throw new RangeError('a tumbling window needs a positive size');
    return Object.freeze({ sizeMs, slideMs: null });
  },
  /** Windows of `sizeMs` starting every `slideMs`: an event is folded into every window that
   * holds its time. */
  slidingMs(sizeMs, slideMs) {
    if (!(slideMs > 0 && slideMs <= sizeMs)) {
      throw new RangeError('a sliding window needs 0 < slide <= size');
    }
    return Object.freeze({ sizeMs, slideMs });
  },
};

/** A window as the WIT variant `window`. */
function witWindow({ sizeMs, slideMs }) {
  if (sizeMs === null) return { tag: 'global' };
  if (slideMs === null) return { tag: 'tumbling', val: BigInt(sizeMs) };
  return { tag: 'sliding', val: { sizeMs: BigInt(sizeMs), slideMs: BigInt(slideMs) } };
}

/**
 * Base class of a keyed aggregate: override `zero()`, `fold(acc, value)` (returns the new
 * accumulator) and `finish(key, window, acc, out)` (`window` is `{ start, end }`).
 * Accumulators are JSON by default; override `encode(acc) -> Uint8Array` and
 * `decode(bytes) -> acc` for another encoding. The host stores the encoded bytes.
 */
export class Aggregator {
  zero() {
    throw new Error('Aggregator.zero is not implemented');
  }
  fold(_acc, _value) {
    throw new Error('Aggregator.fold is not implemented');
  }
  finish(_key, _window, _acc, _out) {
    throw new Error('Aggregator.finish is not implemented');
  }
  encode(acc) {
    return encoder.encode(JSON.stringify(acc));
  }
  decode(bytes) {
    return JSON.parse(decoder.decode(bytes));
  }
}

/** The output of one node; chain the next node from it (or several, to fan out). */
class Stream {
  constructor(pipeline, index) {
    this.pipeline = pipeline;
    this.index = index;
  }
  /** `fn(event, out)` emits zero or more events with `out.emit(key, time, value)`. */
  transform(name, fn) {
    return this.pipeline.add(name, { kind: 'transform', fn }, this.index);
  }
  aggregate(name, window, maxOutOfOrdernessMs, aggregator) {
    return this.pipeline.add(
      name,
      { kind: 'aggregate', window, maxOutOfOrdernessMs, aggregator },
      this.index,
    );
  }
  sink(name) {
    this.pipeline.add(name, { kind: 'sink', name }, this.index);
  }
}

/** The graph under construction; node indices follow the order of declaration. */
export class Pipeline {
  constructor() {
    this.nodes = [];
  }

  static build(buildFn) {
    const p = new Pipeline();
    buildFn(p);
    return p;
  }

  source(name) {
    return this.add(name, { kind: 'source', name }, null);
  }

  add(name, op, input) {
    if (this.nodes.some((n) => n.name === name)) throw new Error(`two nodes are named "${name}"`);
    this.nodes.push({ name, op, inputs: input === null ? [] : [input] });
    return new Stream(this, this.nodes.length - 1);
  }

  node(index, kind) {
    const node = this.nodes[index];
    if (!node) throw new Error(`node ${index} does not exist; the graph has ${this.nodes.length}`);
    if (node.op.kind !== kind) {
      throw new Error(`node ${index} ("${node.name}") is ${node.op.kind}, not ${kind}`);
    }
    return node.op;
  }

  /** The graph as the WIT `graph` record. */
  graph() {
    return {
      nodes: this.nodes.map(({ name, op, inputs }) => {
        let wop;
        switch (op.kind) {
          case 'source':
            wop = { tag: 'source', val: op.name };
            break;
          case 'transform':
            wop = { tag: 'transform' };
            break;
          case 'aggregate':
            wop = {
              tag: 'aggregate',
              val: {
                window: witWindow(op.window),
                maxOutOfOrdernessMs: BigInt(op.maxOutOfOrdernessMs),
              },
            };
            break;
          default:
            wop = { tag: 'sink', val: op.name };
        }
        return { name, op: wop, inputs };
      }),
    };
  }

  /** Returns `{ events, errors: [{ index, message }] }`. */
  runTransform(index, batch) {
    const fn = this.node(index, 'transform').fn;
    const out = new Emitter();
    const errors = [];
    let i = 0;
    for (const event of readEvents(batch)) {
      const mark = out.w.len;
      try {
        fn(event, out);
      } catch (e) {
        if (!(e instanceof Reject)) throw e;
        out.w.len = mark;
        errors.push({ index: i, message: e.message });
      }
      i++;
    }
    return { events: out.w.finish(), errors };
  }

  runAggregate(index, batch) {
    const agg = this.node(index, 'aggregate').aggregator;
    const w = new Writer();
    for (const group of readGroups(batch)) {
      let acc = group.accumulator === null ? agg.zero() : agg.decode(group.accumulator);
      for (const value of group.values) acc = agg.fold(acc, value);
      w.bytes(agg.encode(acc));
    }
    return w.finish();
  }

  runFinish(index, batch) {
    const agg = this.node(index, 'aggregate').aggregator;
    const out = new Emitter();
    for (const c of readClosings(batch)) {
      agg.finish(c.key, { start: c.start, end: c.end }, agg.decode(c.accumulator), out);
    }
    return out.w.finish();
  }
}

/** Builds the pipeline and returns the four functions the entry module must export. */
export function exportPipeline(buildFn) {
  const p = Pipeline.build(buildFn);
  // A thrown value becomes the `err` of the result: the WIT `guest-error` record.
  const guarded = (call) => {
    try {
      return call();
    } catch (e) {
      const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      throw { message };
    }
  };
  return {
    describe: () => p.graph(),
    transform: (node, events) => guarded(() => p.runTransform(node, events)),
    aggregate: (node, groups) => guarded(() => p.runAggregate(node, groups)),
    finish: (node, closings) => guarded(() => p.runFinish(node, closings)),
  };
}
