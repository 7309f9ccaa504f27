"""The ``pypaxos`` command: every command's arguments, output and exit status.

Nothing below imports this package.  ``main`` holds the command table and imports only the
chosen command's module, so that a node's start-up does not load the simulator or rich;
``usage.UsageError`` is the one bad-input error, printed on stderr with exit status 2.
"""

from pypaxos.cli.main import main

__all__ = ["main"]
