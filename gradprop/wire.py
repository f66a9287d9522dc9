"""The wire format between the grading process and the sandbox child.

Both directions use length-prefixed frames. Requests (parent -> child) are pickles: the child
trusts the parent. Replies (child -> parent) come from untrusted code and are never unpickled:

    frame   = struct "<4sQQ" (MAGIC, header length, payload length) + header + payload
    header  = UTF-8 JSON
    payload = the raw bytes of the arrays the header mentions, in order, each padded to 16 bytes

Inside the header, a value is JSON's own None/bool/int/float/str/list, or a one-key object:

    {"t": [...]}                       a tuple
    {"d": [[key, value], ...]}         a dict with str keys
    {"a": [dtype, [shape...]]}         the next array of the payload (dtype like "<f8", kind b/i/u/f)
    {"o": [type name, short text]}     an Opaque stand-in for anything else

The decoder accepts nothing else: no object or structured dtypes, sizes are checked against the
payload and capped (``MAX_PAYLOAD``), nesting is bounded.

This module runs on both sides; it imports only numpy and the standard library.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import re
import struct
from typing import Any

import numpy as np

MAGIC = b"GPW1"
_FRAME = struct.Struct("<4sQQ")
FRAME_SIZE = _FRAME.size
_REQ = struct.Struct("<Q")

MAX_PAYLOAD = 256 * 1024 * 1024  # bytes of array data in one reply
MAX_HEADER = 16 * 1024 * 1024  # bytes of JSON in one reply
MAX_DEPTH = 48  # nesting of lists/tuples/dicts
MAX_STR = 1024 * 1024  # characters of one string value
MAX_NDIM = 32
_ALIGN = 16
#: exit status of a child whose own machinery the submission broke (the parent explains it)
BROKEN_STATUS = 86
#: request ops that send no reply of their own: the next op's reply answers for them. "group"
#: starts a group of ops: a fault stops the rest of its group only, and the next group runs
QUIET_OPS = frozenset({"seed", "new", "iadd", "group"})
_DTYPE_RE = re.compile(r"^[<>|=]?[biuf][0-9]{1,2}$")


class WireError(ValueError):
    """A reply that does not follow the wire format (truncated, oversized, or not allowed)."""


# --------------------------------------------------------------------------- requests (pickle)


def encode_request(request: Any) -> bytes:
    body = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
    return _REQ.pack(len(body)) + body


def read_request(fd: int) -> Any | None:
    """Blocking read of one request; None at end of file. Child side only."""
    head = _read_exact(fd, _REQ.size)
    if head is None:
        return None
    (size,) = _REQ.unpack(head)
    body = _read_exact(fd, size)
    if body is None:
        return None
    return pickle.loads(body)


def _read_exact(fd: int, size: int) -> bytearray | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            return None
        got += n
    return buf


# --------------------------------------------------------------------------- replies: encoding


class Opaque:
    """Stand-in used on the wire; the parent turns it into ``gradprop.session.Opaque``."""

    __slots__ = ("type_name", "text")

    def __init__(self, type_name: str, text: str = ""):
        self.type_name = type_name
        self.text = text


def _short_repr(obj: Any, limit: int = 200) -> str:
    try:
        text = repr(obj)
    except BaseException:  # noqa: BLE001 - a student's __repr__ may do anything
        return ""
    if not isinstance(text, str):
        return ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(obj: Any) -> str:
    t = type(obj)
    mod = getattr(t, "__module__", "") or ""
    name = getattr(t, "__qualname__", None) or getattr(t, "__name__", "object")
    if not isinstance(name, str):
        name = "object"
    return name if mod in ("builtins", "") or not isinstance(mod, str) else f"{mod}.{name}"


class _Encoder:
    def __init__(self, max_payload: int):
        self.buffers: list[memoryview] = []
        self.size = 0
        self.max_payload = max_payload

    def array(self, arr: np.ndarray) -> Any:
        dt = arr.dtype
        if dt.kind not in "biuf" or dt.hasobject or dt.fields is not None or dt.subdtype is not None:
            return {"o": [_type_name(arr), f"array of dtype {dt} and shape {arr.shape}"]}
        nbytes = int(arr.nbytes)
        padded = -(-nbytes // _ALIGN) * _ALIGN
        if self.size + padded > self.max_payload:
            return {"o": [_type_name(arr), f"array of shape {arr.shape}: too large to send back"]}
        data = np.ascontiguousarray(arr)
        if type(data) is not np.ndarray:
            data = data.view(np.ndarray)
        self.buffers.append(memoryview(data).cast("B") if nbytes else memoryview(b""))
        if padded > nbytes:
            self.buffers.append(memoryview(bytes(padded - nbytes)))
        self.size += padded
        return {"a": [dt.str, [int(n) for n in arr.shape]]}

    def value(self, obj: Any, depth: int = 0) -> Any:
        t = type(obj)
        if obj is None or t is bool or t is float:
            return obj
        if t is int:
            return obj if obj.bit_length() <= 4000 else {"o": ["int", "a very large int"]}
        if t is str:
            return obj if len(obj) <= MAX_STR else {"o": ["str", obj[:200] + "..."]}
        if isinstance(obj, Opaque):
            return {"o": [obj.type_name, obj.text]}
        if depth >= MAX_DEPTH:
            return {"o": [_type_name(obj), "nested too deeply"]}
        if issubclass(t, np.ndarray):
            return self.array(obj)
        if issubclass(t, np.generic):
            if issubclass(t, np.bool_):
                return bool(obj)
            if issubclass(t, np.integer):
                return int(obj)
            if issubclass(t, np.floating):
                return float(obj)
            return {"o": [_type_name(obj), _short_repr(obj)]}
        if issubclass(t, int):
            return self.value(int(obj), depth)
        if issubclass(t, float):
            return float(obj)
        if issubclass(t, str):
            return self.value(str(obj), depth)
        if issubclass(t, list):
            return [self.value(x, depth + 1) for x in list.__iter__(obj)]
        if issubclass(t, tuple):
            return {"t": [self.value(x, depth + 1) for x in tuple.__iter__(obj)]}
        if issubclass(t, dict):
            items = list(dict.items(obj))
            if all(type(k) is str for k, _ in items):
                return {"d": [[k, self.value(v, depth + 1)] for k, v in items]}
            return {"o": [_type_name(obj), _short_repr(obj)]}
        if hasattr(t, "__array__") and not isinstance(obj, type):
            # jax / torch arrays and the like: take the numbers if they are plain numbers
            try:
                arr = np.asarray(obj)
            except BaseException:  # noqa: BLE001 - whatever it raised, it is not an array of numbers
                arr = None
            if type(arr) is np.ndarray and arr.dtype.kind in "biuf" and not arr.dtype.hasobject:
                return self.array(arr)
        return {"o": [_type_name(obj), _short_repr(obj)]}


def encode_reply(reply: dict[str, Any], values: dict[str, Any] | None = None,
                 max_payload: int = MAX_PAYLOAD) -> list[Any]:
    """Encode a reply: ``reply`` is plain JSON; each of ``values`` is encoded as a wire value.

    Returns the buffers to write, in order (frame header, JSON header, array bytes...).
    """
    enc = _Encoder(max_payload)
    doc = dict(reply)
    for key, val in (values or {}).items():
        doc[key] = enc.value(val)
    header = json.dumps(doc, allow_nan=True, separators=(",", ":")).encode("utf-8")
    return [_FRAME.pack(MAGIC, len(header), enc.size), header, *enc.buffers]


def write_all(fd: int, buffers: list[Any]) -> None:
    """Write every buffer to ``fd`` (blocking). Child side."""
    views = [memoryview(b).cast("B") for b in buffers if len(b)]
    while views:
        n = os.writev(fd, views[:512])
        while n:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


# --------------------------------------------------------------------------- replies: decoding


def parse_frame_header(head: bytes | bytearray, max_payload: int = MAX_PAYLOAD) -> tuple[int, int]:
    """Check the fixed-size frame header; return (header length, payload length)."""
    if len(head) != FRAME_SIZE:
        raise WireError("truncated frame header")
    magic, hlen, plen = _FRAME.unpack(head)
    if magic != MAGIC:
        raise WireError("bad frame magic")
    if hlen > MAX_HEADER:
        raise WireError(f"reply header of {hlen} bytes is larger than {MAX_HEADER}")
    if plen > max_payload:
        raise WireError(f"reply of {plen} bytes is larger than {max_payload}")
    return hlen, plen


def _dtype(spec: Any) -> np.dtype:
    known = _DTYPES.get(spec) if type(spec) is str else None
    if known is not None:
        return known
    if not isinstance(spec, str) or not _DTYPE_RE.match(spec):
        raise WireError(f"dtype {spec!r} is not allowed")
    try:
        dt = np.dtype(spec)
    except (TypeError, ValueError) as exc:
        raise WireError(f"dtype {spec!r} is not allowed") from exc
    if dt.kind not in "biuf" or dt.hasobject or dt.fields is not None:
        raise WireError(f"dtype {spec!r} is not allowed")
    _DTYPES[spec] = dt  # fewer than a hundred specs pass every check above: the cache stays small
    return dt


#: specs already checked, and their dtypes (a reply carries thousands of arrays of a few dtypes)
_DTYPES: dict[str, np.dtype] = {}


class _Decoder:
    def __init__(self, payload: bytes | bytearray | memoryview, opaque: Any):
        # A bytearray payload belongs to the caller alone: its arrays can be views of it.
        self.copy = not isinstance(payload, bytearray)
        self.payload = memoryview(payload).cast("B")
        self.offset = 0
        self.opaque = opaque

    def array(self, spec: Any) -> np.ndarray:
        if not (isinstance(spec, list) and len(spec) == 2 and isinstance(spec[1], list)):
            raise WireError("bad array descriptor")
        dt = _dtype(spec[0])
        shape = spec[1]
        if len(shape) > MAX_NDIM or not all(type(n) is int and n >= 0 for n in shape):
            raise WireError(f"bad array shape {shape!r}")
        count = math.prod(shape)
        nbytes = count * dt.itemsize
        end = self.offset + nbytes
        if end > len(self.payload):
            raise WireError("array data runs past the end of the reply")
        arr = np.frombuffer(self.payload[self.offset:end], dtype=dt, count=count).reshape(shape)
        if self.copy or not arr.flags.aligned:
            arr = arr.copy()
        self.offset += -(-nbytes // _ALIGN) * _ALIGN
        return arr

    def value(self, node: Any, depth: int = 0) -> Any:
        t = type(node)
        if node is None or t in (bool, int, float, str):
            return node
        if depth >= MAX_DEPTH + 2:
            raise WireError("reply nested too deeply")
        if t is list:
            return [self.value(x, depth + 1) for x in node]
        if t is dict and len(node) == 1:
            ((key, body),) = node.items()
            if key == "t" and type(body) is list:
                return tuple(self.value(x, depth + 1) for x in body)
            if key == "d" and type(body) is list:
                out = {}
                for pair in body:
                    if not (type(pair) is list and len(pair) == 2 and type(pair[0]) is str):
                        raise WireError("bad dict entry")
                    out[pair[0]] = self.value(pair[1], depth + 1)
                return out
            if key == "a":
                return self.array(body)
            if key == "o" and type(body) is list and len(body) == 2 and all(type(x) is str for x in body):
                return self.opaque(body[0][:200], body[1][:400])
        raise WireError(f"unexpected {t.__name__} in reply")


def decode_header(header: bytes | bytearray) -> dict[str, Any]:
    try:
        doc = json.loads(header.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise WireError(f"reply header is not valid JSON ({type(exc).__name__})") from None
    if type(doc) is not dict:
        raise WireError("reply header is not an object")
    return doc


def decode_values(doc: dict[str, Any], keys: tuple[str, ...], payload: bytes | bytearray | memoryview,
                  opaque: Any = Opaque) -> dict[str, Any]:
    """Decode the wire values ``doc[key]`` for ``keys`` (absent keys give None).

    Checks that the arrays use up the payload exactly. Arrays are writable copies, or writable
    views of ``payload`` when it is a bytearray (which the caller then hands over).
    """
    dec = _Decoder(payload, opaque)
    out = {}
    try:
        for key in keys:
            out[key] = dec.value(doc.get(key))
    except RecursionError:
        raise WireError("reply nested too deeply") from None
    if dec.offset != len(dec.payload):
        raise WireError("reply payload length does not match its arrays")
    return out


def decode_frame(frame: bytes | bytearray, keys: tuple[str, ...] = ("value",),
                 opaque: Any = Opaque, max_payload: int = MAX_PAYLOAD) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode one whole frame held in memory (tests and tools; the session reads incrementally)."""
    frame = memoryview(frame).cast("B")
    hlen, plen = parse_frame_header(bytes(frame[:FRAME_SIZE]), max_payload)
    if len(frame) != FRAME_SIZE + hlen + plen:
        raise WireError("truncated frame" if len(frame) < FRAME_SIZE + hlen + plen else "trailing bytes after frame")
    doc = decode_header(bytes(frame[FRAME_SIZE:FRAME_SIZE + hlen]))
    return doc, decode_values(doc, keys, frame[FRAME_SIZE + hlen:], opaque)
