"""
The managed node over real rclpy/DDS, driven through its lifecycle services.

Covered: what it subscribes to and publishes in each state, a configure that fails on a bad
file and succeeds once the file is fixed, a warm model across deactivate/activate, shutdown
from every state.
"""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")
lifecycle_msgs = pytest.importorskip("lifecycle_msgs")

from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from node_harness import (DEADLINE, NODE_TEST_PARAMS, Probe, image_msg,  # noqa: E402
                          send_until_mask, settled, wait_for)
from slimseg_ros.ros.contract import NODE_NAME, TOPICS  # noqa: E402
from slimseg_ros.ros.lifecycle_node import SlimSegLifecycleNode  # noqa: E402

pytestmark = pytest.mark.ros

FAST = NODE_TEST_PARAMS


class Manager:
    """The probe's lifecycle clients: what a lifecycle manager or ``ros2 lifecycle`` calls."""

    def __init__(self, probe: Probe) -> None:
        self.change = probe.node.create_client(ChangeState, f"/{NODE_NAME}/change_state")
        self.get = probe.node.create_client(GetState, f"/{NODE_NAME}/get_state")
        assert self.change.wait_for_service(timeout_sec=DEADLINE)
        assert self.get.wait_for_service(timeout_sec=DEADLINE)

    @staticmethod
    def _call(client, request, timeout: float = DEADLINE):
        future = client.call_async(request)
        wait_for(future.done, timeout=timeout)
        return future.result()

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition_id
        return self._call(self.change, request).success

    def state(self) -> str:
        return self._call(self.get, GetState.Request()).current_state.label


@pytest.fixture
def managed(context, checkpoint, spin):
    """Make unconfigured managed nodes: ``_make(**params) -> (node, probe, manager)``."""
    def _make(**params):
        values = {"checkpoint": str(checkpoint), **FAST, **params}
        node = SlimSegLifecycleNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()])
        probe = Probe(context, name="lifecycle_probe")
        spin(node, probe)
        return node, probe, Manager(probe)
    return _make


def node_endpoints(probe: Probe, topic: str) -> int:
    """Count the publishers plus subscriptions of the node under test on ``topic``."""
    n = probe.node
    infos = n.get_publishers_info_by_topic(topic) + n.get_subscriptions_info_by_topic(topic)
    return sum(i.node_name == NODE_NAME for i in infos)


def masks_while_sending(probe: Probe, msg, seconds: float) -> int:
    """
    Count the new masks arriving while ``msg`` is published every 50 ms for ``seconds``.

    Only to show that none come (a node that is not active): a positive count is waited for
    with :func:`send_until_mask`, which a slow machine only delays.
    """
    before = probe.count(probe.masks)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        probe.image_pub.publish(msg)
        time.sleep(0.05)
    time.sleep(0.2)
    return probe.count(probe.masks) - before


def test_transitions_drive_what_is_published(managed, tmp_path, checkpoint) -> None:
    node, probe, manager = managed(checkpoint=str(tmp_path / "missing.pt"))
    msg = image_msg(np.zeros((24, 32, 3), np.uint8), "rgb8", frame_id="managed_cam")
    assert manager.state() == "unconfigured"
    assert node_endpoints(probe, "/" + TOPICS.image) == 0
    assert node_endpoints(probe, "/" + TOPICS.mask) == 0

    # a bad file fails configure with the reason; the node stays unconfigured and usable
    assert manager.transition(Transition.TRANSITION_CONFIGURE) is False
    assert manager.state() == "unconfigured"
    assert f"checkpoint file {tmp_path / 'missing.pt'} does not exist" in node.last_error
    assert node.engine is None
    assert node.set_parameters([Parameter("checkpoint", value=str(checkpoint))])[0].successful
    assert manager.transition(Transition.TRANSITION_CONFIGURE) is True
    assert manager.state() == "inactive" and node.last_error == ""
    assert gc.get_freeze_count() > 0  # the loaded model is kept out of later collections
    engine = node.engine
    assert engine is not None and list(node.get_parameter("widths").value) == [
        0.25, 0.5, 0.75, 1.0]
    r = node.set_parameters([Parameter("checkpoint", value="/elsewhere.pt")])[0]
    assert not r.successful and "unconfigured" in r.reason  # fixed while configured

    # inactive: nothing subscribed, nothing published
    assert node_endpoints(probe, "/" + TOPICS.image) == 0
    assert masks_while_sending(probe, msg, 0.5) == 0 and probe.count(probe.widths) == 0

    # active: frames in, masks and the latched width out
    assert manager.transition(Transition.TRANSITION_ACTIVATE) is True
    assert manager.state() == "active"
    wait_for(lambda: probe.count(probe.widths) > 0)
    assert send_until_mask(probe, msg, count=3).header.frame_id == "managed_cam"
    # idle, and every mask it published has arrived: none can come late into the window below
    d = probe.fresh_diag(lambda d: d.frames_processed >= 3 and settled(d))
    wait_for(lambda: probe.count(probe.masks) >= d.frames_processed)

    # deactivate: the flow stops, the model stays warm
    assert manager.transition(Transition.TRANSITION_DEACTIVATE) is True
    assert manager.state() == "inactive"
    wait_for(lambda: node_endpoints(probe, "/" + TOPICS.image) == 0)
    assert node_endpoints(probe, "/" + TOPICS.mask) == 0
    assert masks_while_sending(probe, msg, 0.5) == 0
    assert node.engine is engine
    assert manager.transition(Transition.TRANSITION_ACTIVATE) is True  # fast: no reload
    send_until_mask(probe, msg)
    assert node.engine is engine

    # cleanup frees the model; configure loads it again
    assert manager.transition(Transition.TRANSITION_DEACTIVATE) is True
    assert manager.transition(Transition.TRANSITION_CLEANUP) is True
    assert manager.state() == "unconfigured" and node.engine is None
    assert gc.get_freeze_count() == 0  # the freed model can be collected
    assert manager.transition(Transition.TRANSITION_CONFIGURE) is True
    assert node.engine is not None and node.engine is not engine


@pytest.mark.parametrize("state", ["unconfigured", "inactive", "active"])
def test_shutdown_from_every_state(managed, state) -> None:
    node, probe, manager = managed(cameras=["front", "left"])
    steps = {"unconfigured": [], "inactive": [Transition.TRANSITION_CONFIGURE],
             "active": [Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE]}
    for step in steps[state]:
        assert manager.transition(step) is True
    assert manager.state() == state
    if state == "active":  # the cameras' topics are there
        wait_for(lambda: node_endpoints(probe, "/front/" + TOPICS.mask) == 1)
        assert node_endpoints(probe, "/left/" + TOPICS.image) == 1
    shutdown = {"unconfigured": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
                "inactive": Transition.TRANSITION_INACTIVE_SHUTDOWN,
                "active": Transition.TRANSITION_ACTIVE_SHUTDOWN}[state]
    assert manager.transition(shutdown) is True
    assert manager.state() == "finalized"
    assert node.engine is None and not node.core.active
    wait_for(lambda: node_endpoints(probe, "/front/" + TOPICS.mask) == 0)
