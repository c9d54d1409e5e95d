"""The OpenAI-compatible API (/v1) through the real ``openai`` SDK against the launched app (tiny models).

Tiny XTTS speaks noise: these tests prove plumbing (formats, streaming, errors, auth, concurrency), never
quality. Transcription is checked with the real Whisper tiny.en on jfk.flac (skipped without ../shared).
"""

from __future__ import annotations

import base64
import dataclasses
import http.cookiejar
import io
import json
import logging
import re
import shutil
import subprocess
import time
import types
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.browser_helpers import launched_app, tiny_settings
from tests.conftest import REAL_WHISPER

openai = pytest.importorskip("openai")

API_KEY = "sk-xttslab-test-key"
USER, PASSWORD = "ann", "correct-horse-battery"
SENTENCES = "One two three. Four five six. Seven eight nine."
SEED = 77


def _settings(root: Path, tiny_models, **changes):
    settings = tiny_settings(root, tiny_models)
    # the tiny GPT would otherwise run to its token limit on every sentence (seconds of noise each)
    generation = dataclasses.replace(settings.generation, max_audio_tokens=40)
    return dataclasses.replace(settings, generation=generation, **changes)


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_models):
    """The tiny app with the API on its default rule (no login: loopback clients only)."""
    settings = _settings(
        tmp_path_factory.mktemp("api-app"),
        tiny_models,
        api_save_outputs=True,  # the streamed test compares the stream with the file it saved
        api_max_input_chars=300,
        max_upload_mb=3,
    )
    if REAL_WHISPER.is_file():  # a local checkpoint, listed as "whisper-tiny.en"
        folder = settings.workspace_dir / "models" / "whisper"
        folder.mkdir(parents=True)
        (folder / REAL_WHISPER.name).symlink_to(REAL_WHISPER)
    with launched_app(settings) as (demo, url):
        yield demo, url


@pytest.fixture(scope="module")
def client(app):
    _, url = app
    return openai.OpenAI(base_url=f"{url}v1", api_key="anything", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def auth_app(tmp_path_factory, tiny_models):
    """The tiny app with a login and one API key; a short GPU wait and one waiting request at most."""
    settings = _settings(
        tmp_path_factory.mktemp("api-auth-app"),
        tiny_models,
        auth=(f"{USER}:{PASSWORD}",),
        api_keys=(API_KEY,),
        api_busy_timeout=1.0,
        api_max_waiting=1,
    )
    with launched_app(settings) as (demo, url):
        yield demo, url


def speech(client, text: str = "The sun is out and the sky is blue.", fmt: str = "pcm", **extra):
    return client.audio.speech.create(
        model="tts-1", voice="alloy", input=text, response_format=fmt, extra_body={"seed": SEED, **extra}
    )


def probe(data: bytes) -> dict:
    """ffprobe's view of an encoded file: codec, sample rate, channels, duration."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", "pipe:0"],
        input=data,
        capture_output=True,
        check=True,
    )
    info = json.loads(out.stdout)
    stream = info["streams"][0]
    return {
        "codec": stream["codec_name"],
        "rate": int(stream["sample_rate"]),
        "channels": int(stream["channels"]),
        "duration": float(info["format"].get("duration") or stream.get("duration") or 0),
    }


def decode(data: bytes, rate: int = 24000) -> np.ndarray:
    """Any encoded file as 16-bit mono samples at ``rate`` (FFmpeg)."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", "pipe:0", "-f", "s16le", "-ac", "1", "-ar", str(rate), "pipe:1"],
        input=data,
        capture_output=True,
        check=True,
    )
    return np.frombuffer(out.stdout, dtype="<i2")


