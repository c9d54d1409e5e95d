"""Long-form scripts: a script parsed into lines, generated line by line into a project in the workspace
(``workspace/scripts/<name>/``: project.json + one WAV per line), resumable, editable line by line, exported as
one audio file with SRT/VTT captions.

- ``parse``: script text -> lines (``Ann: text``, ``[pause:1.5s]``).
- ``project``: the project on disk (``Project``, ``Line``, ``ProjectStore``), edits (text, voice, order).
- ``generate``: generating the missing lines (skips what is done), regenerating one line, progress and ETA.
- ``export``: the joined audio (WAV, FLAC, MP3) and captions whose times come from the generated lines.

Runs without the UI: ``python -m engines.scripts generate <name>`` (see ``engines/scripts/__main__.py``).
"""
