"""The expression of a JSON path made from the one built for another path, by copying.

Building ``coalesce(json_type(metadata, '$.user.x'), '') IN (...)`` through SQLAlchemy's
constructors costs some 60 us (coercions, operator lookups, type resolution) for every path a query
names first; copying the same tree built for another path, with the path literal replaced, costs a
fraction of that and gives the same SQL. A :class:`Prototype` is that tree and a plan of the nodes
on the way from its root to what depends on the path: the path literals (copied with the new path's
text), the path's other expressions it holds (taken from the caller, which keeps one of each per
path), and the anonymous bound parameters (copied under a new name, as a fresh build names them,
so no two paths' expressions share a parameter). Everything else (columns, operators, types) is
shared, as SQLAlchemy's expressions are immutable.

A copy is a new element, not a SQLAlchemy clone: it keeps no link to the prototype (``_is_clone_of``
would make SQLAlchemy match one path's parameter for another's) and none of the prototype's
memoized attributes (anonymous labels, comparators), only the attributes the prototype had when it
was built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypeAlias

from sqlalchemy.sql.elements import BindParameter, ClauseElement, _anonymous_label
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = ["Prototype"]

_ONE = InternalTraversal.dp_clauseelement
_LIST = InternalTraversal.dp_clauseelement_list
_TUPLES = InternalTraversal.dp_clauseelement_tuples

# a node's plan: ("path",) its path literal; ("json", what) the path's expression `what`;
# ("bind", keys) an anonymous parameter; ("copy", keys, children) a node above any of these, its
# children's plans by attribute; None: the node is shared
_Plan: TypeAlias = tuple[Any, ...] | None


class Prototype:
    """``element``, the expression built on ``column`` for a path whose literal's text is
    ``text``; ``parts``: the ids of the path's other expressions ``element`` holds, with their
    names. ``column`` is shared by every copy as it is (whatever it holds: the column of a
    ``$match`` element is an expression over a table-valued function with parameters)."""

    def __init__(
        self, element: ClauseElement, column: Any, text: str, parts: Mapping[int, str]
    ) -> None:
        self.element = element
        self.column = column
        self.text = text
        self.parts = parts
        self.plan = self._plan(element, root=True)

    @property
    def usable(self) -> bool:
        """Whether the element depends on the path at all (else it cannot stand for another)."""
        return self.plan is not None

    def _plan(self, node: Any, root: bool = False) -> _Plan:
        if node is None or node is self.column:
            return None
        if not root and id(node) in self.parts:
            return ("json", self.parts[id(node)])
        if isinstance(node, BindParameter):
            keys = tuple(key for key in node.__dict__ if key not in _LINEAGE)
            if node.value == self.text:
                return ("path", keys)
            return ("bind", keys) if node.unique else None
        children = []
        for name, kind in _child_attributes(type(node)):
            value = getattr(node, name, None)
            if kind is _ONE:
                plan: Any = self._plan(value)
            elif kind is _LIST:
                plan = tuple(self._plan(v) for v in value)
                plan = plan if any(p is not None for p in plan) else None
            else:
                plan = tuple(tuple(self._plan(v) for v in pair) for pair in value)
                plan = plan if any(p is not None for pair in plan for p in pair) else None
            if plan is not None:
                children.append((name, kind, plan))
        if not children:
            return None
        keys = tuple(key for key in node.__dict__ if key not in _LINEAGE)
        return ("copy", keys, tuple(children))

    def made(self, text: str, inline: bool, part: Callable[[str], Any]) -> Any:
        """The element for the path whose literal's text is ``text`` (``inline``: written into the
        SQL, else bound), ``part(name)`` giving that path's other expressions."""
        return _made(self.element, self.plan, text, inline, part)


@cache
def _child_attributes(kind: type) -> tuple[tuple[str, Any], ...]:
    """The attributes of a kind of element that hold other elements, as SQLAlchemy lists them."""
    return tuple(
        (name, how)
        for name, how in getattr(kind, "_traverse_internals", ())
        if how in (_ONE, _LIST, _TUPLES)
    )


# what links an element SQLAlchemy cloned (a negated IN's parameter) to its original: a copy is
# not a clone of it
_LINEAGE = frozenset({"_is_clone_of", "_cloned_set"})


def _copy(node: Any, keys: tuple[str, ...]) -> Any:
    made = node.__class__.__new__(node.__class__)
    attributes = node.__dict__
    for key in keys:  # (set one by one: the attributes then live in the object, not in a dict
        setattr(made, key, attributes[key])  # the garbage collector also tracks)
    return made


def _renamed(bind: Any) -> Any:
    """A bound parameter named anew, as SQLAlchemy names an anonymous one it constructs."""
    bind.key, bind._anon_map_key = _anonymous_label.safe_construct_with_key(
        id(bind), bind._orig_key or "param", sanitize_key=True
    )
    bind._identifying_key = bind.key
    return bind


def _made(node: Any, plan: Any, text: str, inline: bool, part: Callable[[str], Any]) -> Any:
    tag = plan[0]
    if tag == "json":
        return part(plan[1])
    if tag == "path":
        bind = _renamed(_copy(node, plan[1]))
        bind.value = text
        bind.literal_execute = inline
        return bind
    if tag == "bind":
        return _renamed(_copy(node, plan[1]))
    made = _copy(node, plan[1])
    for name, kind, child in plan[2]:
        value = getattr(node, name)
        if kind is _ONE:
            new: Any = _made(value, child, text, inline, part)
        elif kind is _LIST:
            new = [
                v if p is None else _made(v, p, text, inline, part)
                for v, p in zip(value, child, strict=True)
            ]
            if isinstance(value, tuple):
                new = tuple(new)
        else:
            new = [
                tuple(
                    v if p is None else _made(v, p, text, inline, part)
                    for v, p in zip(pair, plans, strict=True)
                )
                for pair, plans in zip(value, child, strict=True)
            ]
            if isinstance(value, tuple):
                new = tuple(new)
        setattr(made, name, new)
    return made
