"""Sparse Jacobians and Hessians: the sparsity pattern read from the tape, a
graph colouring, and a few compressed sweeps instead of one per input.

A Jacobian J (m x n) whose columns j and k never share a row can be
computed together: one tangent sweep seeded with e_j + e_k gives both
columns, each entry in its own row.  Colouring the columns so that columns
sharing a row differ (distance-2 colouring) turns n tangent sweeps into one
per colour; colouring rows turns m reverse sweeps into one per colour.  A
symmetric Hessian gets by with fewer: with a star colouring (adjacent
vertices differ, every path on four vertices has three colours), every entry
is an entry of H S for the 0/1 seed matrix S of the colours, read back
directly (Gebremedhin, Manne and Pothen, "What color is your Jacobian?",
SIAM Review 2005).  A tridiagonal Hessian of any size takes 3 Hessian-vector
products.

The pattern comes from the tape's structure alone, no values
(csrc/sparsity.c): an entry is in it when an input reaches the output
through operations whose derivative column in the op table is not
identically zero; a ``where`` or ``maximum`` counts both branches.  It is a
superset of the nonzeros at every point, and exact for programs without
such branches (up to cancellations, ``x - x``).

Rows of the Jacobian (columns, vertices of the Hessian) with more than
``DENSE`` entries are left out of the colouring and computed by their own
sweep: a single dense row would otherwise force every column to its own
colour, and the colouring's work stays at most ``DENSE`` x the entries.

Functions record ``f`` on object arrays of Vars (one instruction per
element: the colouring needs the element-level tape).  For repeated calls,
``pytape.trace(f, x)`` records once; its ``sparse_jacobian`` /
``sparse_hessian`` compute the pattern and colouring once and then cost one
replay and the compressed sweeps per call.  An array program takes its
pattern from ``f`` recorded element by element once and runs the sweeps on
its array tape (``CompiledFunction._sparse_plan``).

>>> import numpy as np, pytape
>>> f = lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)   # chained Rosenbrock
>>> H = pytape.sparse_hessian(f)(np.full(6, 0.5))
>>> H.shape, H.nnz, np.allclose(H.toarray(), pytape.hessian(f)(np.full(6, 0.5)))
((6, 6), 16, True)
"""
import numpy as np

from . import _native
from .errors import OuterVar
from .program import Recording, scalar_output

__all__ = ["jacobian_sparsity", "hessian_sparsity", "sparse_jacobian", "sparse_hessian", "SparseJacobian", "entries",
           "SparseHessian", "DENSE"]

#: rows (Jacobian) or vertices (Hessian) with more entries than this get
#: their own sweep lane instead of a colour
DENSE = 128


def _scipy_sparse():
    try:
        import scipy.sparse
    except ImportError:
        raise ImportError("pytape's sparse derivatives return scipy.sparse matrices: install scipy "
                          "(pip install scipy)") from None
    return scipy.sparse


def _pattern(rows, cols, shape):
    """The pairs (possibly repeated) as a canonical CSR matrix of True."""
    sp = _scipy_sparse()
    P = sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=shape)
    P.sum_duplicates()
    return sp.csr_matrix((np.ones(P.nnz, dtype=bool), P.indices, P.indptr), shape=shape)


def entries(P):
    """(row, column) of each stored entry of a CSR matrix, in its order."""
    return np.repeat(np.arange(P.shape[0]), np.diff(P.indptr)), P.indices.astype(np.int64)


def _unit_positions(mask):
    """Indices where mask is set, and for every index its position among them."""
    idx = np.flatnonzero(mask)
    pos = np.full(len(mask), -1, dtype=np.int64)
    pos[idx] = np.arange(len(idx))
    return idx, pos


