"""Transcription with Whisper: the engine, its backends, the voice-activity gate, transcript types."""
