"""``python -m formal``: run the formal tasks and write build/formal/report.{json,md}.

    python -m formal                  # every task
    python -m formal --task hcu_model --task wtu_stream
    python -m formal --quick          # the tasks make test runs
    python -m formal --list

Exits 1 when any task does not PASS (FAIL, UNKNOWN, TIMEOUT or ERROR), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .sby import SCRIPT, run_task
from .tasks import TASKS


def _table(rows: list[dict]) -> str:
    head = "| task | mode | depth | result | seconds | detail |\n|---|---|---|---|---|---|\n"
    return head + "".join(
        f"| {r['task']} | {r['mode']} | {r['depth']} | {r['status']} | {r['seconds']:.1f} | "
        f"{r['detail'].replace('|', '/')} |\n"
        for r in rows
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m formal", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--task",
        action="append",
        metavar="NAME",
        help=f"run only this task (repeatable): {', '.join(TASKS)}",
    )
    ap.add_argument("--quick", action="store_true", help="only the quick tasks (make test)")
    ap.add_argument("--list", action="store_true", help="list the tasks and exit")
    ap.add_argument("-o", "--out", default="build/formal", help="output directory")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per task (default 600)")
    args = ap.parse_args(argv)
    if args.list:
        for t in TASKS.values():
            print(f"{t.name:14s} {t.mode:6s} depth {t.depth:3d}  {t.about}")
        return 0
    names = args.task or [n for n, t in TASKS.items() if t.quick or not args.quick]
    bad = [n for n in names if n not in TASKS]
    if bad:
        ap.error(f"--task must be one of {', '.join(TASKS)}, not {bad[0]!r}")
    if args.timeout < 1:
        ap.error(f"--timeout must be a positive integer, not {args.timeout!r}")
    out = Path(args.out)
    rows = []
    t0 = time.monotonic()
    for i, name in enumerate(names, 1):
        t = TASKS[name]
        print(f"[formal] {i}/{len(names)} {name} ({t.mode}, depth {t.depth}) ...", flush=True)
        res = run_task(
            name,
            t.build(),
            out / name,
            mode=t.mode,
            depth=t.depth,
            timeout=args.timeout,
            script=SCRIPT,
        )
        print(f"[formal]   {res.status} in {res.seconds:.1f} s: {res.detail}", flush=True)
        rows.append(res.as_dict() | {"about": t.about})
    out.mkdir(parents=True, exist_ok=True)
    failed = [r["task"] for r in rows if r["status"] != "PASS"]
    report = {"tasks": rows, "seconds": round(time.monotonic() - t0, 1), "failed": failed}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    md = "# Formal verification report\n\n" + _table(rows)
    md += "\nModes: prove = k-induction (unbounded), bmc = bounded to depth steps from reset, "
    md += "cover = every Cover reached within depth. See docs/formal.md.\n"
    (out / "report.md").write_text(md)
    print("\n" + _table(rows))
    print(f"[formal] {len(rows) - len(failed)}/{len(rows)} PASS; report in {out}/report.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
