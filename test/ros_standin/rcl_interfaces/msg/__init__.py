"""rcl_interfaces/msg stand-ins for parameter descriptors, values and results."""
from _standin_msgs import Message


class ParameterType(Message):
    PARAMETER_NOT_SET = 0
    PARAMETER_BOOL = 1
    PARAMETER_INTEGER = 2
    PARAMETER_DOUBLE = 3
    PARAMETER_STRING = 4
    PARAMETER_BYTE_ARRAY = 5
    PARAMETER_BOOL_ARRAY = 6
    PARAMETER_INTEGER_ARRAY = 7
    PARAMETER_DOUBLE_ARRAY = 8
    PARAMETER_STRING_ARRAY = 9
    _FIELDS = {}


class FloatingPointRange(Message):
    _FIELDS = {
        "from_value": ("float64", float),
        "to_value": ("float64", float),
        "step": ("float64", float),
    }


class IntegerRange(Message):
    _FIELDS = {
        "from_value": ("int64", int),
        "to_value": ("int64", int),
        "step": ("uint64", int),
    }


class ParameterDescriptor(Message):
    _FIELDS = {
        "name": ("string", str),
        "type": ("uint8", int),
        "description": ("string", str),
        "additional_constraints": ("string", str),
        "read_only": ("boolean", bool),
        "dynamic_typing": ("boolean", bool),
        "floating_point_range": ([FloatingPointRange, 1], list),
        "integer_range": ([IntegerRange, 1], list),
    }


class ParameterValue(Message):
    _FIELDS = {
        "type": ("uint8", int),
        "bool_value": ("boolean", bool),
        "integer_value": ("int64", int),
        "double_value": ("float64", float),
        "string_value": ("string", str),
        "byte_array_value": ("list", list),
        "bool_array_value": ("list", list),
        "integer_array_value": ("list", list),
        "double_array_value": ("list", list),
        "string_array_value": ("list", list),
    }


class Parameter(Message):
    _FIELDS = {"name": ("string", str), "value": (ParameterValue, ParameterValue)}


class SetParametersResult(Message):
    _FIELDS = {"successful": ("boolean", bool), "reason": ("string", str)}
