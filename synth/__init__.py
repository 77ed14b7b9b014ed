"""Offline synthesis flow: area, timing and power of the hardware units, and the sweep.

Entry points: ``python -m synth.flow`` (``make synth``) and ``python -m synth.sweep``
(``make sweep``). One component per module:

- :mod:`synth.tools` — tool discovery, tool runs, errors naming tool / step / log;
- :mod:`synth.liberty` — Liberty reader (areas, functions, sequential cells);
- :mod:`synth.yosys` — YoWASP Yosys synthesis to the OSU 0.18 µm liberty, area per module;
- :mod:`synth.sram` — SRAM macro model (area, energy, timing) and its Liberty/Verilog views;
- :mod:`synth.sta` — OpenSTA timing (fmax, critical path) and power runs;
- :mod:`synth.activity` — stimulus per unit, Amaranth simulation, VCD toggle rates;
- :mod:`synth.power` — VCD-to-netlist name mapping, activity propagation, OpenSTA annotation;
- :mod:`synth.scaling` — Stillmaker & Baas scaling to 14 nm / 0.8 V (estimates);
- :mod:`synth.report` — report.json schema, Markdown and charts;
- :mod:`synth.area_model` — analytical area model used by the sweep;
- :mod:`synth.flow`, :mod:`synth.sweep` — the two command-line flows.
"""