class _Plan:
    """What a program's inputs and outputs are, for the sweeps below: the
    inputs are the elements of the arguments at positions ``ks`` (default:
    all), one after another; the other arguments are constants here."""

    def __init__(self, prog, ks=None):
        self.ks = list(range(len(prog.sizes))) if ks is None else list(ks)
        bounds = np.cumsum([0] + list(prog.sizes))
        self.sel = np.concatenate([np.arange(bounds[k], bounds[k + 1]) for k in self.ks] + [np.zeros(0, int)])
        self.n_all = int(bounds[-1])
        self.n = len(self.sel)
        self.ins = prog.all_in_slots()[self.sel]  # other arguments' leaves: not inputs, constants here
        self.sizes = [prog.sizes[k] for k in self.ks]

    def columns(self, prog, S):
        """J S (m x p) for seeds S (n x p) over the inputs: tangent sweeps."""
        B, start = 0.0, 0
        for k, size in zip(self.ks, self.sizes):
            B = B + prog.columns(k, S[start:start + size])
            start += size
        return B

    def rows(self, prog, W):
        """W^T J (q x n) for seeds W (m x q): reverse sweeps."""
        per_arg = prog.rows(np.ascontiguousarray(W.T))
        return np.concatenate([per_arg[k] for k in self.ks] + [np.zeros((W.shape[1], 0))], axis=1)


class SparseJacobian(_Plan):
    """The pattern and colouring of the Jacobian of a program (``pytape.program.Program``):
    computed once, then :meth:`evaluate` at the program's current values.

    ``mode`` "fwd" colours columns (tangent sweeps), "rev" rows (reverse
    sweeps), "auto" takes whichever needs fewer sweeps.  ``pattern`` (CSR of
    True, m x n), ``sweeps`` (lanes per evaluation), ``mode`` (the one taken),
    ``colours``.
    """

    def __init__(self, prog, mode="auto", ks=None):
        if mode not in ("auto", "fwd", "rev"):
            raise ValueError(f"mode must be 'auto', 'fwd' or 'rev', not {mode!r}")
        super().__init__(prog, ks)
        outs = np.asarray(prog.out_slots, dtype=np.int64)
        self.m = len(outs)
        r, c = prog.tape._c.jacobian_pattern(self.ins, outs)
        self.pattern = P = _pattern(r, c, (self.m, self.n))
        self.rows_of, self.cols_of = entries(P)
        row_nnz, col_nnz = np.diff(P.indptr), np.bincount(self.cols_of, minlength=self.n)
        dense_rows, dense_cols = row_nnz > DENSE, col_nnz > DENSE
        # lower bounds on the sweeps: a colour per entry of the fullest row (column) left in
        bound = {"fwd": int(row_nnz[~dense_rows].max(initial=0)) + int(dense_rows.sum()),
                 "rev": int(col_nnz[~dense_cols].max(initial=0)) + int(dense_cols.sum())}
        order = [mode] if mode != "auto" else sorted(bound, key=lambda k: (bound[k], k != "fwd"))
        best = None
        for how in order:
            if best is not None and bound[how] >= best[0]:
                break
            if how == "fwd":
                colour, k = _native.colour_columns(P, P.tocsc(), dense_rows)
                plan = (k + int(dense_rows.sum()), how, colour, k, dense_rows)
            else:
                # the rows of P are the columns of its transpose, whose CSC arrays are P's CSR ones
                colour, k = _native.colour_columns(P.T.tocsr(), P, dense_cols)
                plan = (k + int(dense_cols.sum()), how, colour, k, dense_cols)
            if best is None or plan[0] < best[0]:
                best = plan
        self.sweeps, self.mode, self.colour, self.colours, self.dense = best
        # the seeds, and where each entry is read in the sweeps' results (flat indices)
        r, c, colour, k = self.rows_of, self.cols_of, self.colour, self.colours
        idx, pos = _unit_positions(self.dense)
        fwd = self.mode == "fwd"
        self.own = self.dense[r] if fwd else self.dense[c]  # entries of dense rows (columns): own lanes
        if fwd:  # columns by colour (J S, m x k); dense rows by reverse lanes (W^T J, nd x n)
            self._S = np.zeros((self.n, k))
            self._S[np.arange(self.n), colour] = 1.0
            self._W = np.zeros((self.m, len(idx)))
            self._W[idx, np.arange(len(idx))] = 1.0
            self._take = (r * k + colour[c])[~self.own]
            self._take_own = (pos[r] * self.n + c)[self.own]
        else:  # rows by colour (W^T J, k x n); dense columns by tangent lanes (J S, m x nd)
            self._W = np.zeros((self.m, k))
            self._W[np.arange(self.m), colour] = 1.0
            self._S = np.zeros((self.n, len(idx)))
            self._S[idx, np.arange(len(idx))] = 1.0
            self._take = (colour[r] * self.n + c)[~self.own]
            self._take_own = (r * len(idx) + pos[c])[self.own]

    def evaluate(self, prog):
        """The Jacobian at prog's current values: a scipy.sparse.csr_matrix of the pattern's shape."""
        vals = np.empty(len(self.rows_of))
        forward = self.columns(prog, self._S) if self._S.shape[1] else None
        reverse = self.rows(prog, self._W) if self._W.shape[1] else None
        main, own = (forward, reverse) if self.mode == "fwd" else (reverse, forward)
        if main is not None:
            vals[~self.own] = main.reshape(-1)[self._take]
        if own is not None:
            vals[self.own] = own.reshape(-1)[self._take_own]
        return _with_values(self.pattern, vals)


