"""Errors a user can cause (bad flags, unknown IDs, unreadable files, unreachable stores).

The command line turns a `UserError` into one line on stderr and exit status 2; anything else
is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in what the user asked for, explained in one line."""
