"""The file format of compiled functions (``CompiledFunction.to_bytes``,
``from_bytes``, pickle).

::

    magic      b"PYTAPE-FN\\n"                 10 bytes
    header     version, meta bytes, n, nconst  <IIqq (little-endian)
    meta       JSON: argument shapes, outputs, guard lines, name, policy
    arrays     op <u2[n], a <i4[n], b <i4[n], val <f8[n] (guard codes; 0 for
               the rest), consts <f8[nconst]
    checksum   SHA-256 of everything before    32 bytes

Custom primitives (pytape/custom.py): their instructions are stored with
opcode CUSTOM_CODE (0xFFFF, fixed: the in-memory opcode follows the rows of
the op table, which grows) and b = an index into the description's
``custom.primitives``, the primitives' importable names ``module:qualname``;
``custom.counts`` and ``custom.args`` are the custom table (operands per
instruction; a slot, or -1 - k for constant k).  Saving a primitive that
cannot be imported back raises ValueError; loading imports each one, and
raises ImportError naming it when that fails.

The C loader (csrc/tape_load.c) checks every instruction again, so bytes with
a valid checksum that were made by hand still cannot crash a sweep; what the
description says is checked against the instructions here.

>>> import pytape
>>> data = pytape.trace(lambda x: x * x, 1.0).to_bytes()
>>> data[:len(MAGIC)] == MAGIC, load(data)[1]["out_shape"]
(True, ())
"""
import json
import math
import struct
from hashlib import sha256

import numpy as np

from . import _native, custom
from ._native import CTape
from .errors import TapeFormatError

__all__ = ["MAGIC", "FORMAT_VERSION", "dump", "load"]

MAGIC = b"PYTAPE-FN\n"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<IIqq")
_ARRAYS = (("op", "<u2"), ("a", "<i4"), ("b", "<i4"), ("val", "<f8"))
_KINDS = np.array(_native.OP_KINDS, dtype=np.uint8)
CUSTOM_CODE = 0xFFFF


def dump(ctape, meta):
    """The bytes of a compiled tape and its description (a JSON-able dict)."""
    cols = ctape.rows(0, len(ctape), ("op", "a", "b", "val"))
    # values are not part of a compiled function (every use replays first),
    # except the guards' comparison codes: the same f gives the same bytes
    cols["val"][_KINDS[cols["op"]] != _native.KIND_GUARD] = 0.0
    if ctape.ncustom:
        meta = dict(meta, custom=_dump_custom(ctape, cols))
    consts = ctape.consts()
    meta_b = json.dumps(meta).encode()
    body = b"".join([MAGIC, _HEADER.pack(FORMAT_VERSION, len(meta_b), len(ctape), len(consts)), meta_b]
                    + [cols[k].astype(dt).tobytes() for k, dt in _ARRAYS] + [consts.astype("<f8").tobytes()])
    return body + sha256(body).digest()


def _dump_custom(ctape, cols):
    """The description of the custom instructions; their opcode and b
    rewritten in cols (CUSTOM_CODE, the index of the primitive's name)."""
    at = np.flatnonzero(cols["op"] == _native.OP_CUSTOM)
    ids = sorted(set(int(f) for f in cols["b"][at]))
    names = [custom.importable_name(f) for f in ids]
    index = {f: k for k, f in enumerate(ids)}
    cols["op"][at] = CUSTOM_CODE
    cols["b"][at] = [index[int(f)] for f in cols["b"][at]]
    counts, args = ctape.custom_table()
    return {"primitives": names, "counts": counts.tolist(), "args": args.tolist()}


