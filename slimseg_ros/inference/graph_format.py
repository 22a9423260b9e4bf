"""
What a frame graph is, as files: its version, ONNX opset and outputs (no torch needed).

The exporter (:mod:`.backends.frame_graph`) writes graphs of this format; a model bundle
(:mod:`.bundle`) records it, and a node running a bundle checks it without importing torch.
"""

from __future__ import annotations

# bump when the exported graph changes (2: TF-"SAME" padding follows the frame size)
GRAPH_VERSION = 6  # (3: argmax as a chain of comparisons; 4: logits upsample as a deconvolution;
#                     5: frame normalised before the layout change; 6: upsample + argmax per class)
OPSET = 17


def graph_outputs(logits: bool = False, confidence: bool = False) -> list[str]:
    """Return the output names of a frame graph, in order."""
    return ["logits"] if logits else ["mask", "confidence"] if confidence else ["mask"]
