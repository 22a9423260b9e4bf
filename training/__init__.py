"""Training subpackage (installed as ``slimseg_ros.training``): data, losses, SlimSeg trainer, eval."""
