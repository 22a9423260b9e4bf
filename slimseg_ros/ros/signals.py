"""
The stop signals: kept off the model's native threads, and turned into one stop request.

:func:`relay_stop_signals` is how the node hears SIGINT and SIGTERM (see
:func:`~.node.run`); :func:`stop_signals_blocked` keeps them off the runtime's threads.
"""

from __future__ import annotations

import signal
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: The signals that stop a node: Ctrl-C, the SIGTERM of ``ros2 launch`` or systemd, a closed
#: terminal.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})

#: The signals :func:`relay_stop_signals` takes over by default: those rclpy handled (ros2 launch
#: stops a node with SIGINT, systemd with SIGTERM), whatever their disposition was; SIGHUP keeps
#: its own (the default ends the process at once; ``nohup`` ignores it).
RELAYED_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})

_RELAY_END = b"\0"  # no signal has number 0: the relay thread's own "stop reading"


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


@contextmanager
def relay_stop_signals(on_stop: Callable[[int], None],
                       signals: frozenset[int] = RELAYED_SIGNALS) -> Iterator[None]:
    """
    Call ``on_stop(signum)`` from a thread of its own for each of ``signals`` while the body runs.

    For a main thread that sits in native code (rclpy's ``rcl_wait``) with nothing else to wake
    it: Python runs a signal's handler only when the main thread next runs Python code, so the
    signal has to reach the process some other way. Here Python's own C-level handler writes the
    signal's number to a socket (:func:`signal.set_wakeup_fd`, safe in a signal handler and on
    whichever thread the kernel picked) and a daemon thread reading it calls ``on_stop``, which
    must be thread-safe and should only record the request and wake the main thread. The
    Python-level handlers do nothing, so no KeyboardInterrupt lands in the middle of a callback
    or of the clean-up; every further signal calls ``on_stop`` again. The previous handlers and
    wakeup fd come back on exit. Call it from the main thread (Python's rule for handlers).
    """
    reader, writer = socket.socketpair()
    writer.setblocking(False)  # set_wakeup_fd's rule: the handler must never block
    relay = threading.Thread(target=_relay, args=(reader, signals, on_stop),
                             name="slimseg_stop_signals", daemon=True)
    previous: dict[int, object] = {}
    previous_fd = -1
    try:
        relay.start()
        for signum in signals:
            previous[signum] = signal.signal(signum, _ignore)
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        yield
    finally:
        if previous:
            signal.set_wakeup_fd(previous_fd)
        try:
            writer.send(_RELAY_END)
        except OSError:  # the buffer is full of signal numbers: the relay is reading them
            pass
        relay.join(timeout=5.0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        writer.close()
        if not relay.is_alive():  # never close a socket a thread still reads
            reader.close()


def _ignore(signum: int, frame: object) -> None:
    """Python-level handler of a relayed signal: the relay thread passes it on."""


def _relay(reader: socket.socket, signals: frozenset[int],
           on_stop: Callable[[int], None]) -> None:
    """Pass each stop signal's number written to ``reader`` to ``on_stop`` until the end mark."""
    while True:
        try:
            data = reader.recv(64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum == _RELAY_END[0]:
                return
            if signum in signals:
                try:
                    on_stop(signum)
                except Exception:  # noqa: BLE001 - keep relaying the next signals
                    traceback.print_exc()
