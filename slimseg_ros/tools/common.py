"""
Helpers the tools share, written once: frame sizes, Markdown tables, workers, rclpy set-up.

* Sizes are ``HxW``, height first, as the README's tables are written: ``480x640`` is 480 rows
  of 640 pixels. :func:`parse_size` reads them (:func:`size_arg` is its argparse ``type=``),
  :func:`format_size` writes them and :func:`describe_size` spells them out ("height 480,
  width 640") where a reader could take them the other way round.
* :func:`markdown_table` (and :func:`markdown_row` for tables printed row by row).
* :func:`run_json_worker` runs a measurement in a fresh interpreter and reads the JSON it
  prints; :func:`json_worker_main` is the worker's side of that.
* :func:`cpu_name`: the CPU model, written beside every published figure.
* :class:`RosSession`: rclpy on a context of its own, one executor, spin helpers and the
  teardown in the order the node uses (:func:`shutdown_ros`).

rclpy is imported inside the rclpy helpers only, so this module (and the export command and the
FLOPs table that use it) works without ROS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..inference.machine import cpu_model

# ----------------------------------------------------------------------------- frame sizes
SIZE_FORMAT = "HxW (height x width), e.g. 480x640"
_SIZE = re.compile(r"\s*(-?\d+)\s*[xX]\s*(-?\d+)\s*")


class SizeError(argparse.ArgumentTypeError, ValueError):
    """A size that is not ``HxW`` with positive numbers (argparse shows its message as is)."""


def parse_size(text: str, minimum: int = 1) -> tuple[int, int]:
    """Read ``"HxW"`` as (height, width) in pixels; each must be at least ``minimum``."""
    match = _SIZE.fullmatch(str(text))
    if match is None:
        raise SizeError(f"size must be {SIZE_FORMAT}; got {text!r}")
    height, width = int(match.group(1)), int(match.group(2))
    if height < minimum or width < minimum:
        least = "positive" if minimum == 1 else f">= {minimum} pixels each"
        raise SizeError(f"size must be {least}: got {text!r} ({describe_size(height, width)})")
    return height, width


def size_arg(text: str) -> tuple[int, int]:
    """Read an ``HxW`` command-line value: ``parser.add_argument("--size", type=size_arg)``."""
    return parse_size(text)


def format_size(height: int, width: int) -> str:
    """Write a size as ``HxW``, height first: (480, 640) is ``480x640``."""
    return f"{height}x{width}"


def describe_size(height: int, width: int) -> str:
    """Spell a size out, so nobody reads it the other way round: "height 480, width 640"."""
    return f"height {height}, width {width}"


# ----------------------------------------------------------------------------- Markdown
_RULES = {"l": "---", "r": "---:", "c": ":---:"}


def escape_cell(text: object) -> str:
    """Return ``text`` fit for one table cell: its ``|`` escaped, lines joined by ``<br>``."""
    return str(text).replace("|", "\\|").replace("\n", "<br>")


def markdown_row(cells: Iterable[object]) -> str:
    """Write one table row: ``| a | b |`` (an empty cell is ``| |``); cells are not escaped."""
    return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"


def markdown_header(headers: Sequence[object], align: str = "l") -> str:
    """
    Write a table's header and rule lines.

    ``align``: one letter for every column or one per column, ``l`` (``---``), ``r``
    (``---:``) or ``c`` (``:---:``).
    """
    if len(align) == 1:
        align = align * len(headers)
    if len(align) != len(headers) or set(align) - set(_RULES):
        raise ValueError(f"align must be one of l, r, c per column ({len(headers)} columns), "
                         f"got {align!r}")
    return markdown_row(headers) + "\n|" + "|".join(_RULES[a] for a in align) + "|"


def markdown_table(headers: Sequence[object], rows: Iterable[Sequence[object]],
                   align: str = "l") -> str:
    """Write a Markdown table (no newline at the end); see :func:`markdown_header`."""
    return "\n".join([markdown_header(headers, align), *(markdown_row(r) for r in rows)])


# ----------------------------------------------------------------------------- fresh processes
def last_json_line(text: str) -> Any:
    """Read the JSON on the last non-empty line of a process's output (ValueError if none)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the process printed nothing")
    return json.loads(lines[-1])


