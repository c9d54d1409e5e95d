"""``python -m engines.eval --config eval.json``: an evaluation without the UI (see engines/eval/__init__)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from engines.core.errors import LabError
from engines.eval.config import EvalConfig


def main(argv: list[str] | None = None) -> int:
    """``python -m engines.eval --config eval.json``: run an evaluation without the UI.

    Returns:
        0 when the run finished, 1 on a user error, 2 when stopped (interrupted).
    """
    parser = argparse.ArgumentParser(
        prog="python -m engines.eval", description="XTTS Lab: TTS -> ASR evaluation without the UI."
    )
    parser.add_argument("--config", help="JSON file with EvalConfig fields (see docs)")
    parser.add_argument("--resume", metavar="RUN_ID", help="finish a stopped run instead of starting one")
    parser.add_argument("--run-id", help="id of the new run (default: timestamp + name)")
    parser.add_argument("--workspace", help="workspace folder (default from settings)")
    parser.add_argument("--datasets-dir", help="datasets folder (default from settings)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--tiny-models", action="store_true", default=None, help="use the tiny random models")
    args = parser.parse_args(argv)
    if not args.config and not args.resume:
        parser.error("give --config FILE (or --resume RUN_ID)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from config import load_settings
    from engines import Engines

    settings = load_settings(
        {
            "workspace": args.workspace,
            "datasets_dir": args.datasets_dir,
            "device": args.device,
            "tiny_models": args.tiny_models,
        }
    )
    engines = Engines.create(settings)
    evaluation = engines.eval

    def show(fraction: float, desc: str = "") -> None:
        print(f"[{fraction * 100:5.1f}%] {desc}", file=sys.stderr, flush=True)

    try:
        if args.resume:
            final = evaluation.resume(args.resume, progress=show, log_fn=print)
        else:
            data = json.loads(Path(args.config).read_text(encoding="utf-8"))
            config = EvalConfig.from_dict(data, settings.generation)
            final = evaluation.run(config, run_id=args.run_id, progress=show, log_fn=print)
    except (LabError, json.JSONDecodeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the finished utterances are kept; resume with --resume", file=sys.stderr)
        return 2
    from engines.eval.report import summary_table_text

    print(summary_table_text(final.summary or {}))
    print(f"\nReport: {final.folder / 'report.html'}")
    print(f"Results: {final.folder / 'results.csv'}\nSummary: {final.folder / 'summary.json'}")
    return 0 if final.state == "done" else 2


if __name__ == "__main__":
    sys.exit(main())
