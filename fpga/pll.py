"""PLL settings and instances: ECP5 ``EHXPLLL`` and iCE40 ``SB_PLL40_PAD``.

``ecp5_pll(fin, target)`` / ``ice40_pll(fin, target)`` search the divider settings the way
Project Trellis' ``ecppll`` and IceStorm's ``icepll`` do (same VCO and phase-detector
ranges, simple feedback) and return the closest output frequency; the board top then runs
the system at that exact frequency (the UART divisor is computed from it).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Instance, Signal

from golden.checks import check_float

__all__ = ["PllSettings", "ecp5_pll", "ecp5_pll_instance", "ice40_pll", "ice40_pll_instance"]


@dataclass(frozen=True)
class PllSettings:
    fin_hz: float
    fout_hz: float
    #: ECP5: CLKI_DIV, CLKFB_DIV, CLKOP_DIV. iCE40: DIVR, DIVF, DIVQ, FILTER_RANGE.
    dividers: dict[str, int]


def _best(candidates, target: float, what: str, fin: float) -> PllSettings:
    best = min(
        candidates, key=lambda s: (abs(s.fout_hz - target), s.dividers["_order"]), default=None
    )
    if best is None:
        raise ValueError(
            f"target must be reachable by the {what} from {fin / 1e6:g} MHz, not {target!r}"
        )
    dividers = {k: v for k, v in best.dividers.items() if k != "_order"}
    return PllSettings(fin_hz=fin, fout_hz=best.fout_hz, dividers=dividers)


def ecp5_pll(fin: float, target: float) -> PllSettings:
    """EHXPLLL with CLKOP feedback: fout = fin / CLKI_DIV * CLKFB_DIV, VCO = fout * CLKOP_DIV
    in 400..800 MHz, phase detector fin / CLKI_DIV in 3.125..400 MHz."""
    check_float("fin", fin, positive=True)
    check_float("target", target, positive=True)

    def gen():
        for clki in range(1, 129):
            fpfd = fin / clki
            if not 3.125e6 <= fpfd <= 400e6:
                continue
            for clkfb in range(1, 81):
                fout = fpfd * clkfb
                for clkop in range(1, 129):
                    if 400e6 <= fout * clkop <= 800e6:
                        order = clki * 10000 + clkfb * 100 + clkop
                        yield PllSettings(
                            fin,
                            fout,
                            {
                                "CLKI_DIV": clki,
                                "CLKFB_DIV": clkfb,
                                "CLKOP_DIV": clkop,
                                "_order": order,
                            },
                        )
                        break

    return _best(gen(), target, "ECP5 PLL", fin)


def ice40_pll(fin: float, target: float) -> PllSettings:
    """SB_PLL40 in SIMPLE feedback: fout = fin / (DIVR+1) * (DIVF+1) / 2**DIVQ, phase
    detector 10..133 MHz, VCO 533..1066 MHz."""
    check_float("fin", fin, positive=True)
    check_float("target", target, positive=True)

    def gen():
        for divr in range(16):
            fdiv = fin / (divr + 1)
            if not 10e6 <= fdiv <= 133e6:
                continue
            filt = next(
                i for i, hi in enumerate((17e6, 26e6, 44e6, 66e6, 101e6, 1e12), 1) if fdiv < hi
            )
            for divf in range(128):
                fvco = fdiv * (divf + 1)
                if not 533e6 <= fvco <= 1066e6:
                    continue
                for divq in range(1, 7):
                    yield PllSettings(
                        fin,
                        fvco / 2**divq,
                        {
                            "DIVR": divr,
                            "DIVF": divf,
                            "DIVQ": divq,
                            "FILTER_RANGE": filt,
                            "_order": divr * 10000 + divf * 10 + divq,
                        },
                    )

    return _best(gen(), target, "iCE40 PLL", fin)


def ecp5_pll_instance(s: PllSettings, clkin, clkout: Signal, locked: Signal) -> Instance:
    d = s.dividers
    return Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{s.fin_hz / 1e6:.6f}",
        a_FREQUENCY_PIN_CLKOP=f"{s.fout_hz / 1e6:.6f}",
        a_ICP_CURRENT="12",
        a_LPF_RESISTOR="8",
        a_MFG_ENABLE_FILTEROPAMP="1",
        a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED",
        p_INTFB_WAKE="DISABLED",
        p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED",
        p_OUTDIVIDER_MUXA="DIVA",
        p_OUTDIVIDER_MUXB="DIVB",
        p_OUTDIVIDER_MUXC="DIVC",
        p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=d["CLKI_DIV"],
        p_CLKOP_ENABLE="ENABLED",
        p_CLKOP_DIV=d["CLKOP_DIV"],
        p_CLKOP_CPHASE=d["CLKOP_DIV"] - 1,
        p_CLKOP_FPHASE=0,
        p_FEEDBK_PATH="CLKOP",
        p_CLKFB_DIV=d["CLKFB_DIV"],
        i_RST=0,
        i_STDBY=0,
        i_CLKI=clkin,
        o_CLKOP=clkout,
        i_CLKFB=clkout,
        i_PHASESEL0=0,
        i_PHASESEL1=0,
        i_PHASEDIR=1,
        i_PHASESTEP=1,
        i_PHASELOADREG=1,
        i_PLLWAKESYNC=0,
        i_ENCLKOP=0,
        o_LOCK=locked,
    )


def ice40_pll_instance(s: PllSettings, pad, clkout: Signal, locked: Signal) -> Instance:
    d = s.dividers
    return Instance(
        "SB_PLL40_PAD",
        p_FEEDBACK_PATH="SIMPLE",
        p_DIVR=d["DIVR"],
        p_DIVF=d["DIVF"],
        p_DIVQ=d["DIVQ"],
        p_FILTER_RANGE=d["FILTER_RANGE"],
        i_PACKAGEPIN=pad,
        i_RESETB=1,
        i_BYPASS=0,
        o_PLLOUTGLOBAL=clkout,
        o_LOCK=locked,
    )
