"""The exception types the command line turns into one sentence and an exit code."""

import zipfile
import zlib

#: what reading a damaged or truncated .npz file (a zip archive of .npy arrays) raises
NPZ_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


class DiffgatesError(Exception):
    """Bad input a user can fix: its message is one sentence that names the problem and the fix (exit 2)."""


class InternalError(Exception):
    """diffgates failed its own check (e.g. a circuit that disagrees with its model): a bug (exit 1)."""
