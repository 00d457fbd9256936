"""gradcheck and gradgradcheck (pytape/checks.py): they pass on smooth
functions and name the worst entry where the tape and finite differences
disagree."""
import numpy as np
import pytest

import pytape
from test_functional import random_function


def test_gradcheck_passes_on_smooth_functions_and_names_the_worst_entry():
    f, x = random_function(4, 3, seed=3)
    assert pytape.gradcheck(f, x)
    assert pytape.gradcheck(lambda a, b: pytape.atan2(a, b) * pytape.exp(b), 0.3, -1.2)
    # relu at its kink: the tape says 0 (PyTorch's convention), differences say 0.5
    with pytest.raises(pytape.GradcheckError, match=r"argument 1\[1\]: analytic 0.0, numeric 0.5"):
        pytape.gradcheck(lambda a, b: a * pytape.relu(b[1]), 1.0, np.array([1.0, 0.0]))
    assert pytape.gradcheck(lambda a: pytape.relu(a), 0.0, raise_exception=False) is False


def test_gradgradcheck_passes_on_smooth_functions_and_fails_at_a_kink():
    f, x = random_function(3, 2, seed=9)
    assert pytape.gradgradcheck(f, x)
    assert pytape.gradgradcheck(lambda a, b: pytape.sin(a) * b ** 3 + pytape.hypot(a, b), 0.3, 2.0)
    # x * relu(x) at 0: the tape's second derivative is 0 (relu'(0) = 0), differences give 1
    with pytest.raises(pytape.GradcheckError, match="analytic 0.0, numeric 1.0"):
        pytape.gradgradcheck(lambda a: a * pytape.relu(a), 0.0)
