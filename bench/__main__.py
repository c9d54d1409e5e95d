"""Run the benchmarks:
``python -m bench [--only asr,peers,tts,overhead,stream,loop,start,clean,retake,screen,build,gpu] [--no-full] [--dry]``.

Prints one table and writes bench/results/<date>-<device>.json with the hardware it ran on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path

from bench.common import ROOT, Row, hardware

SECTIONS = ("start", "asr", "peers", "tts", "overhead", "stream", "loop", "clean", "retake", "screen", "build", "gpu")


def _table(rows: list[Row]) -> str:
    lines = [f"{'bench':6} {'case':78} {'value':>10} {'unit':12} note", "-" * 130]
    for r in rows:
        value = "not measured" if r.value is None else f"{r.value:10.3f}"
        lines.append(f"{r.bench:6} {r.case[:78]:78} {value:>10} {r.unit:12} {r.note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma list of: " + ", ".join(SECTIONS))
    parser.add_argument("--no-full", action="store_true", help="skip full-size architectures (faster)")
    parser.add_argument(
        "--dry", action="store_true", help="gpu section only: reduced sizes on any device, proves the plumbing"
    )
    parser.add_argument("--out", type=Path, help="JSON output path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sys.path.insert(0, str(ROOT))
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    rows: list[Row] = []
    for section in wanted:
        print(f"== running {section} ...", flush=True)
        if section == "start":
            from bench import app_start

            rows += app_start.run()
        elif section == "asr":
            from bench import asr_batch

            rows += asr_batch.run(full=not args.no_full)
        elif section == "peers":
            from bench import asr_peers

            rows += asr_peers.run(full=not args.no_full)
        elif section == "tts":
            from bench import tts_speed

            rows += tts_speed.run(full=not args.no_full)
        elif section == "stream":
            from bench import tts_stream

            rows += tts_stream.run(full=not args.no_full)
        elif section == "loop":
            from bench import eval_loop

            rows += eval_loop.run()
        elif section == "clean":
            from bench import cleanup_speed

            rows += cleanup_speed.run(full=not args.no_full)
        elif section == "retake":
            from bench import retake_overhead

            rows += retake_overhead.run(full=not args.no_full)
        elif section == "screen":
            from bench import dataset_screening

            rows += dataset_screening.run(seconds=60.0 if args.no_full else 180.0)
        elif section == "overhead":
            from bench import tts_overhead

            rows += tts_overhead.run(full=not args.no_full)
        elif section == "gpu":
            from bench import gpu

            rows += gpu.run(full=not args.no_full, dry=args.dry)
        elif section == "build":
            from bench import dataset_build

            rows += dataset_build.run(full=not args.no_full)
        else:
            parser.error(f"unknown section {section!r}")
        print(_table(rows), flush=True)
    hw = hardware()
    print("\nhardware:", json.dumps(hw))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "bench" / "results" / f"{stamp}-{'gpu' if hw.get('cuda') else 'cpu'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"hardware": hw, "rows": [r.as_dict() for r in rows]}, indent=2) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