class SparseHessian(_Plan):
    """The pattern and star colouring of the Hessian of a scalar program:
    computed once, then :meth:`evaluate` (Hessian-vector products with the
    colours' seeds, one forward-over-reverse pass per 64).

    ``pattern`` (CSR of True, n x n, symmetric), ``colours``, ``sweeps``
    (Hessian-vector products per evaluation: a colour each, and one per
    vertex with more than ``DENSE`` neighbours).
    """

    def __init__(self, prog, ks=None):
        scalar_output(prog, "hessian")
        super().__init__(prog, ks)
        out = int(prog.out_slots[0])
        r, c = prog.tape._c.hessian_pattern(self.ins, out)
        self.pattern = P = _pattern(r, c, (self.n, self.n))
        self.rows_of, self.cols_of = rr, cc = entries(P)
        off = rr != cc
        degree = np.bincount(rr[off], minlength=self.n)
        self.dense = degree > DENSE
        self.colour, self.colours = _native.colour_star(P, self.dense)
        self.sweeps = self.colours + int(self.dense.sum())
        # where each entry H_ij is read: row i of H S at colour[j] when j is i's
        # only neighbour of that colour (H_ij is alone there), else row j at colour[i]
        k, d = self.colours, self.dense
        plain = off & ~d[rr] & ~d[cc]
        _, at, count = np.unique(rr[plain] * max(k, 1) + self.colour[cc[plain]], return_inverse=True,
                                 return_counts=True)  # (row, colour) pairs: how many entries each
        mine = np.ones(len(rr), dtype=bool)
        mine[plain] = count[at] == 1
        # a dense vertex's entries from its own lane, H e_v, at the other vertex's row
        mine[d[rr] & ~d[cc]] = False
        read_row = np.where(mine, rr, cc)   # the row of H S read
        read_col = np.where(mine, cc, rr)   # the vertex whose colour (or own lane) is read
        # the seeds: a column per colour, then one per dense vertex
        idx, pos = _unit_positions(d)
        lanes = k + len(idx)
        self._S = np.zeros((self.n_all, lanes))  # over every argument's elements: zero on the others
        plain_v = np.flatnonzero(~d)
        self._S[self.sel[plain_v], self.colour[plain_v]] = 1.0
        self._S[self.sel[idx], k + np.arange(len(idx))] = 1.0
        lane = np.where(d[read_col], k + pos[read_col], self.colour[read_col])
        self._take = self.sel[read_row] * lanes + lane

    @property
    def seeds(self):
        """The seed matrix S (every argument's elements x sweeps): a column per colour, one per dense vertex."""
        return self._S

    def assemble(self, B):
        """The Hessian from B = H S (``seeds``): a symmetric scipy.sparse.csr_matrix."""
        return _with_values(self.pattern, B.reshape(-1)[self._take])

    def evaluate(self, prog):
        """The Hessian at prog's current values: a symmetric scipy.sparse.csr_matrix."""
        return self.assemble(prog.hvps(self._S) if self._S.shape[1] else np.zeros((self.n_all, 0)))


