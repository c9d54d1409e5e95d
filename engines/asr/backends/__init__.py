"""ASR backends (openai-whisper, faster-whisper) behind one interface."""
