"""Fast self-checking Verilator harness of the DRE units (issue 13, item 2).

Golden (``sim.cases.dre``; ``golden.kvmu`` for the KVMU) writes each stream's stimulus and
expected beats into plain hex files; a C++ Verilator driver (``harness.cpp``) drives the
generated Verilog's valid/ready streams with seeded random idle cycles, back-pressure and
long bursts, compares every output beat and the end-of-run state, and prints one verdict
line. No Python runs per cycle. For the KVMU the harness is also its AXI4 read slave (a
memory image written by golden; every AR burst compared with golden's and checked against
the burst rules; R beats in order with seeded gaps) and runs the chunk in phases (allocation,
then selections, a ``clear`` strobe between contexts).

    python -m sim.fast hcu --seed 7 --transactions 20000
    python -m sim.fast kvmu --seed 7 --transactions 2000     # transactions: selections

Modules: ``build`` (Verilator build of the harness), ``icarus`` (the same checks as a
generated Verilog testbench on Icarus, ``--sim icarus``), ``stimulus`` (golden
chunks, stall profiles), ``run`` (one chunk → ``Verdict``). ``sim.soak`` runs many chunks.
"""

from sim.fast.build import FAST_PORTS, build_harness
from sim.fast.run import Verdict, replay_command, run_chunk
from sim.fast.stimulus import PROFILES, Chunk, Profile, make_chunk, profile_for

__all__ = [
    "FAST_PORTS",
    "PROFILES",
    "Chunk",
    "Profile",
    "Verdict",
    "build_harness",
    "make_chunk",
    "profile_for",
    "replay_command",
    "run_chunk",
]
