"""Typed message base for the ROS 2 stand-in (test-only).

Generated rosidl Python classes check every assignment; the node must not get away
with something here that the real classes reject, so this base mirrors the checks
that matter: unknown constructor keywords and attributes fail, ``float64`` fields
take only floats, ``byte`` fields take one-byte ``bytes``, and ``uint8[]`` fields
keep an ``array.array('B')`` as-is but convert any other sequence element by element
(and reject numpy arrays, which are not ``collections.abc.Sequence``).
"""
from __future__ import annotations

import array
from collections.abc import Sequence
from typing import Any, ClassVar

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1), "uint8": (0, 2**8 - 1),
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}


def _check_scalar(cls_name: str, field: str, kind: str, value: Any) -> Any:
    if kind == "string":
        assert isinstance(value, str), f"The '{field}' field must be of type 'str'"
        return value
    if kind == "boolean":
        assert isinstance(value, bool), f"The '{field}' field must be of type 'bool'"
        return value
    if kind in ("float64", "float32"):
        assert isinstance(value, float), f"The '{field}' field must be of type 'float'"
        return value
    if kind == "byte":
        assert isinstance(value, bytes) and len(value) == 1, \
            f"The '{field}' field must be of type 'bytes' with length 1"
        return value
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        assert isinstance(value, int), f"The '{field}' field must be of type 'int'"
        assert low <= value <= high, f"The '{field}' field must be in [{low}, {high}]"
        return value
    raise TypeError(f"{cls_name}: stand-in does not know field kind {kind!r}")


def _check_bytes_sequence(field: str, value: Any) -> array.array:
    if isinstance(value, array.array):
        assert value.typecode == "B", \
            f"The '{field}' array.array() must have the type code of 'B'"
        return value
    ok = (isinstance(value, Sequence) and not isinstance(value, str)
          and all(isinstance(v, int) and 0 <= v < 256 for v in value))
    assert ok, (f"The '{field}' field must be a set or sequence and each value of type "
                "'int' and each unsigned integer in [0, 255]")
    return array.array("B", value)


class Message:
    """Base for stand-in messages: declare ``_FIELDS = {name: (kind, default_factory)}``.

    ``kind`` is a primitive name ("string", "uint32", "float64", "byte", ...),
    "uint8[]", "list" (a primitive array nobody inspects), a message class (nested),
    or ``[MsgClass]`` (unbounded sequence) / ``[MsgClass, n]`` (bounded).
    """

    _FIELDS: ClassVar[dict[str, tuple[Any, Any]]] = {}

    def __init__(self, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(self._FIELDS))
        assert not unknown, \
            f"Invalid arguments passed to constructor: {', '.join(unknown)}"
        for name, (_, factory) in self._FIELDS.items():
            setattr(self, name, kwargs[name] if name in kwargs else factory())

    @classmethod
    def get_fields_and_field_types(cls) -> dict[str, str]:
        def kind_name(kind: Any) -> str:
            if isinstance(kind, list):
                return f"sequence<{kind[0].__name__}>"
            return kind if isinstance(kind, str) else kind.__name__
        return {name: kind_name(kind) for name, (kind, _) in cls._FIELDS.items()}

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._FIELDS:
            # Real messages use __slots__: a typo'd field name must fail loudly.
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        kind = self._FIELDS[name][0]
        cls_name = type(self).__name__
        if kind == "uint8[]":
            value = _check_bytes_sequence(name, value)
        elif kind == "list":  # primitive arrays the stand-in never inspects
            value = list(value)
        elif isinstance(kind, list):
            item_cls = kind[0]
            assert isinstance(value, Sequence) and not isinstance(value, str) and all(
                isinstance(v, item_cls) for v in value), \
                f"The '{name}' field must be a sequence of '{item_cls.__name__}'"
            if len(kind) > 1:
                assert len(value) <= kind[1], \
                    f"The '{name}' field must be no more than {kind[1]} elements"
            value = list(value)
        elif isinstance(kind, type):
            assert isinstance(value, kind), \
                f"The '{name}' field must be a sub message of type '{kind.__name__}'"
        else:
            value = _check_scalar(cls_name, name, kind, value)
        object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return False
        return all(getattr(self, n) == getattr(other, n) for n in self._FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the generated classes

    def __repr__(self) -> str:
        def short(value: Any) -> str:
            if isinstance(value, array.array) and len(value) > 8:
                return f"array('B', <{len(value)} bytes>)"
            return repr(value)
        body = ", ".join(f"{n}={short(getattr(self, n))}" for n in self._FIELDS)
        return f"{type(self).__module__}.{type(self).__name__}({body})"
