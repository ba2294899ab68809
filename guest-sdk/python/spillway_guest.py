"""Spillway guest helper for Python (componentize-py).

A pipeline author declares the graph with a small builder and writes functions over one
event at a time; this module implements the batch framing of `wit/pipeline.wit` and the
four exports of the world `spillway:pipeline/pipeline@0.1.0`.

    import spillway_guest as sg

    def parse(event, out):
        out.emit(b"key", event.time, event.value.upper())

    class Count(sg.Aggregator):
        def zero(self): return 0
        def fold(self, acc, value): return acc + 1
        def finish(self, key, window, acc, out): out.emit(None, window.start, str(acc).encode())

    def build(p):
        p.source("lines").transform("parse", parse) \
         .aggregate("count", sg.Window.tumbling_ms(60_000), 1_000, Count()).sink("counts")

    WitWorld = sg.export(build)      # componentize-py instantiates this class

Rules (the same as the Rust SDK's): the guest keeps no state between calls; folding must not
depend on arrival order; a transform that raises `ValueError` (or a subclass) rejects that one
record, anything else fails the whole call and stops the job.
"""

import json
import struct

try:  # The bindings exist only inside componentize-py; the framing works without them.
    import wit_world
    from wit_world.imports import types as _wit
    from componentize_py_types import Err as _Err
except ImportError:  # pragma: no cover - plain CPython, e.g. unit tests
    wit_world = None
    _wit = None
    _Err = None

NONE = 0xFFFF_FFFF
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_I64_U32 = struct.Struct("<qI")
_I64_I64 = struct.Struct("<qq")


class FrameError(Exception):
    """A batch ended in the middle of a record."""


# ---------------------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------------------


class Event:
    """One event: `key` (bytes or None), `time` (ms since the Unix epoch, UTC), `value` (bytes)."""

    __slots__ = ("key", "time", "value")

    def __init__(self, key, time, value):
        self.key = key
        self.time = time
        self.value = value

    def __repr__(self):
        return f"Event(key={self.key!r}, time={self.time}, value={self.value!r})"


class Emitter:
    """Collects output events into one event batch."""

    __slots__ = ("buf",)

    def __init__(self):
        self.buf = bytearray()

    def emit(self, key, time, value):
        """Appends an event. `key` is bytes, str or None; `value` is bytes or str."""
        buf = self.buf
        if key is None:
            buf += b"\xff\xff\xff\xff"
        else:
            if isinstance(key, str):
                key = key.encode()
            buf += _U32.pack(len(key))
            buf += key
        if isinstance(value, str):
            value = value.encode()
        buf += _I64_U32.pack(time, len(value))
        buf += value


def _take(batch, pos, n, field):
    end = pos + n
    if end > len(batch):
        raise FrameError(f"malformed batch: {field} cut short at byte {pos}")
    return end


def read_events(batch):
    """Yields the events of an event batch."""
    pos, n = 0, len(batch)
    while pos < n:
        _take(batch, pos, 4, "event key")
        (klen,) = _U32.unpack_from(batch, pos)
        pos += 4
        if klen == NONE:
            key = None
        else:
            end = _take(batch, pos, klen, "event key")
            key = bytes(batch[pos:end])
            pos = end
        _take(batch, pos, 12, "event time")
        time, vlen = _I64_U32.unpack_from(batch, pos)
        pos += 12
        end = _take(batch, pos, vlen, "event value")
        yield Event(key, time, bytes(batch[pos:end]))
        pos = end


def write_event(buf, key, time, value):
    """Appends one event to a bytearray (what `Emitter.emit` does)."""
    if key is None:
        buf += b"\xff\xff\xff\xff"
    else:
        buf += _U32.pack(len(key)) + key
    buf += _I64_U32.pack(time, len(value)) + value


def read_groups(batch):
    """Yields `(key, window_start, accumulator or None, [values])` for each group."""
    pos, n = 0, len(batch)
    while pos < n:
        _take(batch, pos, 4, "group key")
        (klen,) = _U32.unpack_from(batch, pos)
        pos = _take(batch, pos + 4, klen, "group key")
        key = bytes(batch[pos - klen : pos])
        _take(batch, pos, 12, "group window start")
        start, alen = _I64_U32.unpack_from(batch, pos)
        pos += 12
        if alen == NONE:
            acc = None
        else:
            end = _take(batch, pos, alen, "group accumulator")
            acc = bytes(batch[pos:end])
            pos = end
        _take(batch, pos, 4, "group value count")
        (count,) = _U32.unpack_from(batch, pos)
        pos += 4
        values = []
        for _ in range(count):
            _take(batch, pos, 4, "group value")
            (vlen,) = _U32.unpack_from(batch, pos)
            end = _take(batch, pos + 4, vlen, "group value")
            values.append(bytes(batch[pos + 4 : end]))
            pos = end
        yield key, start, acc, values