def get(url: str, path: str, headers: dict | None = None, opener=None) -> tuple[int, dict]:
    req = urllib.request.Request(url.rstrip("/") + path, headers=headers or {})
    try:
        with (opener or urllib.request.build_opener()).open(req, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def assert_error_shape(body: dict, code: str | None = None) -> dict:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


# ----------------------------------------------------------------------------------------------- speech


def test_speech_in_every_format(client) -> None:
    """Each format decodes to 24 kHz mono of the same length; wav, flac and pcm hold the very same samples."""
    pcm = speech(client, fmt="pcm")
    headers = pcm.response.headers
    assert headers["x-sample-rate"] == "24000" and headers["x-sample-format"] == "s16le"
    assert headers["x-language"] == "en" and headers["x-language-source"] == "detected"
    samples = np.frombuffer(pcm.content, dtype="<i2")
    seconds = len(samples) / 24000
    assert seconds > 0.3 and np.abs(samples).max() > 0
    for fmt, codec in (("wav", "pcm_s16le"), ("flac", "flac"), ("mp3", "mp3"), ("opus", "opus"), ("aac", "aac")):
        data = speech(client, fmt=fmt).content
        info = probe(data)
        assert info["codec"] == codec and info["channels"] == 1, (fmt, info)
        # Opus always decodes at 48 kHz in Ogg (its header keeps the input rate, which ffprobe reports)
        assert info["rate"] in ((24000, 48000) if fmt == "opus" else (24000,)), (fmt, info)
        decoded = decode(data)
        if fmt in ("wav", "flac"):
            assert np.array_equal(decoded, samples), fmt  # lossless: the same seed gave the same samples
            read, rate = sf.read(io.BytesIO(data), dtype="int16")
            assert rate == 24000 and np.array_equal(read, samples)
        else:  # lossy: same length but for the encoder's padding
            assert abs(len(decoded) / 24000 - seconds) < 0.1, (fmt, len(decoded) / 24000, seconds)


def test_speech_language_voice_and_speed(client, app, speak) -> None:
    demo, _ = app
    german = speech(client, "Der Hund und die Katze sind nicht hier.")
    assert (german.response.headers["x-language"], german.response.headers["x-language-source"]) == ("de", "detected")
    forced = speech(client, "Der Hund und die Katze sind nicht hier.", language="fr", speed=3.0)
    assert forced.response.headers["x-language"] == "fr" and forced.response.headers["x-language-source"] == "request"
    assert forced.response.headers["x-speed"] == "2"  # OpenAI's 3.0 is beyond XTTS's 0.5-2.0: clamped, and said

    # a saved voice by its name
    voice_dir = demo.engines.settings.workspace_sub("voices", "narrator")
    shutil.copy(speak("The birch canoe slid on the smooth planks.", name="narrator"), voice_dir / "clip.wav")
    saved = client.audio.speech.create(model="tiny", voice="narrator", input="Hello.", response_format="pcm")
    assert saved.response.headers["x-voice"] == "narrator" and len(saved.content) > 0
    # a built-in speaker by its name; OpenAI's names map onto the tiny model's speakers (it has no Ana Florence)
    bob = client.audio.speech.create(model="tiny", voice="Tiny Bob", input="Hello.", response_format="pcm")
    assert bob.response.headers["x-voice"] == "Tiny Bob"
    assert speech(client).response.headers["x-voice"] in ("Tiny Alice", "Tiny Bob")


@pytest.fixture(scope="module")
def streamed_pcm(client, app) -> dict:
    """One pcm stream of three sentences: its chunks, whether the GPU was still busy at the first one, its file."""
    demo, _ = app
    outputs = demo.engines.settings.workspace_sub("outputs", "tts")
    before = set(outputs.glob("*.wav"))
    chunks: list[bytes] = []
    busy_at_first = None
    with client.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="alloy",
        input=SENTENCES,
        response_format="pcm",
        stream_format="audio",
        extra_body={"seed": SEED},
    ) as response:
        assert response.headers.get("transfer-encoding") == "chunked" and "content-length" not in response.headers
        for chunk in response.iter_bytes():
            if busy_at_first is None:
                got = demo.engines.gpu_lock.acquire(blocking=False)  # the generating thread still holds it?
                if got:
                    demo.engines.gpu_lock.release()
                busy_at_first = not got
            chunks.append(chunk)
    (saved,) = set(outputs.glob("*.wav")) - before
    return {"chunks": chunks, "busy_at_first": busy_at_first, "file": saved, "bytes": b"".join(chunks)}


def test_streamed_speech_arrives_before_the_end_and_equals_its_file(streamed_pcm) -> None:
    """Comparison: the streamed pcm bytes are byte for byte the int16 samples of the WAV the same request saved
    (a stream is not sample-equal to a non-streamed synthesis: the engine generates it differently)."""
    assert len(streamed_pcm["chunks"]) > 1
    assert streamed_pcm["busy_at_first"] is True  # the first bytes came while the engine was still generating
    sidecar = json.loads(streamed_pcm["file"].with_suffix(".json").read_text())
    assert sidecar["streamed"] is True
    saved, rate = sf.read(streamed_pcm["file"], dtype="int16")
    assert rate == 24000 and saved.astype("<i2").tobytes() == streamed_pcm["bytes"]


def test_streamed_formats_decode_to_the_same_audio(client, streamed_pcm) -> None:
    """The same seed streamed as wav decodes to exactly the pcm stream; as mp3 to the same length."""
    reference = np.frombuffer(streamed_pcm["bytes"], dtype="<i2")

    def stream(fmt: str) -> bytes:
        with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=SENTENCES, response_format=fmt, stream_format="audio",
            extra_body={"seed": SEED},
        ) as response:  # fmt: skip
            return b"".join(response.iter_bytes())

    assert np.array_equal(decode(stream("wav")), reference)
    assert abs(len(decode(stream("mp3"))) - len(reference)) < 0.1 * 24000


