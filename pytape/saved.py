"""The file format of compiled functions (``CompiledFunction.to_bytes``,
``from_bytes``, pickle).

::

    magic      b"PYTAPE-FN\\n"                 10 bytes
    header     version, meta bytes, n, nconst  <IIqq (little-endian)
    meta       JSON: argument shapes, outputs, guard lines, name, policy
    arrays     op <u2[n], a <i4[n], b <i4[n], val <f8[n] (guard codes; 0 for
               the rest), consts <f8[nconst]
    arrays     (version 2: a tape with array instructions) counts nar, ndims,
               nargs, npars, ndata <qqqqq, then the array table (csrc/pytape.h:
               pt_saved_arrays) facts <i8[nar * SAVED_N], dims, args, pars
               <i8[...], data <f8[ndata] (the LEAF and CONST values)
    checksum   SHA-256 of everything before    32 bytes

A tape without array instructions is written in version 1 (no array
section), so the bytes of scalar compiled functions are as they were.

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
FORMAT_VERSION = 2
_HEADER = struct.Struct("<IIqq")
_ARRAY_HEADER = struct.Struct("<qqqqq")
_TABLE = ("facts", "dims", "args", "pars", "data")
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
    arrays = ctape.narrays > 0
    parts = [MAGIC, _HEADER.pack(2 if arrays else 1, len(meta_b), len(ctape), len(consts)), meta_b]
    parts += [cols[k].astype(dt).tobytes() for k, dt in _ARRAYS] + [consts.astype("<f8").tobytes()]
    if arrays:
        table = _without_inputs(ctape.array_table(), cols["op"], meta["arrays"]["ins"])
        parts.append(_ARRAY_HEADER.pack(table["facts"].shape[0], *(table[k].size for k in _TABLE[1:])))
        parts += [table[k].astype("<f8" if k == "data" else "<i8").tobytes() for k in _TABLE]
    body = b"".join(parts)
    return body + sha256(body).digest()


def _without_inputs(table, op, ins):
    """The array table with the values of the inputs (slots ``ins``) zeroed:
    every replay sets them, and the same f gives the same bytes."""
    facts = table["facts"]
    slots = np.flatnonzero(op == _native.OP_ARRAY)  # entry k's slot
    ndims = facts[:, _native.SAVED_NDIM]
    starts = np.concatenate([[0], np.cumsum(ndims)])
    sizes = np.array([math.prod(table["dims"][a:b]) for a, b in zip(starts[:-1], starts[1:])], dtype=np.int64)
    data_kinds = np.isin(facts[:, _native.SAVED_KIND], [_native.ARRAY_KINDS["LEAF"], _native.ARRAY_KINDS["CONST"]])
    offs = np.cumsum(np.where(data_kinds, sizes, 0)) - np.where(data_kinds, sizes, 0)
    wanted = set(int(s) for s in ins)
    for k in np.flatnonzero(data_kinds):
        if int(slots[k]) in wanted:
            table["data"][offs[k]:offs[k] + sizes[k]] = 0.0
    return table


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
    if version not in (1, FORMAT_VERSION):
        raise _bad(f"format version {version}; this pytape reads versions 1 and {FORMAT_VERSION}")
    if not (0 <= meta_len and 0 <= n < 2 ** 31 and 0 <= nconst < 2 ** 31):
        raise _bad("impossible sizes in the header (corrupted)")
    size = head + meta_len + n * (2 + 4 + 4 + 8) + nconst * 8
    counts = None
    if version == 2:
        if len(data) < size + _ARRAY_HEADER.size + 32:
            raise _bad(f"{len(data)} bytes: too few for the header's instructions and array table (truncated)")
        counts = _ARRAY_HEADER.unpack_from(data, size)
        if any(not 0 <= k < 2 ** 40 for k in counts):
            raise _bad("impossible sizes in the array table's header (corrupted)")
        size += _ARRAY_HEADER.size + 8 * (counts[0] * _native.SAVED_N + sum(counts[1:]))
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
        if meta.get("argnums") is not None:  # the arguments whose derivatives are returned
            a = meta["argnums"]
            d["argnums"] = int(a) if isinstance(a, int) else tuple(int(k) for k in a)
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
    off += nconst * 8
    arrays = None
    if counts is not None:
        off += _ARRAY_HEADER.size
        arrays = {}
        for k, count in zip(_TABLE, (counts[0] * _native.SAVED_N,) + counts[1:]):
            arrays[k] = np.frombuffer(data, dtype="<f8" if k == "data" else "<i8", count=count, offset=off).copy()
            off += 8 * count
        try:
            d["arrays"] = {"ins": [int(k) for k in meta["arrays"]["ins"]],
                           "kind": str(meta["arrays"]["kind"]), "out": int(meta["arrays"]["out"]),
                           "data": [int(k) for k in meta["arrays"].get("data", [])]}
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad(f"its description of array inputs does not parse ({exc})") from None
        if len(d["arrays"]["ins"]) != len(d["shapes"]) or d["arrays"]["kind"] not in ("array", "scalar", "constant"):
            raise _bad("its description of array inputs is inconsistent")
    ctape = CTape.load(cols["op"], cols["a"], cols["b"], cols["val"], consts, _load_custom(cols, table), arrays)
    if any(s >= 0 and _KINDS[ctape.op_at(s)] == _native.KIND_GUARD for s in d["out_slots"]):
        raise _bad("its inputs or outputs do not match its instructions")
    if arrays is None and (ctape.nleaves != nin or not ctape.plan_registers([])):
        raise _bad("its inputs do not match its instructions, or are not the first of them")
    return ctape, d