def _load_custom(cols, table):
    """The custom table of a description, the primitives imported and the
    instructions given their ids (cols rewritten); ((), ()) for none."""
    at = cols["op"] == CUSTOM_CODE
    if table is None:
        return (), ()
    try:
        names = [str(n) for n in table["primitives"]]
        counts = np.array([int(k) for k in table["counts"]], dtype=np.int64)
        args = np.array([int(r) for r in table["args"]], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(f"its custom primitives do not parse ({exc})") from None
    if (np.any(counts < 0) or np.any(np.abs(args) >= 2 ** 31) or np.any(cols["b"][at] < 0)
            or np.any(cols["b"][at] >= len(names))):
        raise _bad("its custom primitives are inconsistent")
    ids = [custom.by_name(n).id for n in names]
    cols["b"][at] = np.array(ids, dtype=np.int32)[cols["b"][at]] if len(ids) else cols["b"][at]
    cols["op"][at] = _native.OP_CUSTOM
    return counts, args


def _bad(why):
    return TapeFormatError(f"not a pytape compiled function: {why}")


def load(data):
    """(CTape, description) from ``dump`` output; TapeFormatError for anything else.

    The description's fields are checked and converted: ``shapes`` (tuples),
    ``scalar_in``, ``single``, ``out_shape``, ``out_slots``, ``out_values``,
    ``where`` (guard slot -> (file, line, function)), ``name``, ``policy``."""
    try:  # the buffer protocol only: bytes(5) would be five zero bytes, bytes(10**10) 10 GB of them
        data = memoryview(data).tobytes()
    except TypeError:
        raise TypeError(f"from_bytes takes bytes (what fn.to_bytes() returned, or a bytearray or memoryview "
                        f"of them), not {type(data).__name__}; read a file with open(path, 'rb').read()") from None
    head = len(MAGIC) + _HEADER.size
    if len(data) < head + 32 or not data.startswith(MAGIC):
        raise _bad("the data does not start with pytape's header (wrong file, or truncated)")
    version, meta_len, n, nconst = _HEADER.unpack_from(data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise _bad(f"format version {version}; this pytape reads version {FORMAT_VERSION}")
    if not (0 <= meta_len and 0 <= n < 2 ** 31 and 0 <= nconst < 2 ** 31):
        raise _bad("impossible sizes in the header (corrupted)")
    size = head + meta_len + n * (2 + 4 + 4 + 8) + nconst * 8
    if len(data) != size + 32:
        raise _bad(f"{len(data)} bytes where the header announces {size + 32} (truncated or corrupted)")
    if sha256(data[:size]).digest() != data[size:]:
        raise _bad("the SHA-256 checksum does not match (corrupted)")
    try:
        meta = json.loads(data[head:head + meta_len].decode())
        d = {
            "shapes": [tuple(int(k) for k in s) for s in meta["shapes"]],
            "scalar_in": [bool(s) for s in meta["scalar_in"]],
            "out_shape": tuple(int(k) for k in meta["out_shape"]),
            "out_slots": [int(s) for s in meta["out_slots"]],
            "out_values": [float(v) for v in meta["out_values"]],
            "where": {int(g[0]): (str(g[1]), int(g[2]), str(g[3])) for g in meta["guards"]},
            "name": str(meta["name"]), "policy": str(meta["policy"]), "single": bool(meta["single"]),
        }
        table = meta.get("custom")
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise _bad(f"its description does not parse ({exc})") from None
    nin = sum(math.prod(s) for s in d["shapes"])  # Python ints: no int64 wraparound to a small size
    dims = [k for s in d["shapes"] + [d["out_shape"]] for k in s]
    if (len(d["scalar_in"]) != len(d["shapes"]) or any(not 0 <= k < 2 ** 31 for k in dims)
            or any(len(s) > 32 for s in d["shapes"] + [d["out_shape"]])
            or len(d["out_slots"]) != len(d["out_values"])
            or len(d["out_slots"]) != math.prod(d["out_shape"])
            or any(not -1 <= s < n for s in d["out_slots"]) or d["policy"] not in ("retrace", "raise")):
        raise _bad("its description is inconsistent")
    off = head + meta_len
    cols = {}
    for key, dt in _ARRAYS:
        cols[key] = np.frombuffer(data, dtype=dt, count=n, offset=off).astype(dt[1:])
        off += n * np.dtype(dt).itemsize
    consts = np.frombuffer(data, dtype="<f8", count=nconst, offset=off).astype(np.float64)
    ctape = CTape.load(cols["op"], cols["a"], cols["b"], cols["val"], consts, _load_custom(cols, table))
    if ctape.nleaves != nin or any(s >= 0 and _KINDS[ctape.op_at(s)] == _native.KIND_GUARD for s in d["out_slots"]):
        raise _bad("its inputs or outputs do not match its instructions")
    if not ctape.plan_registers([]):
        raise _bad("its inputs are not the first instructions")
    return ctape, d