def test_sse_events(app, streamed_pcm) -> None:
    """stream_format sse: speech.audio.delta events (base64 audio), then speech.audio.done; same audio."""
    _, url = app
    body = json.dumps(
        {
            "model": "tts-1",
            "voice": "alloy",
            "input": SENTENCES,
            "response_format": "pcm",
            "stream_format": "sse",
            "seed": SEED,
        }
    ).encode()
    req = urllib.request.Request(f"{url}v1/audio/speech", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        text = response.read().decode()
    events = [json.loads(block.removeprefix("data: ")) for block in text.strip().split("\n\n")]
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "speech.audio.done" and set(kinds[:-1]) == {"speech.audio.delta"} and len(kinds) > 2
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert audio == streamed_pcm["bytes"]
    usage = events[-1]["usage"]  # OpenAI's usage object (issue 20)
    assert set(usage) == {"input_tokens", "output_tokens", "total_tokens"}
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


# ----------------------------------------------------------------------------------------------- transcription


@pytest.fixture(scope="module")
def jfk(shared_data) -> Path:
    return shared_data / "whisper" / "jfk.flac"


def _words(text: str) -> str:
    return re.sub(r"[^a-z ]", "", text.lower())


@pytest.mark.real
def test_transcription_formats_with_the_real_whisper(client, jfk, real_whisper) -> None:
    import srt
    import webvtt

    def transcribe(**kwargs):
        with jfk.open("rb") as handle:
            return client.audio.transcriptions.create(model="whisper-tiny.en", file=handle, **kwargs)

    plain = transcribe()
    assert "ask not what your country can do for you" in _words(plain.text)
    assert transcribe(response_format="text").strip() == plain.text

    verbose = transcribe(response_format="verbose_json", timestamp_granularities=["word", "segment"])
    assert verbose.language == "english" and abs(verbose.duration - 11.0) < 0.1 and verbose.text == plain.text
    assert verbose.segments and verbose.words
    for i, segment in enumerate(verbose.segments):
        assert segment.id == i and isinstance(segment.seek, int) and segment.tokens
        assert all(isinstance(t, int) for t in segment.tokens)
        assert 0 <= segment.start < segment.end <= 11.1
        assert segment.temperature == 0.0 and segment.avg_logprob < 0 and segment.compression_ratio > 0
        assert 0 <= segment.no_speech_prob <= 1
    words = [w.word for w in verbose.words]
    assert "country" in [_words(w) for w in words] and all(w == w.strip() for w in words)
    assert all(0 <= w.start <= w.end <= 11.1 for w in verbose.words)
    assert [w.start for w in verbose.words] == sorted(w.start for w in verbose.words)
    only_words = transcribe(response_format="verbose_json", timestamp_granularities=["word"])
    assert only_words.words and not only_words.segments
    only_segments = transcribe(response_format="verbose_json")  # default granularity: segment
    assert only_segments.segments and not only_segments.words

    cues = list(srt.parse(transcribe(response_format="srt")))
    assert cues and "country" in _words(" ".join(c.content for c in cues))
    captions = webvtt.from_buffer(io.StringIO(transcribe(response_format="vtt")))
    assert len(captions) == len(cues) and "country" in _words(" ".join(c.text for c in captions))
    prompted = transcribe(prompt="John F. Kennedy, inaugural address.")
    assert "country" in _words(prompted.text)


@pytest.mark.real
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK marks translations deprecated
def test_translations(client, jfk, real_whisper) -> None:
    with jfk.open("rb") as handle:  # the multilingual (random) model translates: plumbing only
        out = client.audio.translations.create(model="whisper-1", file=handle)
    assert isinstance(out.text, str)
    with jfk.open("rb") as handle, pytest.raises(openai.BadRequestError) as info:
        client.audio.translations.create(model="whisper-tiny.en", file=handle)
    assert "English-only" in assert_error_shape(info.value.response.json())["message"]


# ----------------------------------------------------------------------------------------------- lists


def test_models_and_voices_lists(client, app) -> None:
    _, url = app
    ids = {m.id for m in client.models.list().data}
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "tiny", "xtts_v2", "whisper-1", "tiny-random"} <= ids
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    status, body = get(url, "/v1/audio/voices")
    voice_ids = {v["id"] for v in body["voices"]}
    assert status == 200 and {"Tiny Alice", "Tiny Bob", "alloy", "nova"} <= voice_ids
    assert all(set(v) == {"id", "name"} for v in body["voices"])
    status, body = get(url, "/v1/audio/models")
    assert status == 200 and {"tts-1", "tiny"} <= {m["id"] for m in body["models"]}


# ----------------------------------------------------------------------------------------------- errors


