"""
What a developer or user runs beside the robot, never on it.

The demo, the benchmarks, the export command and the FLOPs table. The runtime rooms (``ros``,
``governor``, ``inference``, ``models``) never import from here, so nothing in this subpackage is
loaded on the robot; ``test/test_core_imports.py`` checks it.
"""