def write_group(buf, key, window_start, acc, values):
    """Appends one group (used by tests)."""
    buf += _U32.pack(len(key)) + key + _I64.pack(window_start)
    buf += b"\xff\xff\xff\xff" if acc is None else _U32.pack(len(acc)) + acc
    buf += _U32.pack(len(values))
    for value in values:
        buf += _U32.pack(len(value)) + value


def read_closings(batch):
    """Yields `(key, window_start, window_end, accumulator)` for each closed window."""
    pos, n = 0, len(batch)
    while pos < n:
        _take(batch, pos, 4, "closing key")
        (klen,) = _U32.unpack_from(batch, pos)
        pos = _take(batch, pos + 4, klen, "closing key")
        key = bytes(batch[pos - klen : pos])
        _take(batch, pos, 20, "closing window")
        start, end_ = _I64_I64.unpack_from(batch, pos)
        (alen,) = _U32.unpack_from(batch, pos + 16)
        pos = _take(batch, pos + 20, alen, "closing accumulator")
        yield key, start, end_, bytes(batch[pos - alen : pos])


def write_closing(buf, key, window_start, window_end, acc):
    """Appends one closing (used by tests)."""
    buf += _U32.pack(len(key)) + key + _I64_I64.pack(window_start, window_end)
    buf += _U32.pack(len(acc)) + acc


# ---------------------------------------------------------------------------------------
# The pipeline builder
# ---------------------------------------------------------------------------------------


class Window:
    """An event-time window: `Window.tumbling_ms(n)`, `Window.sliding_ms(size, slide)` or
    `Window.GLOBAL`."""

    __slots__ = ("size_ms", "slide_ms")

    def __init__(self, size_ms, slide_ms=None):
        self.size_ms = size_ms  # None = global
        self.slide_ms = slide_ms  # None = tumbling

    @staticmethod
    def tumbling_ms(size_ms):
        if size_ms <= 0:
            raise ValueError("a tumbling window needs a positive size")
        return Window(int(size_ms))

    @staticmethod
    def sliding_ms(size_ms, slide_ms):
        """Windows of `size_ms` starting every `slide_ms`: an event is folded into every
        window that holds its time."""
        if not 0 < slide_ms <= size_ms:
            raise ValueError("a sliding window needs 0 < slide <= size")
        return Window(int(size_ms), int(slide_ms))

    def bounds_of(self, time):
        """The `(start, end)` of every window that holds `time`, oldest first."""
        if self.size_ms is None:
            return [(I64_MIN, I64_MAX)]
        slide = self.slide_ms or self.size_ms
        latest = time - time % slide  # Python's % rounds toward -inf, like rem_euclid
        first = latest - (self.size_ms - 1 - (time - latest)) // slide * slide
        return [(start, start + self.size_ms) for start in range(first, latest + 1, slide)]


Window.GLOBAL = Window(None)


class WindowBounds:
    """The bounds of a closed window: `start` inclusive, `end` exclusive (ms)."""

    __slots__ = ("start", "end")

    def __init__(self, start, end):
        self.start = start
        self.end = end

    @property
    def is_global(self):
        return self.start == I64_MIN and self.end == I64_MAX


class Aggregator:
    """Base class of a keyed aggregate. Override `zero`, `fold` and `finish`.

    Accumulators are any JSON-serialisable value by default; override `encode` and `decode`
    (bytes <-> value) for another encoding. The host stores the encoded bytes.
    """

    def zero(self):
        """The accumulator of a (key, window) seen for the first time."""
        raise NotImplementedError

    def fold(self, acc, value):
        """Folds one value (bytes) into `acc` and returns the new accumulator."""
        raise NotImplementedError

    def finish(self, key, window, acc, out):
        """Emits the output of a closed window (`window` is a `WindowBounds`) into `out`."""
        raise NotImplementedError

    def encode(self, acc):
        return json.dumps(acc, separators=(",", ":")).encode()

    def decode(self, data):
        return json.loads(data)


class Stream:
    """The output of one node; chain the next node from it (or several, to fan out)."""

    __slots__ = ("_pipeline", "_index")

    def __init__(self, pipeline, index):
        self._pipeline = pipeline
        self._index = index

    def transform(self, name, fn):
        """`fn(event, out)` emits zero or more events with `out.emit(key, time, value)`."""
        return self._pipeline._add(name, ("transform", fn), self._index)

    def aggregate(self, name, window, max_out_of_orderness_ms, aggregator):
        return self._pipeline._add(
            name, ("aggregate", window, int(max_out_of_orderness_ms), aggregator), self._index
        )

    def sink(self, name):
        self._pipeline._add(name, ("sink", name), self._index)