def test_bad_requests_answer_400_and_404_in_openai_shape(client, app, tmp_path) -> None:
    _, url = app
    cases = [
        ({"input": "   "}, "input"),
        ({"response_format": "ogg"}, "response_format"),
        ({"speed": 9.0}, "speed"),
        ({"stream_format": "websocket"}, "stream_format"),
        ({"language": "xx"}, "language"),
        ({"input": "x" * 301}, "input"),  # api_max_input_chars
    ]
    for change, param in cases:
        extra = {k: v for k, v in change.items() if k != "input"}  # sent as is, past the SDK's own checks
        with pytest.raises(openai.BadRequestError) as info:
            client.audio.speech.create(
                model="tts-1", voice="alloy", input=change.get("input", "Hello."), extra_body=extra
            )
        assert assert_error_shape(info.value.response.json())["param"] == param, change
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    with not_audio.open("rb") as handle, pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(model="whisper-1", file=handle)
    with not_audio.open("rb") as handle, pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(model="whisper-1", file=handle, timestamp_granularities=["word"])
    assert "verbose_json" in info.value.response.json()["error"]["message"]

    with pytest.raises(openai.NotFoundError) as info:
        client.audio.speech.create(model="no-such-model", voice="alloy", input="Hello.")
    assert assert_error_shape(info.value.response.json(), "model_not_found")["param"] == "model"
    with pytest.raises(openai.NotFoundError) as info:
        client.audio.speech.create(model="tts-1", voice="nobody", input="Hello.")
    message = assert_error_shape(info.value.response.json(), "voice_not_found")["message"]
    assert "Tiny Alice" in message and "alloy" in message  # says what there is
    with not_audio.open("rb") as handle, pytest.raises(openai.NotFoundError):
        client.audio.transcriptions.create(model="no-such-whisper", file=handle)
    status, body = get(url, "/v1/nothing/here")
    assert status == 404 and assert_error_shape(body, "unknown_url")


def test_too_large_upload_answers_413(client, tmp_path) -> None:
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * 5_000_000)  # max_upload_mb is 3 in this app
    with big.open("rb") as handle, pytest.raises(openai.APIStatusError) as info:
        client.audio.transcriptions.create(model="whisper-1", file=handle)
    assert info.value.status_code == 413 and assert_error_shape(info.value.response.json(), "request_too_large")


def test_a_real_bug_answers_500_and_is_logged(client, app, monkeypatch, caplog) -> None:
    demo, _ = app

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(demo.engines.tts, "synthesize", broken)
    with caplog.at_level(logging.ERROR), pytest.raises(openai.InternalServerError) as info:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")
    assert info.value.status_code == 500
    assert "ZeroDivisionError" in assert_error_shape(info.value.response.json(), "internal_error")["message"]
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_engine_errors_map_onto_status_codes() -> None:
    from engines.core import errors
    from rest.errors import from_exception

    expected = {
        errors.InputError("x"): 400,
        errors.AudioError("x"): 400,
        errors.AudioTooLargeError("x"): 413,
        errors.MissingWeightsError("x"): 404,
        errors.BusyError("x"): 503,
        errors.GPUOutOfMemoryError("x"): 503,
        errors.LabError("x"): 503,
        KeyError("x"): 500,
    }
    for exc, status in expected.items():
        assert from_exception(exc, "test").status == status, exc
    assert from_exception(errors.BusyError("x"), "test").headers["Retry-After"]


def test_busy_gpu_answers_429_then_503_with_retry_after(auth_app) -> None:
    """api_busy_timeout 1 s and api_max_waiting 1: while the GPU is held, a second waiting request gets 429 at
    once and the first gets 503 when its wait runs out; both say when to retry."""
    demo, url = auth_app
    keyed = openai.OpenAI(base_url=f"{url}v1", api_key=API_KEY, max_retries=0, timeout=60)
    assert demo.engines.gpu_lock.acquire(timeout=60)
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(speech, keyed)
            deadline = time.monotonic() + 30
            from rest import openai_audio

            while getattr(openai_audio._GATES.get(demo.engines), "_waiting", 0) < 1:  # the first one is waiting
                assert time.monotonic() < deadline and not first.done()
                time.sleep(0.01)
            with pytest.raises(openai.RateLimitError) as second:
                speech(keyed)
            with pytest.raises(openai.InternalServerError) as waited:
                first.result()
    finally:
        demo.engines.gpu_lock.release()
    assert second.value.status_code == 429 and second.value.response.headers["retry-after"]
    assert waited.value.status_code == 503 and waited.value.response.headers["retry-after"]
    assert_error_shape(waited.value.response.json(), "server_busy")
    assert len(speech(keyed).content) > 0  # free again: served


# ----------------------------------------------------------------------------------------------- access


def test_api_with_a_login_needs_a_key(auth_app) -> None:
    _, url = auth_app
    for key, code in ((None, "missing_api_key"), ("sk-wrong", "invalid_api_key")):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        status, body = get(url, "/v1/models", headers)
        assert status == 401 and assert_error_shape(body, code)
    keyed = openai.OpenAI(base_url=f"{url}v1", api_key=API_KEY, max_retries=0, timeout=60)
    assert "tts-1" in {m.id for m in keyed.models.list().data}
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}v1", api_key="sk-wrong", max_retries=0).models.list()

    # the page's login cookie is not an API key
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    data = f"username={USER}&password={PASSWORD}".encode()
    with opener.open(urllib.request.Request(f"{url}login", data=data), timeout=60) as response:
        assert response.status == 200
    assert get(url, "/v1/models", opener=opener)[0] == 401


