"""Every failure the core reports, one class each, with messages that say what to fix."""

from __future__ import annotations


class MemrlError(Exception):
    """Base class: a problem the caller can act on."""


class InvalidInputError(MemrlError, ValueError):
    """An argument is malformed (empty text, oversized text, bad namespace, bad reward...)."""


class UnknownTaskError(MemrlError, LookupError):
    """An outcome names a task id that no recall produced."""


class UnknownMemoryError(MemrlError, LookupError):
    """A memory id does not exist."""


class ModelMismatchError(MemrlError):
    """Vectors of a different embedding model (or dimension) would be mixed into one namespace."""


class ModelUnavailableError(MemrlError):
    """The embedding model files are missing, unreadable or fail their checksum."""


class DatabaseError(MemrlError):
    """The database file cannot be opened, migrated or written."""
