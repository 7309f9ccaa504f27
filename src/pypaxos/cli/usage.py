"""The one error every command raises for bad input: printed on stderr, exit status 2."""


class UsageError(Exception):
    """Bad command-line input; reported on stderr with exit status 2."""