class Pipeline:
    """The graph under construction; node indices follow the order of declaration."""

    def __init__(self):
        self.nodes = []  # (name, op tuple, inputs)

    def source(self, name):
        return self._add(name, ("source", name), None)

    def _add(self, name, op, input_index):
        if any(node[0] == name for node in self.nodes):
            raise ValueError(f"two nodes are named {name!r}")
        self.nodes.append((name, op, [] if input_index is None else [input_index]))
        return Stream(self, len(self.nodes) - 1)

    @staticmethod
    def build(build_fn):
        p = Pipeline()
        build_fn(p)
        return p

    # The four calls, independent of the bindings (so they can be unit-tested natively).

    def _node(self, index, kind):
        if index >= len(self.nodes):
            raise LookupError(f"node {index} does not exist; the graph has {len(self.nodes)}")
        name, op, _ = self.nodes[index]
        if op[0] != kind:
            raise LookupError(f"node {index} ({name!r}) is {op[0]}, not {kind}")
        return op

    def run_transform(self, index, batch):
        """Returns `(event batch, [(index, message)])`."""
        fn = self._node(index, "transform")[1]
        out = Emitter()
        buf = out.buf
        errors = []
        for i, event in enumerate(read_events(batch)):
            mark = len(buf)
            try:
                fn(event, out)
            except ValueError as error:
                del buf[mark:]
                errors.append((i, str(error)))
        return bytes(buf), errors

    def run_aggregate(self, index, batch):
        agg = self._node(index, "aggregate")[3]
        out = bytearray()
        for _key, _start, acc, values in read_groups(batch):
            acc = agg.zero() if acc is None else agg.decode(acc)
            for value in values:
                acc = agg.fold(acc, value)
            data = agg.encode(acc)
            out += _U32.pack(len(data)) + data
        return bytes(out)

    def run_finish(self, index, batch):
        agg = self._node(index, "aggregate")[3]
        out = Emitter()
        for key, start, end, acc in read_closings(batch):
            agg.finish(key, WindowBounds(start, end), agg.decode(acc), out)
        return bytes(out.buf)

    def graph(self):
        """The graph as WIT records (needs the componentize-py bindings)."""
        nodes = []
        for name, op, inputs in self.nodes:
            if op[0] == "source":
                wit_op = _wit.Operator_Source(op[1])
            elif op[0] == "transform":
                wit_op = _wit.Operator_Transform()
            elif op[0] == "aggregate":
                w = op[1]
                if w.size_ms is None:
                    window = _wit.Window_Global()
                elif w.slide_ms is None:
                    window = _wit.Window_Tumbling(w.size_ms)
                else:
                    window = _wit.Window_Sliding(_wit.SlidingWindow(w.size_ms, w.slide_ms))
                wit_op = _wit.Operator_Aggregate(_wit.AggregateSpec(window, op[2]))
            else:
                wit_op = _wit.Operator_Sink(op[1])
            nodes.append(_wit.Node(name, wit_op, inputs))
        return _wit.Graph(nodes)


def run_local(build_fn, sources):
    """Runs a pipeline in-process over `{source name: [bytes records]}`, like the host does
    with one worker and every window closed at the end. Returns `(sinks, rejected)`:
    `{sink name: [bytes]}` and `[(node name, index, message)]`. For tests on plain CPython."""
    p = Pipeline.build(build_fn)
    streams = {}  # node index -> list of Event
    sinks = {}
    rejected = []
    for index, (name, op, inputs) in enumerate(p.nodes):
        if op[0] == "source":
            streams[index] = [Event(None, 0, r) for r in sources.get(op[1], [])]
            continue
        events = streams[inputs[0]]
        if op[0] == "transform":
            batch = bytearray()
            for e in events:
                write_event(batch, e.key, e.time, e.value)
            out, errors = p.run_transform(index, bytes(batch))
            rejected += [(name, i, m) for i, m in errors]
            streams[index] = list(read_events(out))
        elif op[0] == "aggregate":
            window = op[1]
            groups = {}
            for e in events:
                for start, end in window.bounds_of(e.time):
                    groups.setdefault((e.key, start, end), []).append(e.value)
            closings = bytearray()
            for (key, start, end), values in sorted(groups.items()):
                g = bytearray()
                write_group(g, key, start, None, values)
                accs = p.run_aggregate(index, bytes(g))
                write_closing(closings, key, start, end, accs[4:])
            streams[index] = list(read_events(p.run_finish(index, bytes(closings))))
        else:
            sinks.setdefault(op[1], []).extend(e.value for e in events)
    return sinks, rejected


def export(build_fn):
    """Builds the pipeline and returns the class componentize-py exports as `WitWorld`."""
    pipeline = Pipeline.build(build_fn)

    def guarded(call):
        try:
            return call()
        except Exception as error:  # any failure of the call stops the job, naming the node
            raise _Err(_wit.GuestError(f"{type(error).__name__}: {error}"))

    class Exports(wit_world.WitWorld):
        def describe(self):
            return pipeline.graph()

        def transform(self, node, events):
            def call():
                batch, errors = pipeline.run_transform(node, events)
                return _wit.TransformOutput(batch, [_wit.RecordError(i, m) for i, m in errors])

            return guarded(call)

        def aggregate(self, node, groups):
            return guarded(lambda: pipeline.run_aggregate(node, groups))

        def finish(self, node, closings):
            return guarded(lambda: pipeline.run_finish(node, closings))

    return Exports
