"""XTTS Lab entry point: ``python main_launcher.py`` or, in a notebook,
``from main_launcher import build_app; build_app().launch()``.

Importing this module is cheap: gradio, torch and the engines are imported inside build_app(),
and no model loads until a user asks for one.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config import Settings, load_settings
from web_guard import WebGuard, allowed_hosts

if TYPE_CHECKING:
    import gradio as gr

    from engines import Engines

log = logging.getLogger("xtts_lab")

TITLE = "XTTS Lab"
TINY_BANNER = (
    "**Tiny-model mode**: the models are tiny *random* networks built offline. Every path works, "
    "but the audio is noise and transcripts are gibberish. Start without `--tiny-models` for real models."
)


def build_app(
    settings: Settings | None = None, *, tiny_models: bool | None = None, engines: Engines | None = None
) -> gr.Blocks:
    """Build the Gradio Blocks app (not launched).

    Args:
        settings: merged settings; defaults to ``load_settings()`` (env + my_config.py + defaults).
        tiny_models: shortcut to force tiny-model mode on or off.
        engines: an existing engine set to reuse (keeps loaded models across rebuilds).

    Returns:
        The app; call ``.launch()`` on it (inline in Jupyter).
    """
    import gradio as gr

    from engines import Engines
    from engines.core.provenance import warn_on_drift
    from pages import api, asr, finetune, system, tts
    from pages import eval as eval_page
    from pages.common import guard_inputs

    if settings is None:
        settings = load_settings()
    if tiny_models is not None:
        settings = dataclasses.replace(settings, tiny_models=tiny_models)
    if engines is None:
        engines = Engines.create(settings)

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nClone a voice, transcribe, fine-tune and measure, in one place.")
        if settings.tiny_models:
            gr.Markdown(TINY_BANNER, elem_id="tiny-banner")
        exposed = exposure_warning(settings)
        if exposed:  # only reachable with --allow-public-without-auth (main refuses otherwise)
            gr.Markdown(f"**Warning**: {exposed}", elem_id="exposed-warning")
        drift = warn_on_drift()  # logged once per app, shown on the page
        if drift:
            gr.Markdown(f"**Warning**: {drift}", elem_id="version-warning")
        with gr.Tab("TTS", id="tts"):
            tts.build(engines)
        with gr.Tab("ASR", id="asr"):
            asr.build(engines)
        with gr.Tab("Finetune", id="finetune"):
            finetune.build(engines)
        with gr.Tab("Eval", id="eval"):
            eval_page.build(engines)
        with gr.Accordion("System", open=False, elem_id="system-panel"):
            system.build(engines)
        api.build(engines)  # script endpoints by name (pages/api.py)
    guard_inputs(demo)  # values Gradio refuses before a callback: clear messages, one log line each
    demo.queue(default_concurrency_limit=4)
    demo.engines = engines  # for notebooks and tests: the engines behind this app
    return demo


ARGV_PASSWORD_WARNING = (
    "--auth user:password puts the password on the command line, where every user of this machine can read it "
    "(ps, /proc). Give it in XTTSLAB_AUTH=user:password, or in a file readable only by you: --auth FILE or "
    "XTTSLAB_AUTH_FILE=FILE (chmod 600)."
)


def read_auth_file(path: Path) -> list[str]:
    """The user:password lines of an auth file (blank lines and # comments ignored); warns when other users
    of this machine may read it.

    Raises:
        SystemExit: no such file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise SystemExit(f"auth file {str(path)!r}: no such file")
    mode = path.stat().st_mode
    if mode & 0o077:
        log.warning(
            "The auth file %s can be read by other users of this machine (mode %o); make it private: chmod 600 %s",
            path,
            mode & 0o777,
            path,
        )
    return path.read_text(encoding="utf-8").splitlines()


def _read_auth(values: list[str]) -> list[tuple[str, str]]:
    """Each value is "user:password" (warned about: visible in ``ps``) or a file of such lines."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        if ":" in value:
            log.warning(ARGV_PASSWORD_WARNING)
            lines = [value]
        else:
            path = Path(value).expanduser()
            if not path.is_file():
                raise SystemExit(f"--auth {value!r}: not user:password and no such file")
            lines = read_auth_file(path)
        entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        try:
            pairs.extend(auth_pairs(entries))
        except SystemExit as exc:
            raise SystemExit(f"--auth expects user:password (or a file of such lines): {exc}") from None
    return pairs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The launcher's command-line flags (unset flags are None, so lower layers of settings apply)."""
    parser = argparse.ArgumentParser(
        prog="main_launcher.py", description="XTTS Lab: TTS, ASR, fine-tuning and evaluation."
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes the app)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", default=None, help="create a public Gradio share link")
    parser.add_argument(
        "--auth",
        action="append",
        default=[],
        metavar="USER:PASS|FILE",
        help="require a login: a file of user:password lines (chmod 600), or user:password (visible to other users "
        "in ps; prefer XTTSLAB_AUTH or XTTSLAB_AUTH_FILE); repeatable",
    )
    parser.add_argument(
        "--allow-public-without-auth",
        action="store_true",
        default=None,
        help="start with --share or a non-loopback --host even without --auth (anyone who reaches it can use it)",
    )
    parser.add_argument("--inbrowser", action="store_true", default=None, help="open a browser tab on launch")
    parser.add_argument(
        "--tiny-models",
        action="store_true",
        default=None,
        help="use tiny random models built offline (everything works, output is noise)",
    )
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--workspace", help="folder for outputs, models, runs, reports and caches")
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace, env: dict[str, str] | None = None) -> Settings:
    """Settings with the parsed flags as the top layer (see ``config.load_settings``)."""
    cli: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "share": args.share,
        "allow_public_without_auth": args.allow_public_without_auth,
        "inbrowser": args.inbrowser,
        "tiny_models": args.tiny_models,
        "device": args.device,
        "workspace": args.workspace,
    }
    if args.auth:
        cli["auth"] = tuple(f"{u}:{p}" for u, p in _read_auth(args.auth))
    settings = load_settings(cli, env=env)
    if settings.auth_file is not None:  # XTTSLAB_AUTH_FILE / my_config: its logins join the others
        lines = read_auth_file(settings.path("auth_file"))
        entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        try:
            pairs = auth_pairs(entries)
        except SystemExit as exc:
            raise SystemExit(f"auth_file expects user:password lines: {exc}") from None
        settings = dataclasses.replace(settings, auth=(*settings.auth, *(f"{u}:{p}" for u, p in pairs)))
    return settings


