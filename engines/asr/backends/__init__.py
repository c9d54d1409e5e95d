"""ASR backends (openai-whisper, faster-whisper) behind one interface (``base.Backend``), picked by ``registry``."""
