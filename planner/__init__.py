"""The planner: document → generation request, and result → layer (Qt-free, torch-free).

Main entry points: :func:`sfumato.planner.plan.plan` (``plan(doc, settings) -> Plan``),
:func:`sfumato.planner.placement.place_result` and
:func:`sfumato.planner.recipe.settings_from_recipe`. See ``docs/planner.md``.
"""
