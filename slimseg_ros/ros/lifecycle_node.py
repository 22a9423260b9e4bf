"""
The managed (lifecycle) variant of the node: the same parameters, topics and code.

It shares :class:`~.core.SlimSegCore` with the plain node and is driven by a lifecycle
manager or ``ros2 lifecycle set``.

* **configure** loads the checkpoint and prepares every width (the slow, failable part); a bad
  file or parameter fails the transition with the reason logged (and kept in ``last_error``),
  and the node stays unconfigured and usable: fix the parameter and configure again.
* **activate** creates the subscriptions, publishers and timers and starts the inference thread.
* **deactivate** stops and destroys them; the model stays loaded (warm).
* **cleanup** frees the model; **shutdown** works from every state.

Parameters that the plain node fixes after start-up (checkpoint, cameras, ...) can be changed
here while the node is unconfigured and are read by the next configure.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from .contract import NODE_NAME
from .node import run
from .core import SlimSegCore, StartupError
from .timing import ProcessMeter

__all__ = ["SlimSegLifecycleNode", "main"]


class SlimSegLifecycleNode(LifecycleNode):
    """
    Managed segmentation node; starts unconfigured.

    Raises :class:`StartupError` only for a parameter of the wrong type (everything else is
    reported by configure).
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.last_error = ""  # why the last failed transition failed
        try:
            self.core = SlimSegCore(self, clock=time.monotonic, meter=ProcessMeter(),
                                    managed=True)
        except BaseException:
            super().destroy_node()
            raise

    @property
    def engine(self) -> Any:
        """Segmentation engine that configure loaded, None while unconfigured."""
        return self.core.engine

    def frame_stats(self, camera: str | None = None) -> dict[str, Any]:
        """See :meth:`~.core.SlimSegCore.frame_stats`."""
        return self.core.frame_stats(camera)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.core.configure()
        except StartupError as exc:
            self.last_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.last_error = ""
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.activate()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.deactivate()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.shutdown()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free everything after a transition raised, and go back to unconfigured."""
        self.get_logger().error(f"error in transition from '{state.label}': cleaning up")
        self.core.shutdown()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self.core.shutdown()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """
    Run the console script ``slimseg_lifecycle_node``.

    The node starts unconfigured; ``ros2 lifecycle set /slimseg_node configure``, then
    ``activate``, or the launch file's ``lifecycle:=true`` bring it up.
    """
    return run(SlimSegLifecycleNode, args)


if __name__ == "__main__":
    sys.exit(main())
