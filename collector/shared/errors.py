"""Exception classes of the collector (one place, so callers can catch them)."""

from __future__ import annotations

__all__ = [
    "CollectorError",
    "SchemaError",
    "ConfigError",
    "DeviceUnavailableError",
    "UnknownModelError",
    "JournalError",
    "OutputError",
    "EndpointError",
]


class CollectorError(Exception):
    """Base class of every error the collector raises on purpose."""


class SchemaError(CollectorError, ValueError):
    """A dataset does not follow the schema (docs/schema.md; names the variable/dim/attr)."""


class ConfigError(CollectorError, ValueError):
    """A measurement or sweep setting is invalid (names the value and the choices)."""


class DeviceUnavailableError(ConfigError):
    """The requested device backend is not available on this machine."""


class UnknownModelError(ConfigError):
    """The model is neither a preset, nor a local path, nor loadable offline."""


class JournalError(CollectorError):
    """The sweep journal cannot be used (missing, corrupt, or incompatible)."""


class OutputError(CollectorError):
    """A file cannot be written: no file name, a folder that is not writable, or a full disk (names path and cause)."""


class EndpointError(CollectorError):
    """An HTTP endpoint (``--engine http``) cannot be used: refused, failed, timed out, or sent a malformed
    stream. ``status`` is how a run records it (``error`` or ``timeout``); the message is one line."""

    def __init__(self, message: str, status: str = "error") -> None:
        super().__init__(message)
        self.status = status
