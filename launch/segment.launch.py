"""Start slimseg_node with the package's parameter file.

    ros2 launch slimseg_ros segment.launch.py image:=/camera/image_raw
    ros2 launch slimseg_ros segment.launch.py checkpoint:=/path/model.pt device:=cpu
    ros2 launch slimseg_ros segment.launch.py params_file:=/path/my_slimseg.yaml

``checkpoint`` and ``device`` override the parameter file only when given. The node's process
gets the shipped Fast DDS profile (large shared-memory segment, so 1080p masks reach local
best-effort subscribers) unless FASTDDS_DEFAULT_PROFILES_FILE or FASTRTPS_DEFAULT_PROFILES_FILE
is already set; ``dds_profile:=''`` turns it off.
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "slimseg_ros"


def _dds_profile(context):
    """Environment for the node's process: the profile file, unless the user chose one."""
    from slimseg_ros.node_support import PROFILE_OVERRIDE_ENV, dds_profile_env

    profile = LaunchConfiguration("dds_profile").perform(context)
    actions = [SetEnvironmentVariable(PROFILE_OVERRIDE_ENV, profile)]  # the node's own fallback
    for name, value in dds_profile_env(os.environ, profile).items():
        actions.append(SetEnvironmentVariable(name, value))
    return actions


def _node(context):
    overrides = {}
    for name in ("checkpoint", "device"):
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = ParameterValue(value, value_type=str)  # no YAML re-typing
    parameters = [LaunchConfiguration("params_file").perform(context)]
    if overrides:
        parameters.append(overrides)
    image = LaunchConfiguration("image").perform(context)
    return [Node(
        package=PACKAGE,
        executable="slimseg_node",
        name="slimseg_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=parameters,
        remappings=[("image", image), ("image/compressed", image + "/compressed")],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument(
            "image", default_value="/camera/image_raw",
            description="Camera topic (sensor_msgs/Image; <image>/compressed with "
                        "input_transport: compressed)"),
        DeclareLaunchArgument(
            "checkpoint", default_value="",
            description="Model checkpoint (.pt); empty: the parameter file's value, whose "
                        "default is the packaged model"),
        DeclareLaunchArgument(
            "device", default_value="",
            description="auto, cpu, cuda or cuda:N; empty: the parameter file's value"),
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
