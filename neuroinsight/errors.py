"""The one exception a user can act on.

Everything that a user can fix (a bad file, a missing modality, an unset path)
raises :class:`InputError` with a message that says what was expected, what
arrived and what to do. Programmer errors stay built-in exceptions.
"""

from __future__ import annotations


class InputError(ValueError):
    """Something the user can fix: bad file, missing modality, shape mismatch, unset path."""
