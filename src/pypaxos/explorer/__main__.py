"""``python -m pypaxos.explorer``: the same as ``pypaxos explore``."""

from __future__ import annotations

import sys

from pypaxos.explorer.cmd import main

sys.exit(main())
