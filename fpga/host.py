"""Host client of the board system: speaks ``fpga.protocol`` and checks the DRE against golden.

The client is written once, with ``async`` I/O on a port object that has
``async write(data: bytes)`` and ``async read(n: int) -> bytes``, so the very same code runs
against a real board (``SerialPort``, pyserial), the cocotb bench (UART bits on the
simulated pins, ``sim.benches.tb_fpga``) and the Amaranth simulator (byte streams,
``tests/fpga/test_bridge.py``).

On a board (see README, "FPGA builds"):

    python -m fpga.host --port /dev/ttyUSB0 --board ulx3s --config tiny --tokens 2000 --rows 50

clusters ``--tokens`` synthetic signatures (with context clears) on the HCU and selects
``--rows`` score rows on the WTU, compares every output with the golden model
(``golden.resv`` through ``sim.cases.dre``), prints the performance counters and exits
non-zero on any mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from hw.dre import dre_wtu_config, layouts
from sim.cases.dre import HCUStream, ScoreRow, hcu_expected, hcu_stream, score_row, wtu_expected

from .config import FPGAConfig
from .protocol import (
    CYCLES_BYTES,
    LENGTH_BYTES,
    ErrorCode,
    Op,
    Reply,
    info_value,
    pack,
    protocol,
    unpack,
)

__all__ = [
    "BoardError",
    "CheckReport",
    "HostClient",
    "Port",
    "SerialPort",
    "check_against_golden",
    "main",
]


class Port(Protocol):
    async def write(self, data: bytes) -> None: ...

    async def read(self, n: int) -> bytes: ...


class BoardError(RuntimeError):
    """The board refused a request (an ``E`` reply) or answered out of protocol."""

    def __init__(self, message: str, code: ErrorCode | None = None):
        super().__init__(message)
        self.code = code


class HostClient:
    """One request at a time, each reply checked; ``fcfg`` must be the board's config."""

    def __init__(self, port: Port, fcfg: FPGAConfig):
        self.port, self.fcfg = port, fcfg
        self.p, self.lay = protocol(fcfg), layouts(fcfg.hw)

    async def request(self, op: Op | int, args: bytes = b"", reply_bytes: int = 0) -> bytes:
        """Send ``op`` + ``args``; return the reply's bytes after ``K``."""
        code = op.value if isinstance(op, Op) else int(op)
        await self.port.write(bytes([code]) + args)
        return await self._reply(code, reply_bytes)

    async def _reply(self, code: int, reply_bytes: int) -> bytes:
        status = (await self.port.read(1))[0]
        if status == Reply.ERROR.value:
            err = ErrorCode((await self.port.read(1))[0])
            raise BoardError(f"the board refused request {chr(code)!r}: {err.name}", err)
        if status != Reply.OK.value:
            raise BoardError(f"request {chr(code)!r}: reply starts with {status:#04x}, not 'K'")
        return await self.port.read(reply_bytes) if reply_bytes else b""

    def _check_n(self, n: int) -> bytes:
        if not 1 <= n <= self.fcfg.depth:
            raise ValueError(f"n must be in 1..{self.fcfg.depth}, not {n!r}")
        return n.to_bytes(LENGTH_BYTES, "little")

    async def info(self) -> dict[str, int]:
        """The board's ``info`` record; ``BoardError`` when it is not ``fcfg``'s."""
        raw = await self.request(Op.INFO, reply_bytes=self.p.info_bytes)
        got = unpack(self.p.info, raw)
        got = {name: int(getattr(got, name)) for name in info_value(self.fcfg)}
        want = info_value(self.fcfg)
        if got != want:
            diff = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
            raise BoardError(f"the board's configuration differs (board, host): {diff}")
        return got

    async def load(self, records: list[int]) -> None:
        """Input slots 0..n-1 := ``records`` (raw bits of ``token``/``cluster_score``)."""
        head = self._check_n(len(records))
        body = b"".join(r.to_bytes(self.p.in_bytes, "little") for r in records)
        await self.port.write(bytes([Op.LOAD.value]) + head + body)
        await self._reply(Op.LOAD.value, 0)

    async def run_hcu(self, n: int) -> int:
        """Cluster input slots 0..n-1; returns the run's cycles."""
        raw = await self.request(Op.RUN_HCU, self._check_n(n), CYCLES_BYTES)
        return int.from_bytes(raw, "little")

    async def run_wtu(self, n: int, coverage_q: int) -> tuple[int, int]:
        """Select over input slots 0..n-1; returns (cycles, clusters selected)."""
        cmd = pack(self.lay.wtu_cmd, {"coverage_q": coverage_q})
        raw = await self.request(Op.RUN_WTU, self._check_n(n) + cmd, CYCLES_BYTES + LENGTH_BYTES)
        cycles, k = raw[:CYCLES_BYTES], raw[CYCLES_BYTES:]
        return int.from_bytes(cycles, "little"), int.from_bytes(k, "little")

    async def read(self, n: int) -> list[int]:
        raw = await self.request(Op.READ, self._check_n(n), n * self.p.out_bytes)
        b = self.p.out_bytes
        return [int.from_bytes(raw[i * b : (i + 1) * b], "little") for i in range(n)]

    async def count(self, cluster: int) -> int:
        cid = int(cluster).to_bytes(LENGTH_BYTES, "little")
        raw = await self.request(Op.COUNT, cid, self.p.count_bytes)
        return int.from_bytes(raw, "little")

    async def stats(self):
        return unpack(self.p.stats, await self.request(Op.STATS, reply_bytes=self.p.stats_bytes))

    # High level -------------------------------------------------------------------------

    async def cluster(self, stream: HCUStream, first_id: int = 0) -> tuple[list, list[int]]:
        """Every token of ``stream`` through the HCU in runs of at most ``depth`` tokens;
        returns the ``assign`` views and the cycles of each run."""
        assigns, cycles = [], []
        tid_mask = (1 << self.fcfg.hw.token_id_bits) - 1
        for lo in range(0, len(stream), self.fcfg.depth):
            hi = min(len(stream), lo + self.fcfg.depth)
            records = [
                self.lay.token.const(
                    {
                        "token_id": (first_id + t) & tid_mask,
                        "signature": int(stream.sigs[t]),
                        "clear": int(stream.clear[t]),
                    }
                ).as_bits()
                for t in range(lo, hi)
            ]
            await self.load(records)
            cycles.append(await self.run_hcu(hi - lo))
            assigns += [self.lay.assign.from_bits(r) for r in await self.read(hi - lo)]
        return assigns, cycles

    async def select(self, row: ScoreRow) -> tuple[list, Any, int]:
        """One WTU row; returns the ``selected`` views, the WTU summary and the cycles."""
        records = [
            self.lay.cluster_score.const(
                {"cluster": c, "score": int(s), "count": int(k), "last": 0}
            ).as_bits()
            for c, (s, k) in enumerate(zip(row.scores, row.counts, strict=True))
        ]
        await self.load(records)
        cycles, k = await self.run_wtu(len(records), row.coverage_q)
        selected = [self.lay.selected.from_bits(r) for r in await self.read(k)] if k else []
        return selected, (await self.stats()).summary, cycles


