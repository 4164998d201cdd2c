"""Parameter handling for the stand-in Node (split out only to keep files small).

Same rules as rclpy's Node: declaring twice raises, reading an undeclared name
raises, the declared type is fixed unless dynamic_typing, FloatingPointRange /
IntegerRange are enforced on every set (and on declare, against overrides),
read-only parameters reject set_parameters, and the on-set callbacks run before a
value is stored and can veto it. Overrides bypass read_only at declaration time.
"""
import math
import warnings

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult

from rclpy.exceptions import (
    InvalidParameterException,
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterAlreadyDeclaredException,
    ParameterImmutableException,
    ParameterNotDeclaredException,
    ParameterUninitializedException,
)
from rclpy.parameter import Parameter


def _fail(reason):
    return SetParametersResult(successful=False, reason=reason)


class ParameterMixin:
    PARAM_REL_TOL = 1e-6

    def declare_parameter(self, name, value=None, descriptor=None, ignore_override=False):
        if value is None and descriptor is None:
            args = (name,)
        else:
            args = (name, value, ParameterDescriptor() if descriptor is None else descriptor)
        return self.declare_parameters("", [args], ignore_override)[0]

    def _declaration(self, index, entry, namespace, ignore_override):
        if not 1 <= len(entry) <= 3:
            raise TypeError(f"Invalid parameter tuple length at index {index}: {entry}")
        name = entry[0]
        second = entry[1] if len(entry) > 1 else None
        descriptor = entry[2] if len(entry) > 2 else ParameterDescriptor()
        if not isinstance(name, str):
            raise TypeError(f"First element {name} at index {index} is not a str.")
        if not isinstance(descriptor, ParameterDescriptor):
            raise TypeError(f"Third element {descriptor} at index {index} is not a "
                            "ParameterDescriptor.")
        if len(entry) == 1:
            warnings.warn(f"when declaring parameter named '{name}', declaring a parameter "
                          "only providing its name is deprecated.", stacklevel=4)
            descriptor.dynamic_typing = True
        value = None
        if isinstance(second, Parameter.Type):
            if second == Parameter.Type.NOT_SET:
                raise ValueError(f"Cannot declare parameter {{{name}}} as statically typed of "
                                 "type NOT_SET")
            descriptor.type = second.value
        else:
            value = second
            if not descriptor.dynamic_typing and value is not None:
                descriptor.type = Parameter.Type.from_parameter_value(value).value
        if not ignore_override and name in self._parameter_overrides:
            value = self._parameter_overrides[name].value
        full_name = f"{namespace}.{name}" if namespace else name
        if not full_name or full_name.startswith(".") or ".." in full_name:
            raise InvalidParameterException(full_name)
        return Parameter(full_name, value=value), descriptor

    def declare_parameters(self, namespace, parameters, ignore_override=False):
        declared, descriptors = [], {}
        for index, entry in enumerate(parameters):
            parameter, descriptor = self._declaration(index, entry, namespace, ignore_override)
            declared.append(parameter)
            descriptors[parameter.name] = descriptor
        already = [p.name for p in declared if p.name in self._parameters]
        if already:
            raise ParameterAlreadyDeclaredException(already)
        self._set_parameters(declared, descriptors, raise_on_failure=True,
                             allow_undeclared_parameters=True)
        return [self._parameters[p.name] for p in declared]

    def undeclare_parameter(self, name):
        if not self.has_parameter(name):
            raise ParameterNotDeclaredException(name)
        if self._descriptors[name].read_only:
            raise ParameterImmutableException(name)
        del self._parameters[name]
        del self._descriptors[name]

    def has_parameter(self, name):
        return name in self._parameters

    def get_parameter(self, name):
        if self.has_parameter(name):
            parameter = self._parameters[name]
            if parameter.type_ != Parameter.Type.NOT_SET or self._descriptors[name].dynamic_typing:
                return parameter
            raise ParameterUninitializedException(name)
        if self._allow_undeclared_parameters:
            return Parameter(name, Parameter.Type.NOT_SET, None)
        raise ParameterNotDeclaredException(name)

    def get_parameters(self, names):
        if not all(isinstance(name, str) for name in names):
            raise TypeError("All names must be instances of type str")
        return [self.get_parameter(name) for name in names]

    def get_parameter_or(self, name, alternative_value=None):
        if alternative_value is None:
            alternative_value = Parameter(name, Parameter.Type.NOT_SET)
        if not self.has_parameter(name) or self._parameters[name].type_ == Parameter.Type.NOT_SET:
            return alternative_value
        return self._parameters[name]

    def describe_parameter(self, name):
        try:
            return self._descriptors[name]
        except KeyError:
            if self._allow_undeclared_parameters:
                return ParameterDescriptor()
            raise ParameterNotDeclaredException(name) from None

    def describe_parameters(self, names):
        return [self.describe_parameter(name) for name in names]

    def add_on_set_parameters_callback(self, callback):
        self._parameters_callbacks.insert(0, callback)

    def remove_on_set_parameters_callback(self, callback):
        self._parameters_callbacks.remove(callback)

    def set_parameters(self, parameter_list):
        return self._set_parameters(parameter_list)

    def set_parameters_atomically(self, parameter_list):
        self._check_undeclared_parameters(parameter_list)
        return self._set_parameters_atomically(parameter_list)

    def _check_undeclared_parameters(self, parameter_list):
        if not all(isinstance(p, Parameter) for p in parameter_list):
            raise TypeError(f"parameter must be instance of type '{Parameter!r}'")
        undeclared = [p.name for p in parameter_list if p.name not in self._parameters]
        if undeclared and not self._allow_undeclared_parameters:
            raise ParameterNotDeclaredException(undeclared)

    def _set_parameters(self, parameter_list, descriptors=None, raise_on_failure=False,
                        allow_undeclared_parameters=False):
        results = []
        for parameter in parameter_list:
            if not allow_undeclared_parameters:
                self._check_undeclared_parameters([parameter])
            result = self._set_parameters_atomically(
                [parameter], descriptors, allow_not_set_type=allow_undeclared_parameters)
            if raise_on_failure and not result.successful:
                if result.reason.startswith("Wrong parameter type"):
                    expected = Parameter.Type(descriptors[parameter.name].type).name
                    raise InvalidParameterTypeException(parameter, expected)
                raise InvalidParameterValueException(
                    parameter.name, parameter.value, result.reason)
            results.append(result)
        return results

    def _set_parameters_atomically(self, parameter_list, descriptors=None,
                                   allow_not_set_type=False):
        check_read_only = descriptors is None
        table = self._descriptors if descriptors is None else descriptors
        for parameter in parameter_list:
            if parameter.name in table:
                result = self._apply_descriptor(parameter, table[parameter.name],
                                                check_read_only)
                if not result.successful:
                    return result
        for callback in list(self._parameters_callbacks):
            result = callback(parameter_list)
            if not result.successful:
                return result
        for parameter in parameter_list:
            if not allow_not_set_type and parameter.type_ == Parameter.Type.NOT_SET:
                self._parameters.pop(parameter.name, None)
                self._descriptors.pop(parameter.name, None)
                continue
            if descriptors is not None:
                self._descriptors[parameter.name] = descriptors[parameter.name]
            elif parameter.name not in self._descriptors:
                self._descriptors[parameter.name] = ParameterDescriptor(dynamic_typing=True)
            self._parameters[parameter.name] = parameter
        return SetParametersResult(successful=True)

    def _apply_descriptor(self, parameter, descriptor, check_read_only=True):
        descriptor.name = parameter.name
        if check_read_only and descriptor.read_only:
            return _fail(f"Trying to set a read-only parameter: {parameter.name}.")
        if descriptor.dynamic_typing:
            descriptor.type = parameter.type_.value
        elif self.has_parameter(parameter.name) and parameter.type_ == Parameter.Type.NOT_SET:
            return _fail("Static parameter cannot be undeclared")
        elif (parameter.type_ != Parameter.Type.NOT_SET
              and parameter.type_.value != descriptor.type):
            return _fail(f"Wrong parameter type, expected '{Parameter.Type(descriptor.type)}' "
                         f"got '{parameter.type_}'")
        if parameter.type_ == Parameter.Type.INTEGER and descriptor.integer_range:
            return self._check_range(parameter, descriptor.integer_range[0], exact=True)
        if parameter.type_ == Parameter.Type.DOUBLE and descriptor.floating_point_range:
            return self._check_range(parameter, descriptor.floating_point_range[0], exact=False)
        return SetParametersResult(successful=True)

    def _check_range(self, parameter, bounds, exact):
        low = min(bounds.from_value, bounds.to_value)
        high = max(bounds.from_value, bounds.to_value)
        value = parameter.value

        def same(a, b):
            return a == b if exact else math.isclose(a, b, rel_tol=self.PARAM_REL_TOL)

        if same(value, low) or same(value, high):
            return SetParametersResult(successful=True)
        if not low < value < high:
            return _fail(f"Parameter {parameter.name} out of range. "
                         f"Min: {low}, Max: {high}, value: {value}")
        if bounds.step:
            steps = round((value - low) / bounds.step)
            if not same(low + steps * bounds.step, value):
                return _fail(f"The parameter value for {parameter.name} is not a valid step. "
                             f"Min: {low}, max: {high}, value: {value}, step: {bounds.step}")
        return SetParametersResult(successful=True)
