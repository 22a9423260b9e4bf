"""
Pure policy: which width each camera runs at, and why.

Requested widths, battery, temperature (topic or host), latency and CPU budgets, camera
priorities and measured latencies go in; a :class:`~.decision.Decision` per camera comes out.
Plain Python (no rclpy, no torch); time is passed in, never read here.
"""

from .config import GovernorConfig
from .decision import SINGLE, Decision, Governor

__all__ = ["SINGLE", "Decision", "Governor", "GovernorConfig"]
