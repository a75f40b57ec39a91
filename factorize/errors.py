"""Errors that mean "the user asked for something invalid" (CLI exit status 2), not a bug."""


class FactorizeError(Exception):
    """Bad input: the message is one line naming the field and what it accepts."""


class ConfigError(FactorizeError, ValueError):
    """A config key or value is unknown or out of range."""