@dataclass
class CheckReport:
    """What ``check_against_golden`` compared, and every mismatch it found."""

    tokens: int = 0
    rows: int = 0
    counts_checked: int = 0
    hcu_cycles: list[int] = field(default_factory=list)
    wtu_cycles: list[int] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def compare(self, what: str, got: Any, want: Any) -> None:
        if got != want:
            self.mismatches.append(f"{what}: board {got!r}, golden {want!r}")


async def check_against_golden(
    client: HostClient,
    *,
    tokens: int,
    rows: int,
    seed: int,
    contexts: int = 2,
    log=print,
) -> CheckReport:
    """Cluster ``tokens`` synthetic signatures and select ``rows`` score rows on the board;
    compare every output field, the HCU's counts and the WTU summaries with golden."""
    cfg = client.fcfg.hw
    rep = CheckReport()
    await client.info()
    if tokens:
        # Twice as many sources as table entries: the table fills and forced joins happen.
        stream = hcu_stream(
            cfg,
            tokens,
            seed=seed,
            redundancy=0.6,
            sources=2 * cfg.max_clusters,
            contexts=min(contexts, tokens),
        )
        # The first token clears the table, whatever the board did before.
        stream = HCUStream(sigs=stream.sigs, clear=np.r_[True, stream.clear[1:]])
        assigns, rep.hcu_cycles = await client.cluster(stream)
        exp = hcu_expected(cfg, stream)
        got = [(int(a.cluster), int(a.distance), int(a.event.value)) for a in assigns]
        want = list(
            zip(exp.cluster.tolist(), exp.distance.tolist(), exp.event.tolist(), strict=True)
        )
        tid_mask = (1 << cfg.token_id_bits) - 1
        for t, (g, w) in enumerate(zip(got, want, strict=True)):
            rep.compare(f"token {t} (cluster, distance, event)", g, w)
            rep.compare(f"token {t} id", int(assigns[t].token_id), t & tid_mask)
        for c in range(exp.occupancy):
            rep.compare(f"count of cluster {c}", await client.count(c), int(exp.counts[c]))
        rep.counts_checked = exp.occupancy
        st = await client.stats()
        rep.compare("occupancy", int(st.occupancy), exp.occupancy)
        rep.compare("forced joins", int(st.forced), exp.forced)
        rep.tokens = tokens
        log(f"[fpga.host] HCU: {tokens} tokens, {exp.occupancy} clusters, cycles {rep.hcu_cycles}")
    kinds = ("normal", "ties", "one_bucket", "extremes", "wide")
    rng = np.random.default_rng(seed)
    for i in range(rows):
        n = (
            cfg.max_clusters
            if i == 0
            else 1
            if i == 1
            else int(rng.integers(1, cfg.max_clusters + 1))
        )
        row = score_row(cfg, n, seed=seed * 1000 + i, kind=kinds[i % len(kinds)])
        selected, summary, cycles = await client.select(row)
        exp = wtu_expected(dre_wtu_config(cfg), row)  # the DRE's one-lane WTU
        rep.compare(f"row {i} selected", [int(s.cluster) for s in selected], exp.selected.tolist())
        rep.compare(
            f"row {i} last flags",
            [int(s.last) for s in selected],
            [int(j == len(selected) - 1) for j in range(len(selected))],
        )
        rep.compare(
            f"row {i} summary (b*, scanned, k, M, theta, error)",
            (
                int(summary.b_star),
                int(summary.buckets_scanned),
                int(summary.n_selected),
                int(summary.total_mass),
                int(summary.threshold),
                int(summary.error),
            ),
            (
                exp.b_star,
                exp.buckets_scanned,
                exp.clusters_emitted,
                exp.total_mass,
                exp.threshold,
                0,
            ),
        )
        rep.wtu_cycles.append(cycles)
        rep.rows += 1
    if rows:
        log(f"[fpga.host] WTU: {rows} rows, cycles {rep.wtu_cycles}")
    return rep


