"""The one exception type for problems a user can fix (bad input, missing file, bad config)."""


class DiffgatesError(Exception):
    """A user-facing error: its message is one sentence that names the problem and the fix."""
