"""Speech synthesis with XTTS v2: ``engine.TTSEngine`` and its collaborators (the map is in ``engine``'s docstring)."""
