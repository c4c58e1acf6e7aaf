"""Exceptions that carry what a user needs: the file, the step, the reason and the fix."""
from __future__ import annotations


class MirflowError(Exception):
    """Base class for errors mirflow reports to users.

    Parameters
    ----------
    message : str
        What went wrong, in words a user understands.
    fix : str, optional
        What the user can do about it.
    """

    def __init__(self, message: str, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(f"{message} Fix: {fix}" if fix else message)


class InputAudioError(MirflowError):
    """An input audio file is missing, empty, corrupt or undecodable."""

    def __init__(self, path, reason: str, fix: str | None = None):
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"cannot use audio file '{path}': {reason}.",
            fix or "check that the file plays in a media player; re-encode it (e.g. to FLAC) "
            "or remove it from the input folder, then run again.",
        )


class ResultFileError(MirflowError, ValueError):
    """A file mirflow wrote earlier (a .INFO, a partial JSON, a time grid) is unreadable or malformed.

    Also a ``ValueError``, which such readers raised before.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read '{path}': {reason}.",
                         "delete the file and run again: the step that writes it is redone.")


class ConfigError(MirflowError):
    """The configuration or the input folder is not usable."""
