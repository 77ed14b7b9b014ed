"""Formal verification of the DRE and KVMU units with SymbiYosys (``python -m formal``).

Each harness wraps one unit at a small configuration, drives its inputs from ``AnySeq``
under ``Assume``d environment rules and states the unit's contract as ``Assert`` (and
``Cover``) statements. ``formal.tasks.TASKS`` lists the sby runs (harness, mode, depth);
``formal.sby.run_task`` exports a harness to RTLIL and runs yowasp-sby with the Yices
SMT solver. See docs/formal.md.
"""

from __future__ import annotations

__all__: list[str] = []
