"""Speech synthesis with XTTS v2: the engine, streaming, text splitting."""