def test_api_without_a_login_answers_this_machine_only(app, client) -> None:
    """The launched app (no login) answers a loopback client; the guard's decision for others, at the ASGI level."""
    import asyncio

    from rest.auth import APIAccess
    from web_guard import WebGuard

    assert client.models.list().data  # the tests themselves are a loopback client

    async def call(guard: WebGuard, scope: dict) -> tuple[int, dict | None]:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await guard({"type": "http", "method": "GET", "path": "/v1/models", **scope}, receive, send)
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return sent[0]["status"], json.loads(body) if body else None

    async def inner(scope, receive, send) -> None:  # stands for the app behind the guard
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    no_login = types.SimpleNamespace(auth=None)
    with_login = types.SimpleNamespace(auth={USER: PASSWORD})

    def scope(client_ip: str, host: str = "127.0.0.1:7860", app=no_login, **headers) -> dict:
        items = [(b"host", host.encode())] + [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
        return {"client": (client_ip, 50000), "headers": items, "app": app}

    default = WebGuard(inner, hosts=(), api=APIAccess())
    assert asyncio.run(call(default, scope("127.0.0.1")))[0] == 200
    for refused in (
        scope("192.168.1.30", "192.168.1.20:7860"),  # another machine on the network
        scope("127.0.0.1", x_forwarded_for="203.0.113.7"),  # through a proxy on this machine
    ):
        status, body = asyncio.run(call(default, refused))
        assert status == 403 and "api_allow_remote" in assert_error_shape(body, "remote_not_allowed")["message"]
    open_guard = WebGuard(inner, hosts=(), api=APIAccess(allow_remote=True))
    assert asyncio.run(call(open_guard, scope("192.168.1.30", "192.168.1.20:7860")))[0] == 200

    # a login without keys: the API is closed, and the answer says how to open it
    status, body = asyncio.run(call(default, scope("127.0.0.1", app=with_login)))
    assert status == 401 and "api_keys" in assert_error_shape(body, "api_keys_not_configured")["message"]
    keyed = WebGuard(inner, hosts=(), api=APIAccess(keys=(API_KEY,)))
    remote_with_key = scope("192.168.1.30", "192.168.1.20:7860", app=with_login, authorization=f"Bearer {API_KEY}")
    assert asyncio.run(call(keyed, remote_with_key))[0] == 200


def test_share_link_requests_are_not_local() -> None:
    from rest.auth import is_local_client

    share = {"client": ("127.0.0.1", 1), "headers": [(b"host", b"a1b2c3.gradio.live")]}
    assert not is_local_client(share, share_host="a1b2c3.gradio.live")
    assert is_local_client(
        {"client": ("127.0.0.1", 1), "headers": [(b"host", b"localhost:7860")]}, "a1b2c3.gradio.live"
    )


def test_launch_kwargs_mount_the_api() -> None:
    from starlette.routing import Mount

    import main_launcher
    from config import load_settings
    from engines import Engines

    settings = load_settings({"api_keys": ("k1",), "api_allow_remote": True}, env={})
    assert main_launcher.launch_kwargs(settings)["app_kwargs"]["routes"] == []  # no engines, no API
    kwargs = main_launcher.launch_kwargs(settings, Engines.create(settings))
    (mount,) = kwargs["app_kwargs"]["routes"]
    assert isinstance(mount, Mount) and mount.path == "/v1"
    (middleware,) = kwargs["app_kwargs"]["middleware"]
    assert middleware.kwargs["api"].keys == ("k1",) and middleware.kwargs["api"].allow_remote


def test_api_settings_from_env_and_my_config() -> None:
    from config import load_settings
    from rest.catalog import voice_map

    settings = load_settings(env={"XTTSLAB_API_KEYS": "k1, k2", "XTTSLAB_API_VOICES": "alloy=narrator,echo="})
    assert settings.api_keys == ("k1", "k2")
    mapping = voice_map(settings)
    assert mapping["alloy"] == "narrator" and "echo" not in mapping and mapping["nova"] == "Nova Hogarth"
    assert load_settings({"api_voices": {"nova": "me"}}, env={}).api_voices == ("nova=me",)


def test_language_guess() -> None:
    from rest.language import guess_language, speech_language

    cases = {
        "The weather is nice and the sun is out.": "en",
        "Der Hund und die Katze sind nicht hier.": "de",
        "Bonjour, je suis content que vous soyez là.": "fr",
        "¿Dónde está la biblioteca?": "es",
        "Zażółć gęślą jaźń.": "pl",
        "Привет, как дела?": "ru",
        "こんにちは、世界": "ja",
        "你好，世界": "zh-cn",
        "안녕하세요": "ko",
        "नमस्ते दुनिया": "hi",
        "مرحبا بالعالم": "ar",
    }
    for text, code in cases.items():
        assert guess_language(text) == code, text
    assert speech_language("OK", None, "it") == ("it", "default")
    assert speech_language("Hello there.", "de", "en") == ("de", "request")


# ----------------------------------------------------------------------------------------------- concurrency


def test_two_clients_at_once(app) -> None:
    """Two programs at the same time: both are answered (one waits for the GPU), neither blocks the server."""
    _, url = app

    def one(text: str) -> bytes:
        own = openai.OpenAI(base_url=f"{url}v1", api_key="x", max_retries=0, timeout=300)
        return own.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm").content

    results: dict[str, object] = {}
    with ThreadPoolExecutor(2) as pool:
        futures = {text: pool.submit(one, text) for text in ("First client speaking.", "Second client here.")}
        # the event loop stays free meanwhile: a list answers while both syntheses run or wait
        status, _ = get(url, "/v1/audio/voices")
        results = {text: f.result() for text, f in futures.items()}
    assert status == 200
    assert all(len(data) > 2400 for data in results.values())


def test_client_going_away_frees_the_gpu(app) -> None:
    """A streamed request whose client hangs up early: the engine stops, frees the GPU and saves nothing (a
    finished stream would have saved its WAV: api_save_outputs is on)."""
    demo, url = app
    outputs = demo.engines.settings.workspace_sub("outputs", "tts")
    before = set(outputs.glob("*.wav"))
    body = json.dumps(
        {"model": "tts-1", "voice": "alloy", "input": SENTENCES * 3, "response_format": "pcm", "stream_format": "audio"}
    ).encode()
    req = urllib.request.Request(f"{url}v1/audio/speech", data=body, headers={"Content-Type": "application/json"})
    response = urllib.request.urlopen(req, timeout=300)
    assert response.read(100)
    response.close()
    deadline = time.monotonic() + 120
    while not demo.engines.gpu_lock.acquire(timeout=0.5):
        assert time.monotonic() < deadline, "the GPU lock stayed held after the client left"
    demo.engines.gpu_lock.release()
    assert set(outputs.glob("*.wav")) == before


# ----------------------------------------------------------------------------------------------- issue 20: as OpenAI


@pytest.fixture(scope="module")
def clip(speak) -> Path:
    return speak("The quick brown fox jumps over the lazy dog.")


def test_every_listed_model_is_retrievable_and_no_id_is_a_path(client, app) -> None:
    """A local Whisper checkpoint was listed by its absolute path and answered 404 by the id transcription took."""
    demo, _ = app
    ids = [m.id for m in client.models.list().data]
    assert not [i for i in ids if "/" in i or "\\" in i or i.startswith("~")], ids
    for model_id in ids:
        assert client.models.retrieve(model_id).id == model_id
    workspace = str(demo.engines.settings.workspace_dir)
    if REAL_WHISPER.is_file():
        assert "whisper-tiny.en" in ids
        path = str(demo.engines.settings.workspace_dir / "models" / "whisper" / REAL_WHISPER.name)
        with pytest.raises(openai.NotFoundError) as info:  # the server's path is not an id
            client.audio.transcriptions.create(model=path, file=("a.wav", b"RIFF"))
        assert workspace not in info.value.response.text
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("/etc/passwd")
    assert "/etc" not in info.value.response.text


def test_segment_granularity_with_json_is_accepted(client, clip) -> None:
    """Only "word" needs verbose_json; OpenAI accepts "segment" with json."""
    out = client.audio.transcriptions.create(
        model="whisper-1", file=clip.open("rb"), response_format="json", timestamp_granularities=["segment"]
    )
    assert isinstance(out.text, str)


def test_streamed_transcription_yields_openai_events(client, clip) -> None:
    """stream=true answered a plain JSON body, and the SDK's reader yielded no event at all."""
    plain = client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=clip.open("rb"))
    events = list(client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=clip.open("rb"), stream=True))
    assert events and events[-1].type == "transcript.text.done"
    assert {e.type for e in events[:-1]} <= {"transcript.text.delta"}
    assert events[-1].text == plain.text
    assert "".join(e.delta for e in events[:-1]).strip() == plain.text.strip()
    with pytest.raises(openai.BadRequestError) as info:  # only json and text stream, as at OpenAI
        client.audio.transcriptions.create(model="whisper-1", file=clip.open("rb"), stream=True, response_format="srt")
    assert assert_error_shape(info.value.response.json())["param"] == "stream"