def _with_values(P, vals):
    """A CSR matrix of P's structure with these values."""
    return _scipy_sparse().csr_matrix((vals, P.indices, P.indptr), shape=P.shape, copy=False)


def _record(f, x, api):
    try:
        return Recording(f, (x,), 0, api=api, sealed=True)
    except OuterVar:
        raise TypeError(f"{api}(f): f uses a Var from outside its argument; sparse derivatives are computed "
                        f"on f's own tape: pass that value as part of x, or its number (.value)") from None


def jacobian_sparsity(f, x):
    """Which entries of the Jacobian of f at x can be nonzero, from f's tape
    (no values): a scipy.sparse.csr_matrix of True, shape (f(x).size, x.size),
    both flattened in C order.  A ``where`` or ``maximum`` counts both branches;
    a Python ``if`` on values only the branch taken at x.

    >>> import numpy as np, pytape
    >>> P = pytape.jacobian_sparsity(lambda x: x[1:] * x[:-1], np.ones(4))
    >>> P.toarray().astype(int)
    array([[1, 1, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 1, 1]])
    """
    return SparseJacobian(_record(f, x, "pytape.jacobian_sparsity")).pattern


def hessian_sparsity(f, x):
    """Which entries of the Hessian of a scalar f at x can be nonzero, from
    f's tape: a symmetric scipy.sparse.csr_matrix of True, shape (x.size, x.size).

    >>> import numpy as np, pytape
    >>> P = pytape.hessian_sparsity(lambda x: np.sum(x[1:] * x[:-1]) + x[0] ** 3, np.ones(3))
    >>> P.toarray().astype(int)
    array([[1, 1, 0],
           [1, 0, 1],
           [0, 1, 0]])
    """
    return SparseHessian(_record(f, x, "pytape.hessian_sparsity")).pattern


def sparse_jacobian(f, mode="auto"):
    """The Jacobian of f as a scipy.sparse.csr_matrix, shape (f(x).size,
    x.size): the pattern from f's tape, a colouring, and one tangent sweep
    per column colour (``mode="fwd"``) or one reverse sweep per row colour
    (``"rev"``); ``"auto"`` takes the fewer.  Each call records f again; for
    many calls, ``pytape.trace(f, x, elementwise=True).sparse_jacobian(x)``
    keeps the pattern and colouring.

    >>> import numpy as np, pytape
    >>> J = pytape.sparse_jacobian(lambda x: x[1:] ** 2 - x[:-1])(np.arange(5.0))
    >>> J.toarray()
    array([[-1.,  2.,  0.,  0.,  0.],
           [ 0., -1.,  4.,  0.,  0.],
           [ 0.,  0., -1.,  6.,  0.],
           [ 0.,  0.,  0., -1.,  8.]])
    """
    if mode not in ("auto", "fwd", "rev"):
        raise ValueError(f"mode must be 'auto', 'fwd' or 'rev', not {mode!r}")

    def jac(x):
        rec = _record(f, x, "pytape.sparse_jacobian")
        return SparseJacobian(rec, mode).evaluate(rec)
    return jac


def sparse_hessian(f):
    """The Hessian of a scalar f as a symmetric scipy.sparse.csr_matrix: the
    pattern from f's tape, a star colouring, and one Hessian-vector product
    per colour (3 for a tridiagonal Hessian of any size).  Each call records
    f again; for many calls, ``pytape.trace(f, x, elementwise=True).sparse_hessian(x)``.

    >>> import numpy as np, pytape
    >>> H = pytape.sparse_hessian(lambda x: np.sum(x[1:] * x[:-1] ** 2))(np.array([1.0, 2.0, 3.0]))
    >>> H.toarray()
    array([[4., 2., 0.],
           [2., 6., 4.],
           [0., 4., 0.]])
    """
    def hess(x):
        rec = _record(f, x, "pytape.sparse_hessian")
        return SparseHessian(rec).evaluate(rec)
    return hess
