"""The cocotb testbenches, one ``tb_<unit>`` module per unit (see ``sim``)."""
