"""
Start slimseg_node (or its managed variant) with the package's parameter file.

    ros2 launch slimseg_ros segment.launch.py image:=/camera/image_raw
    ros2 launch slimseg_ros segment.launch.py checkpoint:=/path/model.pt device:=cpu
    ros2 launch slimseg_ros segment.launch.py params_file:=/path/my_slimseg.yaml
    ros2 launch slimseg_ros segment.launch.py cameras:='[front, left]' camera_priorities:='[2, 1]'
    ros2 launch slimseg_ros segment.launch.py lifecycle:=true autostart:=false

``checkpoint``, ``device``, ``cameras`` and ``camera_priorities`` override the parameter file
only when given. ``lifecycle:=true`` starts the managed node ``slimseg_lifecycle_node``;
``autostart:=true`` (the default) configures and then activates it, ``false`` leaves it
unconfigured for a lifecycle manager. The node's process gets the shipped Fast DDS profile
(large shared-memory segment, so 1080p masks reach local best-effort subscribers) unless
FASTDDS_DEFAULT_PROFILES_FILE or FASTRTPS_DEFAULT_PROFILES_FILE is already set;
``dds_profile:=''`` turns it off.
"""

import os

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, OpaqueFunction,
                            RegisterEventHandler, SetEnvironmentVariable)
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

PACKAGE = "slimseg_ros"
TRUE = ("true", "1", "yes", "on")


def _dds_profile(context):
    """Environment for the node's process: the profile file, unless the user chose one."""
    from slimseg_ros.ros.dds import PROFILE_OVERRIDE_ENV, dds_profile_env

    profile = LaunchConfiguration("dds_profile").perform(context)
    actions = [SetEnvironmentVariable(PROFILE_OVERRIDE_ENV, profile)]  # the node's own fallback
    for name, value in dds_profile_env(os.environ, profile).items():
        actions.append(SetEnvironmentVariable(name, value))
    return actions


def _change_state(node, transition_id):
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                       transition_id=transition_id))


def _node(context):
    from slimseg_ros.ros.params import list_argument

    overrides = {}
    for name in ("checkpoint", "device"):
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = ParameterValue(value, value_type=str)  # no YAML re-typing
    for name, item in (("cameras", str), ("camera_priorities", float)):
        values = list_argument(name, LaunchConfiguration(name).perform(context), item)
        if values:  # an empty list cannot be typed; the node's default is the empty list
            overrides[name] = values
    parameters = [LaunchConfiguration("params_file").perform(context)]
    if overrides:
        parameters.append(overrides)
    image = LaunchConfiguration("image").perform(context)
    common = dict(
        package=PACKAGE,
        name="slimseg_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=parameters,
        remappings=[("image", image), ("image/compressed", image + "/compressed")],
        output="screen",
        emulate_tty=True,
    )
    if LaunchConfiguration("lifecycle").perform(context).strip().lower() not in TRUE:
        return [Node(executable="slimseg_node", **common)]
    node = LifecycleNode(executable="slimseg_lifecycle_node", **common)
    if LaunchConfiguration("autostart").perform(context).strip().lower() not in TRUE:
        return [node]  # unconfigured: a lifecycle manager takes it from here
    activate_when_configured = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
        entities=[_change_state(node, Transition.TRANSITION_ACTIVATE)]))
    return [activate_when_configured, node,
            _change_state(node, Transition.TRANSITION_CONFIGURE)]


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument(
            "image", default_value="/camera/image_raw",
            description="Camera topic (sensor_msgs/Image; <image>/compressed with "
                        "input_transport: compressed)"),
        DeclareLaunchArgument(
            "checkpoint", default_value="",
            description="Model checkpoint (.pt) or bundle directory; empty: the parameter "
                        "file's value, whose default is the packaged model"),
        DeclareLaunchArgument(
            "device", default_value="",
            description="auto, cpu, cuda or cuda:N; empty: the parameter file's value"),
        DeclareLaunchArgument(
            "cameras", default_value="",
            description="Camera names sharing the model, e.g. [front, left]; empty: the "
                        "parameter file's value (default: one camera on 'image')"),
        DeclareLaunchArgument(
            "camera_priorities", default_value="",
            description="One priority per camera, e.g. [2.0, 1.0]; empty: the parameter "
                        "file's value (default: all equal)"),
        DeclareLaunchArgument(
            "lifecycle", default_value="false",
            description="true: the managed node slimseg_lifecycle_node"),
        DeclareLaunchArgument(
            "autostart", default_value="true",
            description="With lifecycle:=true: configure and activate at start; false: wait "
                        "for a lifecycle manager"),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([share, "config", "slimseg.yaml"]),
            description="Parameter file of the node"),
        DeclareLaunchArgument(
            "dds_profile",
            default_value=PathJoinSubstitution([share, "config", "fastdds_large_shm.xml"]),
            description="Fast DDS profile for the node's process; empty: none"),
        DeclareLaunchArgument("namespace", default_value="", description="Node namespace"),
        OpaqueFunction(function=_dds_profile),
        OpaqueFunction(function=_node),
    ])
