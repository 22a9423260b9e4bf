"""
Running the network: load a checkpoint once, prepare every width, run a frame at a given width.

:mod:`.engine` is the object the node and the tools drive; :mod:`.specialise` makes each
width's plain, BatchNorm-folded copy; :mod:`.backends` is the table of runtimes (torch, OpenVINO,
ONNX Runtime); :mod:`.export` writes the ONNX frame graph. Nothing here imports rclpy or keeps an
active width of its own.
"""
