"""
The ROS 2 node: camera frames in, class masks out, width switched on the fly.

Glue only: :mod:`.conversions` turns messages into arrays,
:class:`~slimseg_ros.inference.engine.SegmentationEngine` runs the network,
:class:`~slimseg_ros.governor.Governor` picks the width; :class:`~.core.SlimSegCore` wires
topics, parameters, QoS and threads to them, the same code under this node and the managed one
(:mod:`.lifecycle_node`). This module starts it: configure and activate at construction.

Topics (relative, so they can be remapped or namespaced; the names live in :mod:`.contract`):

==========================  ===============================  =================================
``image``                   sensor_msgs/Image (in)           rgb8/bgr8/mono8/rgba8/bgra8
``image/compressed``        sensor_msgs/CompressedImage (in) ``input_transport: compressed``
``slimseg/mask``            sensor_msgs/Image (out)          mono8 class ids, input header/size
``slimseg/color``           sensor_msgs/Image (out)          rgb8 palette colours (lazy)
``slimseg/overlay``         sensor_msgs/Image (out)          rgb8 frame + colours (lazy, opt-in)
``slimseg/active_width``    std_msgs/Float32 (out)           transient-local
``/diagnostics``            diagnostic_msgs/DiagnosticArray  width, reason, latency, drops
``slimseg/width``           std_msgs/Float32 (in)            requested width
``battery_state``           sensor_msgs/BatteryState (in)    percentage 0-1, charging status
``temperature``             sensor_msgs/Temperature (in)     degrees Celsius
``slimseg/budget_ms``       std_msgs/Float32 (in)            latency budget per frame, ms
``slimseg/cpu_budget``      std_msgs/Float32 (in)            CPU-share budget, 0-1 of the cores
==========================  ===============================  =================================

The compressed topic follows a remapping of ``image`` (image_transport's rule). With
``cameras: [N, ...]`` each camera has ``N/image``, ``N/slimseg/{mask,color,overlay,
active_width}`` and its own request ``N/slimseg/width``; the other inputs stay shared.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future

from .contract import NODE_NAME
from .core import SlimSegCore, StartupError
from .dds import apply_dds_profile
from .signals import relay_stop_signals
from .timing import ProcessMeter

__all__ = ["SlimSegNode", "StartupError", "main", "run"]


class SlimSegNode(Node):
    """
    Semantic segmentation of camera frames at a width set by request, battery, heat and budget.

    Raises :class:`StartupError` when the model or a parameter is unusable.
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        """Make the node configured and active; ``kwargs`` go to :class:`rclpy.node.Node`."""
        super().__init__(node_name, **kwargs)
        self.core: SlimSegCore | None = None
        try:
            self.core = SlimSegCore(self, clock=time.monotonic, meter=ProcessMeter())
            self.core.configure()
            self.core.activate()
        except BaseException:
            if self.core is not None:
                self.core.shutdown()
            Node.destroy_node(self)  # leave no half-made node in the graph
            raise

    @property
    def engine(self) -> Any:
        """Return the node's :class:`~slimseg_ros.inference.engine.SegmentationEngine`."""
        return self.core.engine

    def frame_stats(self, camera: str | None = None) -> dict[str, Any]:
        """See :meth:`~.core.SlimSegCore.frame_stats`."""
        return self.core.frame_stats(camera)

    def destroy_node(self) -> None:
        """Stop the flow (joining the inference thread), free the model, destroy the node."""
        if self.core is not None:
            self.core.shutdown()  # stops and joins the inference thread
        super().destroy_node()


def run(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Run one node until a stop signal or shutdown: the body of the console scripts."""
    apply_dds_profile()  # before rclpy.init: Fast DDS reads it when the participant is made
    faulthandler.enable()  # a crash in a native library prints every thread's Python stack
    # The node hears its stop signals itself, not through rclpy's handlers. rclpy's signal
    # thread wakes the executor (it triggers the executors' signal guard conditions) *before* it
    # shuts the context down, and the executor looks at the context right after waking: when it
    # looks first it sees a live context, waits again, and nothing ever wakes it, so one SIGTERM
    # leaves the node spinning forever (rclpy 9.1.2, a bare rclpy node too; a second signal ends
    # it). Here a stop signal completes ``stop`` and only then wakes the executor, so the spin
    # below always sees it, whatever the lifecycle state and however many cycles came before.
    # No handler of rclpy's is installed, so none is uninstalled either: uninstalling puts the
    # default (die at once) action back on SIGINT and SIGTERM for a moment, even when none was.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop: Future[int] = Future()

    def request_stop(signum: int) -> None:  # on the relay's thread; set_result wakes the spin
        if not stop.done():
            stop.set_result(signum)

    node = None
    executor = None
    with relay_stop_signals(request_stop):
        try:
            node = make_node()
            # One thread is enough: every callback only stores a value or drops a frame into
            # its slot; the network runs on the node's own inference thread. rclpy's
            # MultiThreadedExecutor re-offers every callback it has queued but not yet started
            # on each pass of its loop without waiting, so once a callback waits for a thread (a
            # busy machine) the loop spins in Python, holds the GIL and slows the inference
            # thread, which waits for the GIL after each torch op: 0.2-0.8 s frames at 0.25
            # width, seen.
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            executor.spin_until_future_complete(stop)  # a signal, or the context shut down
            if stop.done():
                node.get_logger().info(
                    f"{signal.Signals(stop.result()).name} received: shutting down")
        except StartupError as exc:
            rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
            return 1
        except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C before the relay took
            pass  # over, or the context shut down by someone else
        finally:
            # Further signals (Ctrl-C reaches a node twice: from the terminal and from ros2
            # launch) only complete ``stop`` again: the clean-up is never cut short.
            if executor is not None:
                executor.shutdown(timeout_sec=2.0)
            if node is not None:
                node.destroy_node()  # stops and joins the inference thread
            try:
                rclpy.try_shutdown(uninstall_handlers=False)
            except TypeError:  # Humble's try_shutdown has no such argument (and uninstalls none)
                rclpy.try_shutdown()
    # The relay gave SIGINT back to Python, whose handler raises KeyboardInterrupt: a late Ctrl-C
    # (the second of the two) must not turn this clean exit into a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return 0


def main(args: list[str] | None = None) -> int:
    """Console script ``slimseg_node``: ``slimseg_node --ros-args --params-file FILE``."""
    return run(SlimSegNode, args)


if __name__ == "__main__":
    sys.exit(main())