def test_srt_and_vtt_are_served_as_text_plain(client, clip) -> None:
    for fmt in ("srt", "vtt", "text"):
        raw = client.audio.transcriptions.with_raw_response.create(
            model="whisper-1", file=clip.open("rb"), response_format=fmt
        )
        assert raw.headers["content-type"].startswith("text/plain"), fmt


def test_speech_sample_rate_extension(client) -> None:
    """sample_rate (speaches): the answer at that rate; 422 outside 8-48 kHz."""
    data = speech(client, fmt="wav", sample_rate=16000).content
    assert probe(data)["rate"] == 16000
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="Hello there.", response_format="wav", stream_format="audio",
        extra_body={"seed": SEED, "sample_rate": 8000},
    ) as response:  # fmt: skip
        streamed = b"".join(response.iter_bytes())
    assert response.headers["x-sample-rate"] == "8000" and probe(streamed)["rate"] == 8000
    for rate in (7999, 48001):
        with pytest.raises(openai.UnprocessableEntityError) as info:
            speech(client, sample_rate=rate)
        assert assert_error_shape(info.value.response.json())["param"] == "sample_rate"


def test_voice_ids_are_their_names(app) -> None:
    _, url = app
    _, body = get(url, "/v1/audio/voices")
    by_id = {v["id"]: v["name"] for v in body["voices"]}
    assert by_id["Tiny Alice"] == "Tiny Alice" and by_id["alloy"] == "alloy"