def auth_pairs(entries: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """Split ``"user:password"`` entries (from settings) into Gradio's ``auth`` pairs.

    Raises:
        SystemExit: an entry without a user, a colon or a password.
    """
    pairs = []
    for entry in entries:
        user, sep, password = entry.partition(":")
        if not sep or not user or not password:
            raise SystemExit(f"auth entries must be user:password, got {entry!r}")
        pairs.append((user, password))
    return pairs


def exposure_warning(settings: Settings) -> str | None:
    """What is wrong when the app can be reached from other machines without a login; None when it cannot."""
    if settings.auth or not settings.exposed:
        return None
    if settings.share:
        return (
            "--share without --auth: anyone with the public link can use this app, your GPU and your files. "
            "Add --auth user:password."
        )
    return (
        f"Listening on {settings.host} without --auth: anyone on your network can use this app, your GPU and "
        "your files. Add --auth user:password."
    )


def refuse_public_without_auth(settings: Settings) -> None:
    """Stop before serving when the app would be exposed without a login, unless the user allowed it.

    Raises:
        SystemExit: exposed (``--share`` or a non-loopback ``--host``) without ``--auth`` and without
            ``--allow-public-without-auth``.
    """
    warning = exposure_warning(settings)
    if warning and not settings.allow_public_without_auth:
        raise SystemExit(
            f"{warning} Not starting. If anyone who can reach it may use it, pass --allow-public-without-auth."
        )


def launch_kwargs(settings: Settings, engines: Engines | None = None) -> dict[str, Any]:
    """Arguments for ``demo.launch()`` from settings; warns when the app is exposed without a login.

    Args:
        settings: merged settings.
        engines: the engine set the OpenAI-compatible API serves (the app's own); None = no ``/v1`` API.

    Returns:
        Keyword arguments for ``gr.Blocks.launch``; ``app_kwargs`` installs ``WebGuard`` (Host header
        check, nothing before login, login throttle, the API's key rule) and mounts the OpenAI-compatible API
        at ``/v1`` over ``engines`` (``rest``; routes given to the app when it is made come before Gradio's own).
    """
    from starlette.middleware import Middleware
    from starlette.routing import Mount

    from rest.auth import API_PREFIX, APIAccess
    from rest.openai_audio import create_api

    auth = auth_pairs(settings.auth) or None
    warning = exposure_warning(settings)
    if warning:
        log.warning(warning)
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": settings.share,
        "auth": auth,
        "inbrowser": settings.inbrowser,
        "max_file_size": f"{settings.max_upload_mb}mb",  # refused by the server before it reaches a page
        # Files the UI may serve back (outputs, shipped samples, datasets); nothing else on disk.
        "allowed_paths": [
            str(settings.workspace_dir),
            str(settings.path("samples_dir")),
            str(settings.path("datasets_dir")),
        ],
        "app_kwargs": {
            "middleware": [Middleware(WebGuard, hosts=allowed_hosts(settings), api=APIAccess.from_settings(settings))],
            "routes": [Mount(API_PREFIX, app=create_api(engines))] if engines is not None else [],
        },
    }


def disk_full_message(exc: BaseException, folder: Path) -> str | None:
    """The message for a start-up failure that is a full disk, None for any other failure.

    A full disk reaches start-up as ``atomic_file``'s LabError, a plain OSError (ENOSPC/EDQUOT: folders, small
    files) or torch's RuntimeError, which has lost the errno (the rule of ``engines.core.audio``: a RuntimeError
    counts when the disk has less than ``LOW_DISK_BYTES`` free).
    """
    import errno
    import shutil

    from engines.core.audio import LOW_DISK_BYTES
    from engines.core.errors import LabError

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # the error and what it was raised from
        seen.add(id(exc))
        if isinstance(exc, LabError) and str(exc).startswith("The disk is full"):
            return str(exc)
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        if isinstance(exc, RuntimeError):
            existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
            try:
                full = existing is not None and shutil.disk_usage(existing).free < LOW_DISK_BYTES
            except OSError:
                full = False
        if full:
            return (
                f"The disk is full: XTTS Lab could not write its start-up files under {folder}. "
                "Free some space there (or give --workspace a folder on a bigger disk) and start again."
            )
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def main(argv: list[str] | None = None) -> int:
    """Parse flags, build the app and serve it until interrupted.

    Args:
        argv: command-line arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The process exit status.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_from_args(parse_args(argv))
    refuse_public_without_auth(settings)
    from engines import Engines

    kwargs = launch_kwargs(settings)  # warns about exposure before anything is built
    try:  # the first writes: workspace folders, the tiny models (torch.save), caches
        engines = Engines.create(settings)
        demo = build_app(settings, engines=engines)
    except Exception as exc:
        message = disk_full_message(exc, settings.workspace_dir)
        if message is None:
            raise
        log.error("%s (%s: %s)", message, type(exc).__name__, exc)
        raise SystemExit(message) from None
    demo.launch(**{**kwargs, **launch_kwargs(settings, engines)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
