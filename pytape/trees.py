"""Pytrees: nested tuples, lists and dicts whose leaves are numbers and
arrays, as the function transformations take and return them (JAX's
convention: ``grad(f)({"w": W, "b": b})`` is a dict of the same shape).

Tuples (named tuples too), lists and dicts are containers; anything else is a
leaf.  Dict entries are taken in sorted key order, as in JAX, so the order of
a dict's leaves does not depend on how it was built.

>>> leaves, tree = flatten({"w": [1.0, 2.0], "b": 3.0})
>>> leaves
[3.0, 1.0, 2.0]
>>> tree.unflatten([30.0, 10.0, 20.0])
{'b': 30.0, 'w': [10.0, 20.0]}
"""

__all__ = ["flatten", "Tree", "map_leaves", "LEAF"]


class Tree:
    """The shape of a pytree: rebuilds it from a list of leaves (``unflatten``)."""

    __slots__ = ("kind", "meta", "children", "size")

    def __init__(self, kind, meta, children):
        self.kind, self.meta, self.children = kind, meta, children
        self.size = 1 if kind == "leaf" else sum(c.size for c in children)

    def unflatten(self, leaves):
        """The tree with these leaves in flatten's order.

        >>> flatten((1.0, [2.0]))[1].unflatten(["a", "b"])
        ('a', ['b'])
        """
        leaves = list(leaves)
        if len(leaves) != self.size:
            raise ValueError(f"this tree has {self.size} leaves, not {len(leaves)}")
        return self._build(iter(leaves))

    def _build(self, it):
        if self.kind == "leaf":
            return next(it)
        parts = [c._build(it) for c in self.children]
        if self.kind == "dict":
            return dict(zip(self.meta, parts))
        if self.kind == "list":
            return parts
        if self.kind == "namedtuple":
            return self.meta(*parts)
        return tuple(parts)

    def paths(self, prefix=""):
        """A readable path of each leaf, in flatten's order ("['w'][0]")."""
        if self.kind == "leaf":
            return [prefix]
        keys = self.meta if self.kind == "dict" else range(len(self.children))
        return [p for k, c in zip(keys, self.children) for p in c.paths(f"{prefix}[{k!r}]")]

    @property
    def is_leaf(self):
        return self.kind == "leaf"


#: the tree of a leaf (a number or an array)
LEAF = Tree("leaf", None, ())


def flatten(x):
    """(leaves, tree) of a pytree x: tuples, lists and dicts are containers."""
    leaves = []
    return leaves, _flatten(x, leaves)


def _flatten(x, leaves):
    t = type(x)
    if t is tuple or t is list:
        return Tree(t.__name__, None, [_flatten(v, leaves) for v in x])
    if t is dict:
        keys = sorted(x, key=_sort_key)
        return Tree("dict", keys, [_flatten(x[k], leaves) for k in keys])
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a namedtuple
        return Tree("namedtuple", t, [_flatten(v, leaves) for v in x])
    leaves.append(x)
    return LEAF


def _sort_key(k):
    return (type(k).__name__, k) if not isinstance(k, (int, float)) else ("", k)


def map_leaves(f, x):
    """x with f applied to each leaf.

    >>> map_leaves(lambda v: v * 2, {"a": (1, 2)})
    {'a': (2, 4)}
    """
    leaves, tree = flatten(x)
    return tree.unflatten([f(v) for v in leaves])
