"""rclpy.exceptions stand-in: the same class names and constructor arguments."""


class NotInitializedException(Exception):
    def __init__(self, *args):
        super().__init__("rclpy.init() has not been called", *args)


class NameValidationException(Exception):
    def __init__(self, name_type, name, error_msg, invalid_index, *args):
        pointer = " " * invalid_index + "^"
        super().__init__(f"Invalid {name_type}: {error_msg}:\n  '{name}'\n   {pointer}", *args)


class InvalidNamespaceException(NameValidationException):
    def __init__(self, name, error_msg, invalid_index, *args):
        super().__init__("namespace", name, error_msg, invalid_index, *args)


class InvalidNodeNameException(NameValidationException):
    def __init__(self, name, error_msg, invalid_index, *args):
        super().__init__("node name", name, error_msg, invalid_index, *args)


class InvalidTopicNameException(NameValidationException):
    def __init__(self, name, error_msg, invalid_index, *args):
        super().__init__("topic name", name, error_msg, invalid_index, *args)


class ParameterException(Exception):
    def __init__(self, error_msg, parameters, *args):
        super().__init__(f"{error_msg}: {parameters}", *args)


class ParameterNotDeclaredException(ParameterException):
    def __init__(self, parameters, *args):
        super().__init__("Invalid access to undeclared parameter(s)", parameters, *args)


class ParameterAlreadyDeclaredException(ParameterException):
    def __init__(self, parameters, *args):
        super().__init__("Parameter(s) already declared", parameters, *args)


class InvalidParameterException(ParameterException):
    def __init__(self, parameter, *args):
        super().__init__("Invalid parameter name", parameter, *args)


class InvalidParameterTypeException(ParameterException):
    def __init__(self, desired_parameter, expected_type, *args):
        super().__init__(
            f"Trying to set parameter '{desired_parameter.name}' to "
            f"'{desired_parameter.value}' of type '{desired_parameter.type_.name}', "
            f"expecting type '{expected_type}'", desired_parameter.name, *args)


class InvalidParameterValueException(ParameterException):
    def __init__(self, parameter, value, reason, *args):
        super().__init__(
            f"Invalid parameter value ({value}) for parameter. Reason: {reason}",
            parameter, *args)


class ParameterImmutableException(ParameterException):
    def __init__(self, parameter, *args):
        super().__init__("Attempted to modify read-only parameter", parameter, *args)


class ParameterUninitializedException(ParameterException):
    def __init__(self, parameter_name, *args):
        super().__init__(
            f"The parameter '{parameter_name}' is not initialized", parameter_name, *args)


class ROSInterruptException(Exception):
    def __init__(self, *args):
        super().__init__("rclpy.shutdown() has been called", *args)
