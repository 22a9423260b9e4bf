"""
``slimseg-demo``: the whole system in one command, written up as a report folder.

Starts the real node (the ``slimseg_node`` console script with ``config/slimseg.yaml``) as a
separate process on a private ROS domain, plays a camera stream into it over DDS (an image
folder, a video file, or the generated street scene of :mod:`.scene`, whose label maps let the
demo score the masks the node returns), drives a scripted scenario through the node's real
topics (explicit width commands, a draining battery, a thermal spike, a tight then relaxed
compute budget), records masks, active width, diagnostics and end-to-end latency, and writes
the files below. With ``--cameras front left right`` the node serves three replayed cameras
with one model instead (the first with the highest priority) and the story is the multi-camera
one: all free, a tight budget under which the first camera keeps its width while the others
slim, the last camera dropping out and coming back.

* ``timeline.png``: requested/active width (a line per camera), latency and budget, battery and
  temperature (with cameras: masks received per camera) over time;
* ``montage.png``: one input frame, its colour mask and confidence at every trained width;
* ``latency.md`` / ``latency.json``: latency per width (end to end and as the node reports it);
* ``decisions.md`` / ``decisions.json``: every width decision with the reason the node gave;
* ``report.md`` / ``report.json``: what ran (checkpoint, frames, node command), the masks'
  mIoU per width against the generated frames' label maps, and what each phase showed;
* ``node.log``: the node's own output.

Usage: ``slimseg-demo --output reports/demo [--images DIR_OR_VIDEO] [--checkpoint FILE]
[--cameras NAME NAME ...]``.

Modules: :mod:`.sources` (frames), :mod:`.scene` (the generated street and its scoring; drawn
in :mod:`.scene_street` and :mod:`.scene_objects`), :mod:`.scenario` (the scripted phases and
their playing), :mod:`.client` (the demo's own rclpy node and what it records), :mod:`.report`
(the files above), :mod:`.cli` (the command).
"""


class DemoError(RuntimeError):
    """The demo cannot run (bad input path, node failed to start, ...); the message says why."""