def run_json_worker(module: str, flag: str, payload: Mapping[str, Any], *,
                    env: Mapping[str, str] | None = None, what: str = "worker") -> Any:
    """
    Run ``python -m module flag JSON`` in a fresh interpreter; return the JSON it prints last.

    A measurement gets a process of its own where two in one would distort each other (two
    runtimes' thread pools). ``env`` is added to this process's environment. A worker that
    fails raises RuntimeError with the end of its standard error.
    """
    proc = subprocess.run([sys.executable, "-m", module, flag, json.dumps(payload)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} worker failed: {proc.stderr.strip()[-800:]}")
    try:
        return last_json_line(proc.stdout)
    except ValueError as exc:
        raise RuntimeError(f"{what} worker printed no JSON result: {exc}") from None


def json_worker_main(argv: Sequence[str], flag: str,
                     worker: Callable[[dict[str, Any]], Any]) -> int | None:
    """
    Answer :func:`run_json_worker`: for ``argv == [flag, JSON]`` print ``worker(payload)``.

    Returns 0 when it answered, None when ``argv`` is not a worker call (the caller goes on).
    """
    if len(argv) != 2 or argv[0] != flag:
        return None
    print(json.dumps(worker(json.loads(argv[1]))), flush=True)
    return 0


# ----------------------------------------------------------------------------- rclpy
def shutdown_ros(executor: Any = None, nodes: Iterable[Any] = (), context: Any = None) -> None:
    """
    Tear rclpy down in the order the node uses (``slimseg_ros.ros.node.run``).

    rclpy's signal handlers are uninstalled first (that joins its signal thread, which could
    otherwise wake an executor whose guard condition is gone), then the executor is shut down,
    the nodes destroyed and rclpy shut down on ``context`` (None: the default context).
    """
    import rclpy
    from rclpy.signals import uninstall_signal_handlers

    try:
        uninstall_signal_handlers()
    except Exception:  # noqa: BLE001 - none installed: nothing to stop
        pass
    if executor is not None:
        try:
            executor.shutdown(timeout_sec=2.0)
        except Exception:  # noqa: BLE001 - a context already shut down: the nodes still go
            pass
    for node in nodes:
        node.destroy_node()
    rclpy.try_shutdown(context=context)


class RosSession:
    """
    This process's ROS side: rclpy on a context of its own, one executor and its nodes.

    ``with RosSession(domain_id) as ros: node = ros.node("name")``; leaving the block tears it
    down with :func:`shutdown_ros`. ``domain_id`` None takes ``ROS_DOMAIN_ID``. rclpy installs
    no signal handlers for a context of its own, so Ctrl-C is a plain KeyboardInterrupt.
    """

    def __init__(self, domain_id: int | None = None) -> None:
        """Initialise rclpy on a new context and make the executor."""
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        if domain_id is None:
            rclpy.init(context=self.context)
        else:
            rclpy.init(context=self.context, domain_id=domain_id)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: list[Any] = []
        self.closed = False

    def node(self, name: str, **kwargs: Any) -> Any:
        """Make a node on this context, spun by this session's executor."""
        from rclpy.node import Node

        node = Node(name, context=self.context, **kwargs)
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def spin_once(self, timeout: float = 0.05) -> None:
        """Run at most one waiting callback, waiting up to ``timeout`` seconds for one."""
        self.executor.spin_once(timeout_sec=timeout)

    def spin_until(self, done: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
        """Spin until ``done()`` or ``timeout`` seconds; return ``done()``."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            self.spin_once(step)
        return True

    def spin_for(self, seconds: float, every: Callable[[], None] | None = None,
                 period: float = 0.5, step: float = 0.02) -> None:
        """Spin for ``seconds``, calling ``every()`` first and then every ``period`` seconds."""
        next_call = time.monotonic()
        end = next_call + seconds
        while time.monotonic() < end:
            if every is not None and time.monotonic() >= next_call:
                every()
                next_call += period
            self.spin_once(step)

    def close(self) -> None:
        """Tear down: executor, nodes, then rclpy on this context; again: nothing to do."""
        if self.closed:
            return
        self.closed = True
        nodes, self.nodes = self.nodes, []
        shutdown_ros(self.executor, nodes, self.context)

    def __enter__(self) -> RosSession:
        """Return the session itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Tear the session down (:meth:`close`)."""
        self.close()


def cpu_name() -> str:
    """Return the CPU's model name (what every published figure is written beside)."""
    return cpu_model()


def trimmed_rss_mib() -> float:
    """
    Return this process's resident memory in MiB after handing the heap's free pages back.

    What a memory bench compares: without the trim, memory a step freed would still count.
    """
    from ..inference.working_memory import return_freed_heap
    return_freed_heap()
    with open("/proc/self/statm") as statm:  # size, resident, ... in pages
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
