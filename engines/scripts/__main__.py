"""``python -m engines.scripts generate NAME [--workspace DIR] [--tiny-models]``: generate a script project
headless (resumes: lines already done are skipped). ``export NAME --format mp3`` joins it with captions."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.scripts")
    parser.add_argument("action", choices=("generate", "export", "status"))
    parser.add_argument("name", help="the project (a folder under workspace/scripts)")
    parser.add_argument("--workspace", type=Path, help="the workspace folder (default: the app's)")
    parser.add_argument("--tiny-models", action="store_true", help="use the tiny random models (tests)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--format", default="wav", help="export format: wav, flac, mp3")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from config import load_settings
    from engines import Engines
    from engines.core.errors import LabError
    from engines.scripts.generate import pending_lines
    from engines.scripts.studio import ScriptStudio

    cli = {"workspace": args.workspace, "tiny_models": True if args.tiny_models else None, "device": args.device}
    settings = load_settings(cli)
    engines = Engines.create(settings)
    studio = ScriptStudio(settings, engines.tts, engines.asr)
    try:
        if args.action == "generate":
            summary = studio.generate(args.name, log_fn=print)
            print(summary.message(), flush=True)
        elif args.action == "export":
            done = studio.export(args.name, args.format)
            print(f"{done.audio}\n{done.srt}\n{done.vtt}")
        else:
            project = studio.store.load(args.name)
            left = pending_lines(studio.store, project, studio.pronunciation())
            print(f"{len(project.lines) - len(left)}/{len(project.lines)} line(s) done")
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
