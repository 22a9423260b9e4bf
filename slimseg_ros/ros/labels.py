"""
The model's class names as a ``vision_msgs/LabelInfo`` message, for consumers of the masks.

A mask holds class ids; LabelInfo (added to vision_msgs for exactly this) says what each id
means, so a consumer needs no parameter list. It is published once per activation on a
transient-local topic, so a subscriber that comes later still gets it. vision_msgs ships with a
robot's ROS distribution but not as a PyPI wheel: where it cannot be imported the node says so
once and goes on without the topic (the class names stay read-only parameters either way).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rclpy.node import Node

from .camera import LATCHED_QOS
from .contract import TOPICS

VISION_MSGS_MISSING = ("vision_msgs is not installed (the ROS package, e.g. "
                       "ros-$ROS_DISTRO-vision-msgs): no class names on '{topic}'; they stay in "
                       "the read-only class_names parameter")


_missing_said = False


def label_info_type() -> Any | None:
    """Return the ``vision_msgs/LabelInfo`` class, or None where vision_msgs is absent."""
    try:
        from vision_msgs.msg import LabelInfo
    except ImportError:
        return None
    return LabelInfo


def publish_label_info(node: Node, class_names: Sequence[str]) -> Any | None:
    """
    Create the latched LabelInfo publisher of ``node`` and publish ``class_names`` on it.

    Class id ``i`` is ``class_names[i]``; ``threshold`` is 0.0 (every pixel gets a class).
    Returns the publisher (the caller destroys it), or None where vision_msgs is absent, after
    logging that once.
    """
    global _missing_said
    label_info = label_info_type()
    if label_info is None:
        if not _missing_said:  # once per process, not at every activation
            _missing_said = True
            node.get_logger().warning(VISION_MSGS_MISSING.format(
                topic=node.resolve_topic_name(TOPICS.label_info)))
        return None
    from vision_msgs.msg import VisionClass

    pub = node.create_publisher(label_info, TOPICS.label_info, LATCHED_QOS)
    msg = label_info(class_map=[VisionClass(class_id=i, class_name=str(name))
                                for i, name in enumerate(class_names)], threshold=0.0)
    msg.header.stamp = node.get_clock().now().to_msg()
    pub.publish(msg)
    return pub
