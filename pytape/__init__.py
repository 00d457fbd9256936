"""pytape: reverse-mode automatic differentiation on a flat C tape.

User code runs on ``pytape.Var`` numbers; each operation appends one
instruction to a tape in C arrays, and ``backward()`` runs the adjoint sweep
as one C loop.

>>> import pytape
>>> x1, x2 = pytape.Var(2.0), pytape.Var(5.0)
>>> y = pytape.log(x1) + x1 * x2 - pytape.sin(x2)
>>> y.backward()
>>> print(f"{y.value:.3f} {x1.grad:.3f} {x2.grad:.3f}")
11.652 5.500 1.716

The package in layers, each importing only those above it:

* the boundary: ``_native`` (the only module touching the C library), ``errors``;
* recording: ``tape`` (Tape, the current tape, no_grad), ``anomaly``, ``var``
  (the Var types), ``recording`` (operators built from the op table), ``ops``
  (the namespace's functions, numpy's names), ``tensor`` (Tensor: arrays on
  the tape, one instruction per operation), ``array_ops`` (numpy's functions
  on Tensors);
* derivatives: ``program`` (the sweep driver), ``functional`` (grad, jacobian,
  hessian, ...; ``trees`` its pytrees, ``nested`` a transformation inside
  another), ``checks`` (gradcheck), ``custom`` (custom primitives with their
  own rules), ``higher_order`` (create_graph),
  ``autograd`` (PyTorch's autograd.grad);
* record once, replay many: ``tracing`` (trace, CompiledFunction), ``saved``
  (its file format), ``optimize``, ``optim``;
* large problems: ``sparse`` (sparsity patterns, colourings, sparse Jacobians
  and Hessians);
* inspection: ``display``; and ``nn``, ``reference``, ``bench``.
"""
from .errors import BranchChangedError, GradcheckError, MixedTapesError, TapeConsumedError, TapeFormatError, TapeThreadError
from .tape import Tape, current_tape, enable_grad, is_grad_enabled, no_grad
from .anomaly import detect_anomaly, is_anomaly_enabled
from .var import Var
from .ops import *  # noqa: F401,F403  the primitive functions
from .ops import __all__ as _ops_all
from .ops import abs, pow, round  # noqa: F401,A004  not in __all__, they would shadow builtins
from .tensor import Tensor, array  # noqa: E402  arrays on the tape
from .array_ops import logsumexp, softmax, log_softmax  # noqa: E402
from .functional import grad, hessian, hvp, jacfwd, jacobian, jacrev, jvp, value_and_grad, vjp
from .checks import gradcheck, gradgradcheck
from .custom import Primitive, primitive
from .checkpointing import checkpoint
from .tracing import CompiledFunction, trace
from .sparse import hessian_sparsity, jacobian_sparsity, sparse_hessian, sparse_jacobian
from . import nn  # noqa: E402  micrograd-style Module, Neuron, Layer, MLP; array layers
from . import autograd  # noqa: E402  PyTorch-style autograd.grad
from . import optimize  # noqa: E402  scipy.optimize.minimize with tape derivatives
from . import optim  # noqa: E402  SGD, Adam
from .display import render, to_dot  # noqa: E402  the tape as a table and a graph

#: micrograd's name for a scalar that tracks its gradient
Value = Var

__version__ = "0.1.0"

__all__ = [
    "Var", "Value", "Tape", "current_tape", "no_grad", "enable_grad", "is_grad_enabled",
    "TapeConsumedError", "TapeThreadError", "MixedTapesError", "nn", "autograd", "optimize", "optim", "to_dot", "render", "detect_anomaly", "is_anomaly_enabled",
    "grad", "value_and_grad", "jvp", "vjp", "jacfwd", "jacrev", "jacobian", "hessian", "hvp", "gradcheck", "gradgradcheck", "GradcheckError",
    "trace", "CompiledFunction", "BranchChangedError", "TapeFormatError", "primitive", "Primitive", "checkpoint",
    "Tensor", "array", "logsumexp", "softmax", "log_softmax",
    "jacobian_sparsity", "hessian_sparsity", "sparse_jacobian", "sparse_hessian",
] + _ops_all
