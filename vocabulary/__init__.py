"""The shared vocabulary: names every room may use and that import none of them.

The canvas (a painting library), the planner, the engine and the window all speak about
the same things — the kinds of control image, the samplers, the model families, where the
user's configuration lives. Those names are defined here once, so that no room has to
stand on another to use them. This package imports nothing of ours, no Qt, no torch
(``tools/check_imports.py``); only the standard library, plus ``platformdirs`` for the
configuration folder.
"""
