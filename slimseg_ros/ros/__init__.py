"""
The ROS edge: the node and its lifecycle variant over one core, and everything that touches rclpy.

Parameters, the topic/diagnostics contract, QoS, per-camera subscriptions and publishers, the
frame slots, the inference thread, conversions between sensor_msgs and numpy, the DDS
environment. Thin glue over :mod:`slimseg_ros.governor` (policy) and :mod:`slimseg_ros.inference`
(the network); nothing outside this room imports rclpy. Importing the package itself loads no
ROS module, so its plain-Python parts (frame slots, rejections) are usable without ROS.
"""
