"""Run the peers' client-side test suites against XTTS Lab (tiny mode) and write a per-test table.

    .venv/bin/python -m tests.peers.run_peers --peers-dir /work/peers [--suite speaches] [--out table.md]

The checkouts live outside this repository (see tests/peers/README.md). Each suite runs in its own
pytest process (one at a time), with its own tests and assertions untouched: only fixtures, model
and voice names and the server URL are changed (plugin_<suite>.py, RENAMES below). Every failure is
given one class from CLASSIFIED, or UNCLASSIFIED until someone looks at it:

- OURS: a defect in our API (to be fixed, with our own test)
- EXTENSION: a feature or choice only that peer documents (not OpenAI's API)
- WEIGHTS: needs real XTTS weights (intelligible speech), not the tiny random model
- MOCK: the test asserts mock-server behaviour (accepts anything), not OpenAI's
- NOT-RUN: the module could not be collected here for a reason that is not our API (said in the row)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SITE = "site"  # extra test dependencies of the peers, pip-installed with --target under the peers' folder

# The peers' model and voice names -> ours (tiny mode: model "tiny", speakers "Tiny Alice"/"Tiny Bob";
# the real Whisper tiny.en from ../shared is listed as "whisper-tiny.en").
KOKORO_VOICES = ("af_heart", "af_bella", "bf_emma", "ef_dora", "ff_siwis", "if_sara", "pf_dora", "hf_alpha")
RENAMES: dict[str, dict[str, str]] = {
    "speaches": {
        "Systran/faster-whisper-tiny.en": "whisper-tiny.en",
        "speaches-ai/Kokoro-82M-v1.0-ONNX": "tiny",
        "af_heart": "Tiny Alice",
    },
    "openai-python": {},
    "Kokoro-FastAPI": {
        **dict.fromkeys(KOKORO_VOICES, "Tiny Alice"),
        "jf_alpha": "Tiny Alice",
        "zf_xiaobei": "Tiny Alice",
    },
}


@dataclasses.dataclass(frozen=True)
class Row:
    suite: str
    test: str
    outcome: str  # passed / failed / skipped
    message: str = ""
    cls: str = ""
    why: str = ""


# (suite, regex on the test id, class, one line). First match wins; only failures are classified.
CLASSIFIED: list[tuple[str, str, str, str]] = [
    # speaches
    (
        "speaches",
        r"^::tests\.(auth|model_manager|realtime_api|vad|diarization)_test$",
        "EXTENSION",
        "imports speaches' own server (server auth config, model manager, Realtime API, VAD, pyannote diarization)",
    ),
    (
        "speaches",
        r"^::tests\.openai_transcription_test$",
        "NOT-RUN",
        "imports speaches.routers.stt (their server and its dependencies) for one constant; not collected here",
    ),
    ("speaches", r"api_chat_test::", "EXTENSION", "chat completions with audio (speaches proxies a chat model)"),
    ("speaches", r"speech_embedding_test::", "EXTENSION", "speaker embeddings (pyannote models; speaches only)"),
    (
        "speaches",
        r"test_api_json_response_format_and_timestamp_granularities_combinations",
        "EXTENSION",
        "speaches accepts 'word' with json; OpenAI answers 400 (their own OpenAI record, which we pass, says so)",
    ),
    (
        "speaches",
        r"test_api_verbose_json_response_format_and_timestamp_granularities_combinations",
        "EXTENSION",
        "speaches adds segments for ['word'] alone; OpenAI omits them (their own OpenAI record, which we pass)",
    ),
    (
        "speaches",
        r"test_speech_sse_stream_format",
        "EXTENSION",
        "speaches names the done event's usage 'token_usage'; OpenAI's is 'usage' (which we send)",
    ),
    (
        "speaches",
        r"test_speech_default_stream_format_is_audio",
        "EXTENSION",
        "expects the bare 'audio/pcm'; ours is 'audio/pcm;rate=24000;channels=1' (documented, same type)",
    ),
    (
        "speaches",
        r"test_transcription_vtt",
        "EXTENSION",
        "speaches sends vtt as text/vtt; OpenAI sends text/plain for text, srt and vtt (so do we)",
    ),
    # openai-python: generated tests written for their Prism mock server, which accepts any bytes
    (
        "openai-python",
        r"with_all_params_overload_[12]",
        "MOCK",
        "sends timestamp_granularities=['word'] with response_format='json': OpenAI answers 400, so do we",
    ),
    (
        "openai-python",
        r"test_(transcriptions|translations)",
        "MOCK",
        "uploads b'Example data' (not audio): OpenAI answers 400 invalid file, so do we; Prism accepts it",
    ),
    # Kokoro-FastAPI
    ("Kokoro-FastAPI", r"test_tts_roundtrip", "WEIGHTS", "needs intelligible speech; tiny XTTS speaks noise"),
    (
        "Kokoro-FastAPI",
        r"test_rate_tag|test_alias_rate|test_ssml_prosody",
        "EXTENSION",
        "Kokoro's [rate:] tags, voice_aliases and /dev/ssml",
    ),
    ("Kokoro-FastAPI", r"test_voices_legacy_shape", "EXTENSION", "Kokoro's GET /v1/audio/voices?legacy=true"),
]


def classify(row: Row) -> Row:
    if row.outcome != "failed":
        return row
    for suite, pattern, cls, why in CLASSIFIED:
        if suite == row.suite and re.search(pattern, row.test):
            return dataclasses.replace(row, cls=cls, why=why)
    return dataclasses.replace(row, cls="UNCLASSIFIED", why=row.message[:160])


# --------------------------------------------------------------------------------------- pytest suites


@dataclasses.dataclass(frozen=True)
class PytestSuite:
    name: str
    checkout: str  # folder under --peers-dir
    args: tuple[str, ...]
    plugin: str
    pythonpath: tuple[str, ...] = ()  # relative to the checkout
    env: Callable[[str], dict[str, str]] = lambda url: {}


SUITES = {
    "speaches": PytestSuite(
        "speaches",
        "speaches",
        ("tests", "--noconftest", "-o", "addopts=", "--continue-on-collection-errors"),
        "plugin_speaches",
        pythonpath=("src",),  # their tests import a few constants from speaches.api_types
    ),
    "openai-python": PytestSuite(
        "openai-python",
        "openai-python",
        ("tests/api_resources/audio", "-o", "addopts=", "-W", "ignore::DeprecationWarning"),
        "plugin_openai",
        pythonpath=("src",),  # the SDK their tests were written for
        env=lambda url: {"TEST_API_BASE_URL": f"{url}/v1"},
    ),
    "Kokoro-FastAPI": PytestSuite(
        "Kokoro-FastAPI",
        "Kokoro-FastAPI",
        ("api/tests/integration", "--noconftest", "-o", "addopts=", "-m", "integration"),
        "plugin_kokoro",
    ),
}


def _parse_junit(suite: str, path: Path) -> list[Row]:
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = "failed", (child.get("message") or child.text or "").strip()
            elif child.tag == "skipped" and outcome == "passed":
                outcome, message = "skipped", (child.get("message") or "").strip()
        rows.append(Row(suite, test, outcome, " ".join(message.split())))
    return rows


def run_pytest_suite(suite: PytestSuite, peers: Path, url: str, work: Path) -> list[Row]:
    checkout = peers / suite.checkout
    junit = work / f"{suite.name}.xml"
    paths = [str(peers / SITE), str(HERE), *(str(checkout / p) for p in suite.pythonpath)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "XTTSLAB_PEER_URL": url,
        "XTTSLAB_PEER_RENAMES": json.dumps(RENAMES.get(suite.name, {})),
        "OPENAI_API_KEY": "cant-be-empty",
        **suite.env(url),
    }
    cmd = [sys.executable, "-m", "pytest", *suite.args, "-p", suite.plugin, "-p", "no:cacheprovider"]
    cmd += ["-q", "--timeout=600", f"--junitxml={junit}", "-o", "junit_family=xunit1"]
    log = work / f"{suite.name}.log"
    with log.open("w") as out:
        subprocess.run(cmd, cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if not junit.is_file():
        return [Row(suite.name, "(collection)", "failed", f"pytest wrote no report; see {log}")]
    return _parse_junit(suite.name, junit)


# ------------------------------------------------------------------------------------ openedai-speech

# test_voices.sh plays each response with mpv: an mpv on PATH that keeps what it is given stands in.
_MPV = '#!/bin/sh\nn=$(ls "$MPV_DIR" | wc -l)\ncat > "$MPV_DIR/$(printf %03d "$n").audio"\n'
VOICES = ("alloy", "echo", "fable", "onyx", "nova", "shimmer")
# The order test_voices.sh plays things in; the OpenAI CDN sample of each voice is not ours to test.
VOICES_PLAYS = (
    ["intro echo"]
    + [f"{v} {kind}" for v in VOICES for kind in ("original echo", "cdn sample", "tts-1", "tts-1-hd")]
    + ["onyx speed 0.25 tts-1", "onyx speed 0.25 tts-1-hd", "nova speed 4.0 tts-1", "nova speed 4.0 tts-1-hd"]
)
SAY_CASES = (
    ("mp3 default", ["-t", "Hello from say.py."]),
    ("aac", ["-f", "aac", "-t", "Hello from say.py."]),
    ("opus", ["-f", "opus", "-t", "Hello from say.py."]),
    ("flac echo speed 2", ["-f", "flac", "-v", "echo", "-s", "2.0", "-t", "Hello from say.py."]),
    ("tts-1-hd speed 0.25", ["-m", "tts-1-hd", "-s", "0.25", "-t", "Slow."]),
)


def _audio_ok(data: bytes) -> str:
    """'' when FFmpeg reads ``data`` as audio with a duration, else why not."""
    if not data:
        return "empty response"
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", "pipe:0"],
        input=data,
        capture_output=True,
        check=False,
    )
    if out.returncode != 0:
        return f"not audio: {data[:120]!r}"
    return ""


def run_openedai(peers: Path, url: str, work: Path) -> list[Row]:
    checkout = peers / "openedai-speech"
    rows: list[Row] = []
    bin_dir, plays = work / "bin", work / "mpv"
    bin_dir.mkdir(exist_ok=True)
    plays.mkdir(exist_ok=True)
    (bin_dir / "mpv").write_text(_MPV)
    (bin_dir / "mpv").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "MPV_DIR": str(plays)}
    subprocess.run(
        ["bash", "test_voices.sh", f"{url}/v1/audio/speech"], cwd=checkout, env=env, capture_output=True, check=False
    )
    got = sorted(plays.iterdir())
    for i, label in enumerate(VOICES_PLAYS):
        test = f"test_voices.sh::{i:02d} {label}"
        if label.endswith("cdn sample"):
            rows.append(Row("openedai-speech", test, "skipped", "OpenAI's CDN sample, not a request to us"))
            continue
        why = _audio_ok(got[i].read_bytes()) if i < len(got) else "mpv was not given this play"
        rows.append(Row("openedai-speech", test, "failed" if why else "passed", why))
    say_env = {**os.environ, "OPENAI_BASE_URL": f"{url}/v1", "OPENAI_API_KEY": "sk-ip"}
    for label, args in SAY_CASES:
        target = work / f"say-{len(rows)}.out"
        out = subprocess.run(
            [sys.executable, "say.py", *args, "-o", str(target)],
            cwd=checkout,
            env=say_env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            why = " ".join((out.stderr or out.stdout).split())[-200:]
        else:
            why = _audio_ok(target.read_bytes() if target.is_file() else b"")
        rows.append(Row("openedai-speech", f"say.py::{label}", "failed" if why else "passed", why))
    return rows


# --------------------------------------------------------------------------------------------- report

ALL = ("speaches", "openai-python", "Kokoro-FastAPI", "openedai-speech")


def counts(rows: list[Row]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for row in rows:
        table.setdefault(row.suite, {"passed": 0, "failed": 0, "skipped": 0})[row.outcome] += 1
    return table


def report(rows: list[Row]) -> str:
    lines = [f"# Peers' client suites against XTTS Lab ({datetime.date.today().isoformat()})", ""]
    lines += ["| suite | passed | failed | skipped |", "|---|---|---|---|"]
    for suite, c in counts(rows).items():
        lines.append(f"| {suite} | {c['passed']} | {c['failed']} | {c['skipped']} |")
    lines += ["", "| suite | test | outcome | class | why |", "|---|---|---|---|---|"]
    for r in rows:
        why = (r.why or r.message).replace("|", "\\|")[:200]
        lines.append(f"| {r.suite} | `{r.test}` | {r.outcome} | {r.cls} | {why} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-dir", type=Path, default=Path(os.environ.get("PEER_SUITES_DIR", "/work/peers")))
    parser.add_argument("--suite", action="append", choices=ALL, help="run only these (repeatable)")
    parser.add_argument("--out", type=Path, help="the table (Markdown); default: <peers-dir>/results.md")
    parser.add_argument("--json", type=Path, help="also the rows as JSON")
    args = parser.parse_args(argv)
    peers: Path = args.peers_dir.resolve()
    wanted = [s for s in (args.suite or ALL) if (peers / (SUITES[s].checkout if s in SUITES else s)).is_dir()]
    if not wanted:
        print(f"no peer checkouts under {peers} (see tests/peers/README.md)", file=sys.stderr)
        return 2
    from tests.peers.app import peer_app

    work = Path(tempfile.mkdtemp(prefix="xttslab-peers-"))
    rows: list[Row] = []
    try:
        with peer_app(work / "app") as url:
            for name in wanted:
                print(f"running {name} against {url} ...", flush=True)
                got = run_openedai(peers, url, work) if name == "openedai-speech" else None
                got = got if got is not None else run_pytest_suite(SUITES[name], peers, url, work)
                rows += [classify(r) for r in got]
    finally:
        print(f"logs in {work}", file=sys.stderr)
    text = report(rows)
    out = args.out or peers / "results.md"
    out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))
    print(text)
    bad = [r for r in rows if r.cls in ("OURS", "UNCLASSIFIED")]
    for r in bad:
        print(f"{r.cls}: {r.suite} {r.test}: {r.message[:200]}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
