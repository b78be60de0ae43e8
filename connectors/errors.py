"""The one base class for errors caused by what a user gave us (a file, a flag, a name).

The command line prints such an error as one line and exits 1; any other exception is a bug and
is logged with its traceback.
"""


class UserInputError(Exception):
    """Bad input from the operator: the message says what and how to fix it."""
