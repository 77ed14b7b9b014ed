"""Technology scaling of area, delay and power to the paper's node (14 nm, 0.8 V).

Model: A. Stillmaker and B. Baas, "Scaling equations for the accurate prediction of CMOS
device performance from 180 nm to 7 nm", Integration, the VLSI Journal 58 (2017) 74-81,
doi:10.1016/j.vlsi.2017.02.002. Its Table of area factors and its fitted polynomials of
supply voltage for delay (cubic), energy per operation (quadratic) and power (quadratic;
we apply it to static/leakage power) for each node, fitted to HSPICE runs of PTM/ITRS
models. The coefficients below are the paper's, as transcribed in the MIT-licensed
``nodeScale`` tool of the UCLA NanoCAD Lab (W. Romaszkan, 2021).

How a figure moves from ``src`` (node, V) to ``dst`` (node, V):
- area × A(dst)/A(src); delay × D_dst(V_dst)/D_src(V_src), so fmax × the inverse;
- dynamic energy per cycle × E_dst(V_dst)/E_src(V_src); dynamic power is then quoted at a
  stated frequency: P_dst(f) = P_src(f_src) · (E ratio) · f / f_src;
- leakage × P_dst(V_dst)/P_src(V_src).

Everything this module returns is an estimate and the reports label it so, next to the
raw figures of the real 0.18 µm library. SRAM macros are scaled with the same factors,
although bitcells scale differently from logic.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CITATION",
    "PAPER_NODE",
    "SOURCE_NODE",
    "Node",
    "ScaleFactors",
    "factors",
    "scale_figures",
]

CITATION = (
    "Stillmaker & Baas, 'Scaling equations for the accurate prediction of CMOS device "
    "performance from 180 nm to 7 nm', Integration VLSI J. 58 (2017) 74-81"
)

#: Area of a design at each node relative to 180 nm (the paper's area scaling table).
_AREA_VS_180 = {
    "180": 1.0,
    "130": 1 / 2.9,
    "90": 1 / 6.6,
    "65": 1 / 12,
    "45": 1 / 19,
    "32": 1 / 40,
    "20": 1 / 88,
    "16": 1 / 99,
    "14": 1 / 110,
    "10": 1 / 180,
    "7": 1 / 320,
}

#: Per node: delay (a3, a2, a1, a0), energy (b2, b1, b0), power (c2, c1, c0) in V.
_COEFFS: dict[str, tuple[float, ...]] = {
    "180": (0, 97.09, -356.7, 406.5, 0, 24.64, -17.98, 0, 101000, -79720),
    "130": (-76.65, 334.9, -493.4, 275.8, 7.171, -6.709, 2.904, 27020, -15450, 5630),
    "90": (-60.34, 262.5, -384.2, 210.9, 4.762, -4.781, 2.092, 17320, -11230, 4328),
    "65": (-53.3, 230.4, -333.9, 178.6, 3.755, -4.398, 1.975, 12890, -10510, 4362),
    "HP45": (-501.6, 1567, -1619, 566.1, 1.018, -0.3107, 0.1539, 5462, -1760, 522.4),
    "HP32": (-1047, 2982, -2797, 873.5, 0.8367, -0.4341, 0.1701, 4001, -1733, 533.6),
    "LP45": (-285.7, 1239, -1795, 898.8, 1.103, -0.362, 0.2767, 6297, -3009, 1124),
    "LP32": (-325.9, 1374, -1922, 913.2, 0.9559, -0.7823, 0.471, 4557, -3037, 1323),
    "HP20": (0, 34.63, -66.37, 41.15, 0.373, -0.1582, 0.04104, 2922, -1286, 299.9),
    "HP16": (0, 24.8, -47.52, 28.87, 0.2958, -0.1241, 0.03024, 2133, -882.6, 197.7),
    "HP14": (-40.66, 109.2, -100.6, 35.92, 0.2363, -0.09675, 0.02239, 1675, -711, 159),
    "HP10": (-34.95, 93.65, -85.99, 30.4, 0.2068, -0.09311, 0.02375, 1456, -621.6, 143.8),
    "HP7": (-28.58, 76.6, -70.26, 24.69, 0.1776, -0.09097, 0.02447, 1179, -515.7, 123.4),
    "LP20": (-160.5, 514.1, -558.6, 217.5, 0.2632, -0.14, 0.06841, 2096, -962.4, 287.1),
    "LP16": (-114.6, 366.7, -397.4, 153.6, 0.2139, -0.1187, 0.05639, 1609, -715.5, 205.7),
    "LP14": (-85.37, 271.6, -292.2, 111.4, 0.1556, -0.06472, 0.03066, 1259, -554.1, 152.3),
    "LP10": (-71.76, 228.6, -246.3, 93.91, 0.1261, -0.0518, 0.02769, 1046, -422.7, 118.9),
    "LP7": (-61.79, 196.1, -210.3, 79.55, 0.09365, -0.03409, 0.02043, 815.2, -307.3, 87.54),
}


@dataclass(frozen=True)
class Node:
    """A technology point: node name of the model ("180", "HP14", ...) and supply in V."""

    name: str
    vdd: float

    def __post_init__(self) -> None:
        if self.name not in _COEFFS:
            raise ValueError(f"node must be one of {', '.join(_COEFFS)}, not {self.name!r}")
        if not 0.3 <= self.vdd <= 2.0:
            raise ValueError(f"vdd must be in 0.3..2.0 V, not {self.vdd!r}")

    @property
    def area_key(self) -> str:
        return self.name.removeprefix("HP").removeprefix("LP")

    @property
    def label(self) -> str:
        nm = self.area_key
        flavour = (
            " HP" if self.name.startswith("HP") else " LP" if self.name.startswith("LP") else ""
        )
        return f"{nm} nm{flavour}, {self.vdd:g} V"

    def delay(self) -> float:
        a3, a2, a1, a0 = _COEFFS[self.name][0:4]
        v = self.vdd
        return a3 * v**3 + a2 * v**2 + a1 * v + a0

    def energy(self) -> float:
        b2, b1, b0 = _COEFFS[self.name][4:7]
        v = self.vdd
        return b2 * v**2 + b1 * v + b0

    def power(self) -> float:
        c2, c1, c0 = _COEFFS[self.name][7:10]
        v = self.vdd
        return c2 * v**2 + c1 * v + c0


#: The library the flow synthesises to: OSU 0.18 µm at its nominal 1.8 V.
SOURCE_NODE = Node("180", 1.8)
#: The paper's implementation point: 14 nm (high-performance flavour), 0.8 V.
PAPER_NODE = Node("HP14", 0.8)


@dataclass(frozen=True)
class ScaleFactors:
    """Multipliers from ``src`` to ``dst``."""

    src: Node
    dst: Node
    area: float
    delay: float
    energy: float
    static_power: float


def factors(src: Node = SOURCE_NODE, dst: Node = PAPER_NODE) -> ScaleFactors:
    """The area, delay, dynamic-energy and static-power multipliers from ``src`` to ``dst``."""
    return ScaleFactors(
        src=src,
        dst=dst,
        area=_AREA_VS_180[dst.area_key] / _AREA_VS_180[src.area_key],
        delay=dst.delay() / src.delay(),
        energy=dst.energy() / src.energy(),
        static_power=dst.power() / src.power(),
    )


def scale_figures(
    *,
    area_um2: float,
    fmax_mhz: float | None,
    dynamic_w: float,
    leakage_w: float,
    clock_mhz: float,
    target_mhz: float = 800.0,
    src: Node = SOURCE_NODE,
    dst: Node = PAPER_NODE,
) -> dict[str, object]:
    """Scaled figures of one module (an estimate): area in mm², fmax, power at ``target_mhz``.

    ``dynamic_w`` is the raw dynamic power at ``clock_mhz`` (the activity simulation's and
    STA's clock); the scaled dynamic power is quoted at ``target_mhz`` (the paper's 800 MHz).
    """
    if clock_mhz <= 0 or target_mhz <= 0:
        raise ValueError(f"clock frequencies must be positive, not {clock_mhz!r}, {target_mhz!r}")
    f = factors(src, dst)
    dyn = dynamic_w * f.energy * (target_mhz / clock_mhz)
    leak = leakage_w * f.static_power
    fmax = fmax_mhz / f.delay if fmax_mhz is not None else None
    return {
        "label": "estimate",
        "node": dst.label,
        "model": CITATION,
        "factors": {
            "area": f.area,
            "delay": f.delay,
            "energy": f.energy,
            "static_power": f.static_power,
        },
        "area_mm2": area_um2 * 1e-6 * f.area,
        "fmax_mhz": fmax,
        "target_mhz": target_mhz,
        "meets_target": fmax is not None and fmax >= target_mhz,
        "dynamic_w": dyn,
        "leakage_w": leak,
        "total_w": dyn + leak,
    }