def _raw(url: str, path: str, data: bytes, headers: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url.rstrip("/") + path, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, {"body": response.read()[:100]}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "XbOuNdArY") -> tuple[bytes, dict]:
    body = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode("utf-8", "surrogatepass")
        body += value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_malformed_requests_answer_400_in_openai_shape(app, clip) -> None:
    """Each of these answered 500 with a traceback; now 400 (422 for sample_rate) naming what is wrong."""
    _, url = app
    audio = clip.read_bytes()
    model = [("model", None, b"whisper-1")]
    json_cases = {
        "response_format list": {"response_format": ["mp3"]},
        "response_format object": {"response_format": {"a": 1}},
        "seed 2**64": {"seed": 2**64},
        "seed 1e30": {"seed": 1e30},
        "voice list": {"voice": ["alloy"]},
    }
    for what, change in json_cases.items():
        body = {"model": "tts-1", "voice": "alloy", "input": "Hello.", **change}
        status, answer = _raw(url, "/v1/audio/speech", json.dumps(body).encode(), {"Content-Type": "application/json"})
        assert status == 400 and assert_error_shape(answer)["param"] in change, (what, answer)
    surrogate = b'{"model": "tts-1", "voice": "alloy", "input": "Hello \\ud800 there."}'
    status, answer = _raw(url, "/v1/audio/speech", surrogate, {"Content-Type": "application/json"})
    assert status == 400 and assert_error_shape(answer)["param"] == "input"
    deep = b"[" * 200_000 + b"]" * 200_000
    status, answer = _raw(url, "/v1/audio/speech", deep, {"Content-Type": "application/json"})
    assert status == 400 and assert_error_shape(answer)
    long_number = b'{"model": "tts-1", "voice": "alloy", "input": "Hi.", "seed": ' + b"9" * 5000 + b"}"
    status, answer = _raw(url, "/v1/audio/speech", long_number, {"Content-Type": "application/json"})
    assert status == 400 and "digits" in assert_error_shape(answer)["message"]
    assert "sys." not in answer["error"]["message"]  # Python's own hint means nothing to a client
    status, answer = _raw(
        url,
        "/v1/audio/speech",
        json.dumps({"input": "Hi.", "speed": "fast"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 400 and "valid number" in assert_error_shape(answer)["message"], answer
    multipart_cases = {
        "two files": _multipart([("file", "a.wav", audio), ("file", "b.wav", audio), *model]),
        "many fields": _multipart([("file", "a.wav", audio), *model, *[(f"f{i}", None, b"x") for i in range(30)]]),
        "huge prompt": _multipart([("file", "a.wav", audio), *model, ("prompt", None, b"word " * 400_000)]),
        "long prompt": _multipart([("file", "a.wav", audio), *model, ("prompt", None, b"word " * 1000)]),
        "temperature list twice": _multipart([("file", "a.wav", audio), *model, *[("temperature", None, b"0")] * 2]),
        "garbage": (b"\x00\xff garbage \r\n--", {"Content-Type": "multipart/form-data; boundary=XbOuNdArY"}),
        "no boundary": (b"--x\r\n\r\n", {"Content-Type": "multipart/form-data"}),
    }
    for what, (body, headers) in multipart_cases.items():
        status, answer = _raw(url, "/v1/audio/transcriptions", body, headers)
        assert status == 400 and assert_error_shape(answer), (what, answer)
    body, headers = _multipart([("file", "x" * 10_000 + ".wav", audio), *model])  # over the parser's header limit
    status, answer = _raw(url, "/v1/audio/transcriptions", body, headers)
    assert status == 400 and assert_error_shape(answer)
    for filename in ("x" * 2000 + ".wav", "bad\x00name.wav", "../../etc/passwd.wav"):
        body, headers = _multipart([("file", filename, audio), *model])
        status, answer = _raw(url, "/v1/audio/transcriptions", body, headers)
        assert status == 200, (filename[:20], answer)


def test_transcription_errors_name_the_users_file(client, tmp_path) -> None:
    notes = tmp_path / "my notes.wav"
    notes.write_text("this is not audio")
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(model="whisper-1", file=notes.open("rb"))
    message = assert_error_shape(info.value.response.json())["message"]
    assert "my notes.wav" in message and "upload-" not in message


def test_cross_site_requests_are_refused(app) -> None:
    """A web page could POST text/plain JSON (no CORS preflight) to /v1/audio/speech and the app did the work."""
    demo, url = app
    calls = []
    original = demo.engines.tts.synthesize
    body = json.dumps({"model": "tts-1", "voice": "alloy", "input": "Hello."}).encode()
    try:
        demo.engines.tts.synthesize = lambda *a, **k: calls.append(1) or original(*a, **k)
        status, answer = _raw(
            url, "/v1/audio/speech", body, {"Content-Type": "text/plain", "Origin": "https://evil.example"}
        )
        assert status == 403 and assert_error_shape(answer, "origin_not_allowed")
        status, answer = _raw(url, "/v1/audio/speech", body, {"Content-Type": "text/plain"})
        assert status == 415 and assert_error_shape(answer, "unsupported_media_type")
        form, headers = _multipart([("file", "a.wav", b"RIFF"), ("model", None, b"whisper-1")])
        status, answer = _raw(url, "/v1/audio/transcriptions", form, {**headers, "Origin": "null"})
        assert status == 403
        status, _ = _raw(
            url, "/v1/audio/speech", body, {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}
        )
        assert status == 403
        assert calls == []
        own = url.rstrip("/")  # the app's own page may call it
        status, _ = _raw(url, "/v1/audio/speech", body, {"Content-Type": "application/json", "Origin": own})
        assert status == 200 and calls == [1]
    finally:
        demo.engines.tts.synthesize = original


def test_allowed_origins_setting_opens_the_api_to_one_site() -> None:
    from config import load_settings
    from rest.auth import APIAccess

    settings = load_settings(env={"XTTSLAB_API_ALLOWED_ORIGINS": "https://app.example/"})
    access = APIAccess.from_settings(settings)

    def scope(origin: str) -> dict:
        return {"headers": [(b"host", b"127.0.0.1:7860"), (b"origin", origin.encode())]}

    assert access.origin_refusal(scope("https://app.example")) is None
    assert access.origin_refusal(scope("https://evil.example")).status == 403
    assert APIAccess(origins=("*",)).origin_refusal(scope("https://evil.example")) is None


def test_uploads_left_by_a_killed_process_are_removed_at_start(app) -> None:
    import os

    from rest.openai_audio import create_api

    demo, _ = app
    folder = demo.engines.settings.workspace_sub("cache", "api")
    dead = folder / "upload-999999999-abc"
    dead.mkdir()
    (dead / "talk.wav").write_bytes(b"RIFF")
    old = folder / "upload-abc123.wav"  # the earlier layout: one file, no pid
    old.write_bytes(b"RIFF")
    mine = folder / f"upload-{os.getpid()}-live"
    mine.mkdir()
    create_api(demo.engines)
    assert not dead.exists() and not old.exists() and mine.exists()
    mine.rmdir()


def test_speech_says_what_the_tts_tab_warns_about(client) -> None:
    """/v1 dropped the wrong-script warning the TTS tab gives; a language nobody chose is said too."""
    raw = client.audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input="这是中文文本", response_format="pcm", extra_body={"language": "en"}
    )
    assert "Chinese" in raw.headers["x-notice"] or "Han" in raw.headers["x-notice"], raw.headers.get("x-notice")
    raw = client.audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input="OK 42", response_format="pcm"
    )
    assert raw.headers["x-language-source"] == "default" and "default" in raw.headers["x-notice"]


def test_speech_retakes_extension(client) -> None:
    """``retakes`` (issue 22): each sentence is heard by the loaded Whisper and retaken; the result says so.
    The tiny Whisper hears gibberish, so every sentence fails its check: both takes are made, the best kept."""
    raw = client.audio.speech.with_raw_response.create(
        model="tts-1",
        voice="alloy",
        input="Hello there. How are you?",
        response_format="pcm",
        extra_body={"language": "en", "retakes": 2, "seed": 3},
    )
    notice = raw.headers.get("x-notice") or ""
    assert "needed a retake" in notice and "after 2 take(s)" in notice, notice
    assert raw.headers["x-retakes"] == "2/2" and len(raw.content) > 0
    for bad in ({"retakes": 11}, {"retakes": -1}, {"retakes": "two"}):
        with pytest.raises(openai.BadRequestError):
            client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", extra_body=bad)
    # streamed: each sentence is checked before it is sent (whole sentences, not chunks)
    with client.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="alloy",
        input="Hello there. How are you?",
        response_format="pcm",
        extra_body={"language": "en", "retakes": 2, "seed": 3, "stream_format": "audio"},
    ) as streamed:
        assert len(streamed.read()) > 0
