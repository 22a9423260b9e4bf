"""The stop signals, kept off the model's native threads."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

#: The signals that stop a node: Ctrl-C, the SIGTERM of ``ros2 launch`` or systemd, a closed
#: terminal.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


@contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """
    Block the stop signals in this thread while the body runs; threads started in it keep them.

    The inference runtimes run the model on native threads that install their own alternate
    signal stacks (OpenVINO's CPU plugin and its thread pool do). A stop signal the kernel hands
    to one of those threads while its stack is being replaced or freed kills the process with
    SIGSEGV instead of stopping it. Python runs its handlers in the main thread whichever
    thread the signal lands on, so keeping the signals off the model's threads changes nothing
    else: the engine is built and the inference thread started inside this block.
    """
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: nothing to keep off
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
