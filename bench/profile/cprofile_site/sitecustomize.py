"""Profile a whole node process with cProfile when ``PYPAXOS_CPROFILE_DIR`` is set.

``leader_profile.py --cprofile`` puts this directory first on ``PYTHONPATH`` of the cluster it
starts; every Python process started with it then profiles its main thread (the event loop)
from start to exit and writes ``DIR/PID.prof``.  The node exits cleanly on SIGTERM, so the
``atexit`` hook runs.
"""

import atexit
import cProfile
import os
import time

_dir = os.environ.get("PYPAXOS_CPROFILE_DIR")
if _dir:
    # CPU time of the loop thread, not wall; builtins left out unless asked (each profiled
    # C call costs more than many of them take, which skews a hot loop's own time).
    _builtins = os.environ.get("PYPAXOS_CPROFILE_BUILTINS") == "1"
    _profile = cProfile.Profile(time.thread_time, builtins=_builtins)
    _profile.enable()

    def _dump() -> None:
        _profile.disable()
        _profile.dump_stats(os.path.join(_dir, f"{os.getpid()}.prof"))

    atexit.register(_dump)
