"""Your overrides of config.py's defaults. This file is yours: edit it, git keeps your copy.

Put Settings field names and values in OVERRIDES. Environment variables (XTTSLAB_<FIELD>) and
command-line flags still win over what you set here. Examples:

    OVERRIDES = {
        "device": "cuda:1",              # pin the app to the second GPU
        "asr_model": "large-v3",         # default Whisper model
        "workspace": "/data/xtts-lab",   # keep outputs, models and runs on a big disk
        "max_text_chars": 5000,
    }
"""

OVERRIDES: dict = {}
