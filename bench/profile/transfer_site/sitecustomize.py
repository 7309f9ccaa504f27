"""Profile a node process's event-loop thread on signals, when ``PYPAXOS_TRANSFER_PROFILE_DIR``
is set (``transfer_profile.py --cprofile``).

SIGUSR1 starts cProfile (CPU time of the main thread), SIGUSR2 stops it and writes
``DIR/PID.prof``; with ``PYPAXOS_TRANSFER_PROFILE_FROM_START=1`` it runs from the start (a
restarted follower: its imports and start are part of what it costs).
"""

import cProfile
import os
import signal
import time

_dir = os.environ.get("PYPAXOS_TRANSFER_PROFILE_DIR")
if _dir:
    _profile = cProfile.Profile(time.thread_time)

    def _start(signum: int, frame: object) -> None:
        _profile.enable()

    def _dump(signum: int, frame: object) -> None:
        _profile.disable()
        _profile.dump_stats(os.path.join(_dir, f"{os.getpid()}.prof"))

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _dump)
    if os.environ.get("PYPAXOS_TRANSFER_PROFILE_FROM_START") == "1":
        _profile.enable()
