"""rclpy.parameter stand-in: Parameter with the real type inference and checks."""
import array
from enum import Enum

from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue

PARAMETER_SEPARATOR_STRING = "."

_SCALARS = {bool: "BOOL", int: "INTEGER", float: "DOUBLE", str: "STRING"}


class Parameter:
    class Type(Enum):
        NOT_SET = ParameterType.PARAMETER_NOT_SET
        BOOL = ParameterType.PARAMETER_BOOL
        INTEGER = ParameterType.PARAMETER_INTEGER
        DOUBLE = ParameterType.PARAMETER_DOUBLE
        STRING = ParameterType.PARAMETER_STRING
        BYTE_ARRAY = ParameterType.PARAMETER_BYTE_ARRAY
        BOOL_ARRAY = ParameterType.PARAMETER_BOOL_ARRAY
        INTEGER_ARRAY = ParameterType.PARAMETER_INTEGER_ARRAY
        DOUBLE_ARRAY = ParameterType.PARAMETER_DOUBLE_ARRAY
        STRING_ARRAY = ParameterType.PARAMETER_STRING_ARRAY

        @classmethod
        def from_parameter_value(cls, parameter_value):
            if parameter_value is None:
                return cls.NOT_SET
            # bool before int: bool is an int subclass, and rclpy keeps them apart.
            for py_type in (bool, int, float, str):
                if isinstance(parameter_value, py_type):
                    return cls[_SCALARS[py_type]]
            if isinstance(parameter_value, (list, tuple, array.array)):
                for item_type, name in ((bytes, "BYTE_ARRAY"), (bool, "BOOL_ARRAY"),
                                        (int, "INTEGER_ARRAY"), (float, "DOUBLE_ARRAY"),
                                        (str, "STRING_ARRAY")):
                    if all(isinstance(v, item_type) for v in parameter_value):
                        return cls[name]
                raise TypeError(
                    f"The given value is not a list of one of the allowed types "
                    f"'{parameter_value}'.")
            raise TypeError(f"The given value is not one of the allowed types '{parameter_value}'.")

        def check(self, parameter_value):
            kind = Parameter.Type
            if self is kind.NOT_SET:
                return parameter_value is None
            scalar = {kind.BOOL: bool, kind.INTEGER: int, kind.DOUBLE: float, kind.STRING: str}
            if self in scalar:
                return isinstance(parameter_value, scalar[self])
            item = {kind.BYTE_ARRAY: bytes, kind.BOOL_ARRAY: bool, kind.INTEGER_ARRAY: int,
                    kind.DOUBLE_ARRAY: float, kind.STRING_ARRAY: str}[self]
            containers = ((list, tuple, array.array)
                          if self in (kind.INTEGER_ARRAY, kind.DOUBLE_ARRAY) else (list, tuple))
            return isinstance(parameter_value, containers) and all(
                isinstance(v, item) for v in parameter_value)

    def __init__(self, name, type_=None, value=None):
        if type_ is None:
            type_ = Parameter.Type.from_parameter_value(value)
        if not isinstance(type_, Parameter.Type):
            raise TypeError(f"type must be an instance of '{Parameter.Type!r}'")
        if not type_.check(value):
            raise ValueError(f"Type '{type_}' and value '{value}' do not agree")
        self._type_ = type_
        self._name = name
        self._value = value

    @property
    def name(self):
        return self._name

    @property
    def type_(self):
        return self._type_

    @property
    def value(self):
        return self._value

    def get_parameter_value(self):
        field = {
            Parameter.Type.BOOL: "bool_value", Parameter.Type.INTEGER: "integer_value",
            Parameter.Type.DOUBLE: "double_value", Parameter.Type.STRING: "string_value",
            Parameter.Type.BYTE_ARRAY: "byte_array_value",
            Parameter.Type.BOOL_ARRAY: "bool_array_value",
            Parameter.Type.INTEGER_ARRAY: "integer_array_value",
            Parameter.Type.DOUBLE_ARRAY: "double_array_value",
            Parameter.Type.STRING_ARRAY: "string_array_value",
        }.get(self.type_)
        msg = ParameterValue(type=self.type_.value)
        if field is not None:
            setattr(msg, field, self.value)
        return msg

    def to_parameter_msg(self):
        return ParameterMsg(name=self.name, value=self.get_parameter_value())

    def __repr__(self):
        return f"Parameter(name={self.name!r}, type_={self.type_}, value={self.value!r})"
