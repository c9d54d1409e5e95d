"""The OpenAI-compatible audio API (``/v1``), served beside the Gradio UI by the same process and engines.

- ``rest.openai_audio``: the routes (``create_api``), mounted by ``main_launcher.launch_kwargs``.
- ``rest.auth``: who may call it (Bearer keys, loopback-only without a login); ``web_guard`` applies it.
- ``rest.errors``: OpenAI's error shape and the mapping of ``engines.core.errors`` onto status codes.
- ``rest.formats``: encoding speech as mp3 / opus / aac / flac / wav / pcm, whole or as a stream.
- ``rest.catalog``: model and voice names (OpenAI's aliases, saved voices, built-in speakers).
- ``rest.language``: the speech language when a request does not give one.
- ``rest.transcription``: transcripts in OpenAI's response formats.
- ``rest.schemas``: request bodies as pydantic schemas (a malformed body is 400 in OpenAI's shape, never 500).

Importing this package is cheap (``web_guard`` imports ``rest.errors`` and ``rest.auth`` at start).
"""
