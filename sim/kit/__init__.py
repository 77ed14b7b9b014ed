"""The testbench kit: stream drivers (Amaranth and cocotb), AXI RAM models, protocol
checkers, the cocotb runner and shared command-line arguments (see ``sim``)."""
