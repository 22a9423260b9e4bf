"""
Training subpackage (installed as ``slimseg_ros.training``).

Datasets, transforms, losses, the SlimSeg recipe, trainer (``slimseg-train``) and evaluation
(``slimseg-eval``). Never imported by the ROS node.
"""
