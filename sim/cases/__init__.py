"""Test cases from the golden model: stimulus and expected results shared by the Amaranth
tests, the cocotb benches and the power stimulus (see ``sim``)."""
