"""Self-test of the protocol checkers (``sim.kit.checkers``): a pass-through top whose outputs
the bench drives directly, so each cocotb test plays one deliberately broken (or one
correct) stream/AXI sequence and the checker, attached by ``start_clock`` as on every
bench, must fail it. The top is called ``hcu`` and its stream ``assign`` has the HCU's
payload layout, so a changed payload is reported by field name.

``passthrough_verilog(cfg)`` is the top; tests/sim/test_checkers.py runs every test here
through ``sim.kit.runner.run_unit`` and reads each test's failure message from the results.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import FallingEdge

from hw.dre import layouts
from sim.kit.cocotb_streams import config_from_env, reset, start_clock

#: Ports of the pass-through top: (name, width, direction as seen from the DUT).
_AXI = (
    ("araddr", "a", "o"),
    ("arlen", 8, "o"),
    ("arsize", 3, "o"),
    ("arburst", 2, "o"),
    ("arid", 1, "o"),
    ("arvalid", 1, "o"),
    ("arready", 1, "i"),
    ("rdata", "d", "i"),
    ("rresp", 2, "i"),
    ("rlast", 1, "i"),
    ("rvalid", 1, "i"),
    ("rready", 1, "o"),
    ("awaddr", "a", "o"),
    ("awlen", 8, "o"),
    ("awsize", 3, "o"),
    ("awburst", 2, "o"),
    ("awid", 1, "o"),
    ("awvalid", 1, "o"),
    ("awready", 1, "i"),
    ("wdata", "d", "o"),
    ("wstrb", "s", "o"),
    ("wlast", 1, "o"),
    ("wvalid", 1, "o"),
    ("wready", 1, "i"),
    ("bresp", 2, "i"),
    ("bvalid", 1, "i"),
    ("bready", 1, "o"),
)


def passthrough_verilog(cfg) -> str:
    """Module ``hcu``: every output ``x`` is the input ``drv_x`` (the bench plays the DUT);
    ports ``assign__*`` (the HCU's result stream) and an AXI4 master ``m_axi__*``."""
    widths = {"a": cfg.axi_addr_bits, "d": cfg.axi_data_bits, "s": cfg.axi_data_bits // 8}
    ports = [("assign__valid", 1, "o"), ("assign__ready", 1, "i")]
    ports.append(("assign__payload", layouts(cfg).assign.size, "o"))
    ports += [(f"m_axi__{n}", widths.get(w, w), d) for n, w, d in _AXI]
    names, decls, body = ["clk", "rst"], ["  input clk;", "  input rst;"], []
    for name, width, d in ports:
        rng = f"[{width - 1}:0] " if width > 1 else ""
        names.append(name)
        if d == "o":
            names.append(f"drv_{name}")
            decls += [f"  output {rng}{name};", f"  input {rng}drv_{name};"]
            body.append(f"  assign {name} = drv_{name};")
        else:
            decls.append(f"  input {rng}{name};")
    return f"module hcu({', '.join(names)});\n" + "\n".join(decls + body) + "\nendmodule\n"


async def start(dut):
    """Every output (``drv_*``) and every slave-side input low, clock, checkers, reset."""
    cfg = config_from_env()
    dut.drv_assign__valid.value = 0
    dut.drv_assign__payload.value = 0
    dut.assign__ready.value = 0
    for name, _, d in _AXI:
        (
            getattr(dut, f"drv_m_axi__{name}") if d == "o" else getattr(dut, f"m_axi__{name}")
        ).value = 0
    await start_clock(dut)
    await reset(dut, idle=())
    return cfg


def drive(dut, **values) -> None:
    """Set the DUT's outputs (``drv_*``) and the slave-side inputs of this cycle."""
    for name, value in values.items():
        h = getattr(dut, f"drv_{name}") if hasattr(dut, f"drv_{name}") else getattr(dut, name)
        h.value = value


async def cycles(dut, n: int = 1) -> None:
    for _ in range(n):
        await FallingEdge(dut.clk)


async def stream_beat(dut, payload: int, *, stall: int, change: dict | None = None):
    """One ``assign`` beat held for ``stall`` cycles without ready; ``change`` = {cycle:
    outputs} mutates it while waiting."""
    drive(dut, assign__valid=1, assign__payload=payload, assign__ready=0)
    for k in range(stall):
        await cycles(dut)
        for name, value in (change or {}).get(k, {}).items():
            drive(dut, **{name: value})
    drive(dut, assign__ready=1)
    await cycles(dut)
    drive(dut, assign__valid=0, assign__ready=0)


async def ar_burst(dut, addr: int, length: int, *, stall: int = 0, change: dict | None = None):
    drive(dut, m_axi__araddr=addr, m_axi__arlen=length, m_axi__arsize=3, m_axi__arburst=1)
    drive(dut, m_axi__arid=0, m_axi__arvalid=1, m_axi__arready=0)
    for k in range(stall):
        await cycles(dut)
        for name, value in (change or {}).get(k, {}).items():
            drive(dut, **{name: value})
    drive(dut, m_axi__arready=1)
    await cycles(dut)
    drive(dut, m_axi__arvalid=0, m_axi__arready=0)


async def r_beats(dut, n: int, *, last_at: int | None = None):
    drive(dut, m_axi__rready=1)
    for i in range(n):
        drive(dut, m_axi__rvalid=1, m_axi__rlast=int(i == (n - 1 if last_at is None else last_at)))
        await cycles(dut)
    drive(dut, m_axi__rvalid=0, m_axi__rlast=0)


async def w_burst(dut, addr: int, beats: int, *, wlast_at: int | None = None):
    drive(dut, m_axi__awaddr=addr, m_axi__awlen=beats - 1, m_axi__awsize=3, m_axi__awburst=1)
    drive(dut, m_axi__awid=0, m_axi__awvalid=1, m_axi__awready=1)
    await cycles(dut)
    drive(dut, m_axi__awvalid=0, m_axi__wready=1, m_axi__wstrb=0xFF)
    for i in range(beats):
        drive(
            dut,
            m_axi__wvalid=1,
            m_axi__wdata=i,
            m_axi__wlast=int(i == (beats - 1 if wlast_at is None else wlast_at)),
        )
        await cycles(dut)
    drive(dut, m_axi__wvalid=0, m_axi__wlast=0, m_axi__bvalid=1, m_axi__bready=1)
    await cycles(dut)
    drive(dut, m_axi__bvalid=0)


@cocotb.test()
async def legal_sequences(dut):
    """Stalls, bursts up to max_burst ending at a 4 KB boundary, W with its AW, 4 reads in
    flight: no violation."""
    cfg = await start(dut)
    await stream_beat(dut, 5, stall=3)
    await stream_beat(dut, 6, stall=0)
    await ar_burst(dut, 4096 - 8 * cfg.max_burst, cfg.max_burst - 1, stall=2)
    await r_beats(dut, cfg.max_burst)
    for i in range(4):
        await ar_burst(dut, 64 * i, 1)
    for _ in range(4):
        await r_beats(dut, 2)
    await w_burst(dut, 0, 3)
    await cycles(dut, 3)


@cocotb.test()
async def stream_valid_dropped(dut):
    await start(dut)
    await stream_beat(dut, 5, stall=3, change={1: {"assign__valid": 0}})
    await cycles(dut, 3)


@cocotb.test()
async def stream_payload_changed(dut):
    lay = layouts(config_from_env()).assign
    await start(dut)
    one = lay.const({"token_id": 3, "cluster": 2, "distance": 1, "event": 1}).as_bits()
    two = lay.const({"token_id": 3, "cluster": 7, "distance": 1, "event": 1}).as_bits()
    await stream_beat(dut, one, stall=3, change={1: {"assign__payload": two}})
    await cycles(dut, 3)


@cocotb.test()
async def ar_valid_dropped(dut):
    await start(dut)
    await ar_burst(dut, 0, 3, stall=3, change={1: {"m_axi__arvalid": 0}})
    await cycles(dut, 3)


@cocotb.test()
async def ar_addr_changed(dut):
    await start(dut)
    await ar_burst(dut, 0, 3, stall=3, change={0: {"m_axi__araddr": 64}})
    await cycles(dut, 3)


@cocotb.test()
async def ar_crosses_4k(dut):
    await start(dut)
    await ar_burst(dut, 4096 - 16, 3)
    await cycles(dut, 3)


@cocotb.test()
async def ar_beyond_max_burst(dut):
    cfg = await start(dut)
    await ar_burst(dut, 0, cfg.max_burst)
    await cycles(dut, 3)


@cocotb.test()
async def rlast_early(dut):
    await start(dut)
    await ar_burst(dut, 0, 3)
    await r_beats(dut, 4, last_at=1)
    await cycles(dut, 3)


@cocotb.test()
async def reads_beyond_outstanding(dut):
    await start(dut)
    for i in range(5):
        await ar_burst(dut, 64 * i, 1)
    await cycles(dut, 3)


@cocotb.test()
async def wlast_early(dut):
    await start(dut)
    await w_burst(dut, 0, 4, wlast_at=2)
    await cycles(dut, 3)


@cocotb.test()
async def wlast_missing(dut):
    await start(dut)
    await w_burst(dut, 0, 2, wlast_at=5)
    await cycles(dut, 3)