class SerialPort:
    """``Port`` over a pyserial port; a short read is a ``TimeoutError`` naming the port."""

    def __init__(self, name: str, baud: int, timeout: float = 2.0):
        import serial  # pyserial, only needed on a real board

        self.name = name
        # serial_for_url takes device paths and pyserial URLs alike (``loop://`` in tests).
        self.serial = serial.serial_for_url(name, baudrate=baud, timeout=timeout)
        self.serial.reset_input_buffer()

    async def write(self, data: bytes) -> None:
        self.serial.write(data)

    async def read(self, n: int) -> bytes:
        data = self.serial.read(n)
        if len(data) != n:
            raise TimeoutError(f"{self.name}: {len(data)} of {n} bytes before the time-out")
        return data


def main(argv: list[str] | None = None) -> int:
    from .boards import BOARDS, board_config

    ap = argparse.ArgumentParser(prog="python -m fpga.host", description=__doc__.split("\n")[0])
    ap.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB0")
    ap.add_argument("--board", required=True, help=f"one of {', '.join(BOARDS)}")
    ap.add_argument("--config", default="tiny", help="the hw preset the bitstream was built with")
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        fcfg = board_config(args.board, args.config)
        client = HostClient(SerialPort(args.port, fcfg.baud), fcfg)
        rep = asyncio.run(
            check_against_golden(client, tokens=args.tokens, rows=args.rows, seed=args.seed)
        )
        st = asyncio.run(client.stats())
    except (ValueError, BoardError, TimeoutError, OSError) as exc:
        print(f"fpga.host: {exc}", file=sys.stderr)
        return 2
    print(
        f"[fpga.host] {rep.tokens} tokens, {rep.counts_checked} counts, {rep.rows} rows "
        f"compared with golden: {len(rep.mismatches)} mismatches; last run {int(st.cycles)} "
        f"cycles at {fcfg.clock_hz / 1e6:.2f} MHz"
    )
    for line in rep.mismatches[:20]:
        print("  " + line)
    return 1 if rep.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
