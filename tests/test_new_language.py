"""Teaching XTTS a language it lacks (issue 21), end to end with the tiny model (plumbing, not quality):
a Latin-script language (Vietnamese) and a Cyrillic one with letters Russian lacks (Ukrainian)."""

from __future__ import annotations

import dataclasses
import json
import threading
from types import SimpleNamespace

import pytest
import torch

from engines.core.errors import InputError
from engines.datasets import DatasetOptions
from engines.training.engine import TrainingEngine
from engines.training.options import TrainOptions
from engines.training.runs import read_metrics, read_run
from engines.tts import vocab
from pages import finetune_train as train_page
from tests.test_training import make_dataset, make_settings, wait_done, wait_for

pytestmark = pytest.mark.slow

SENTENCES = {
    "vi": [
        "xin chào các bạn",
        "hôm nay trời đẹp quá",
        "tôi thích đọc sách",
        "cảm ơn bạn rất nhiều",
        "chúng ta đi dạo nhé",
        "bạn có khỏe không",
    ],
    "uk": [
        "привіт друзі",
        "сьогодні чудова погода",
        "я люблю читати книжки",
        "дякую вам дуже",
        "ходімо гуляти їжаку",
        "як ваші справи",
    ],
}


@pytest.mark.timeout(1500)  # build, train, stop, resume, export, then TTS, tab, API and an eval run
@pytest.mark.parametrize("language", ["vi", "uk"])
def test_a_new_language_is_taught_resumed_exported_and_spoken(language, tmp_path, tiny_models, speak):
    settings = make_settings(tmp_path, tiny_models)
    clips = [(speak(text, lang=language, name=f"{language}{i}"), text) for i, text in enumerate(SENTENCES[language])]
    # the dataset, from the recordings and a transcripts file, as a user builds it in the Dataset tab
    from engines import Engines

    listing = tmp_path / "transcripts.csv"
    listing.write_text("".join(f"{path.name}|{text}\n" for path, text in clips), encoding="utf-8")
    lab = Engines.create(settings, tiny=tiny_models)
    lab.datasets.build(f"lang-{language}", [str(p) for p, _ in clips], language, transcripts=str(listing))
    engine = TrainingEngine(settings, tiny=tiny_models)
    options = TrainOptions(
        dataset=f"lang-{language}", base_model="tiny", epochs=3, batch_size=1, grad_accum=1, save_every=1, seed=1
    )

    report = engine.vocabulary(options)  # what the Train tab shows before starting
    assert report.needs_extension and not report.language_token and f"[{language}]" in report.summary()
    shown = train_page.vocabulary_markdown(
        SimpleNamespace(training=engine), {"dataset": options.dataset, "base": "tiny", **_preset_values(options)}
    )
    assert "Start will extend the vocabulary" in shown and f"[{language}]" in shown

    run_id = engine.start(options)
    run_dir = engine.run_dir(run_id)
    wait_for(lambda: any(r.get("kind") == "train" and r["step"] >= 2 for r in read_metrics(run_dir)), 300, "step 2")
    assert engine.stop(run_id).status == "stopped"  # stopped with a checkpoint of the extended GPT...
    engine.resume(run_id)  # ...and resumed from it: the run's extended base is kept
    status = wait_done(engine, run_id)
    assert status.status == "finished", status.log_tail
    assert read_run(run_dir)["resumed_from"]
    info = json.loads((engine.run_dir(run_id) / "run.json").read_text())
    ext = info["vocabulary"]["extension"]
    assert ext["language"] == language and ext["new_size"] > ext["old_size"]
    assert info["base"]["vocab"].endswith("/base/vocab.json")

    out = engine.export(run_id, name=f"voice-{language}")
    config = json.loads((out / "config.json").read_text())
    assert language in config["languages"] and language in vocab.vocabulary_languages(out / "vocab.json")
    state = torch.load(out / "model.pth", map_location="cpu", weights_only=True)["model"]
    assert state["gpt.text_embedding.weight"].shape[0] == ext["new_size"]
    base = torch.load(tiny_models.xtts_dir / "model.pth", map_location="cpu", weights_only=True)["model"]
    assert state["gpt.text_embedding.weight"].shape[0] > base["gpt.text_embedding.weight"].shape[0]

    # continue training from the exported voice: its vocabulary already covers the language, no second extension
    again = engine.start(dataclasses.replace(options, base_model=f"voice-{language}", epochs=1))
    assert wait_done(engine, again).status == "finished"
    info2 = json.loads((engine.run_dir(again) / "run.json").read_text())
    assert info2["vocabulary"]["extension"] is None and not info2["vocabulary"]["coverage"]["needs_extension"]

    # ---- use: the TTS engine and tab, the /v1 API and an eval run speak it with this model, and only with it
    _speaks_it(settings, tiny_models, language, f"voice-{language}", clips[0][0])


def _speaks_it(settings, tiny_models, language: str, model_id: str, reference) -> None:
    import openai

    from engines import Engines
    from engines.core.errors import InputError
    from engines.core.options import TTSOptions
    from engines.eval import EvalConfig
    from pages import tts as page
    from tests.browser_helpers import launched_app

    engines = Engines.create(settings, tiny=tiny_models)
    text = SENTENCES[language][1]
    options = TTSOptions(language=language, max_audio_tokens=20)
    result = engines.tts.synthesize(text, model_id=model_id, reference=[reference], options=options, save=False)
    assert result.audio.size > 0
    with pytest.raises(InputError, match=f"'{language}' is not supported by XTTS v2"):
        engines.tts.synthesize(text, model_id="tiny", reference=[reference], options=options, save=False)

    assert language in [code for _, code in page.language_choices(engines, model_id)]  # the tab offers it...
    assert language not in [code for _, code in page.language_choices(engines, "tiny")]  # ...only for this model
    audio, _files, _stats = page.generate_callback(
        engines, {"text": text, "language": language, "model": model_id, "files": [str(reference)], "tokens": 20}
    )
    assert audio

    with launched_app(settings) as (_demo, url):
        client = openai.OpenAI(base_url=f"{url}v1", api_key="x", max_retries=0, timeout=300)
        raw = client.audio.speech.with_raw_response.create(
            model=model_id, voice="alloy", input=text, response_format="wav", extra_body={"language": language}
        )
        assert raw.headers["x-language"] == language and len(raw.content) > 44
        with pytest.raises(openai.BadRequestError, match="not supported by XTTS v2"):
            client.audio.speech.create(model="tiny", voice="alloy", input=text, extra_body={"language": language})

    sentences = settings.workspace_sub("sets") / f"{language}.csv"
    sentences.write_text("text,language\n" + "".join(f"{t},{language}\n" for t in SENTENCES[language][:2]))
    run = engines.eval.run(
        EvalConfig(sentences=str(sentences), models=(model_id,), voices=(str(reference),), ground_truth=False, seed=1)
    )
    _, rows, _ = engines.eval.load_run(run.folder.name)
    assert len(rows) == 2 and {r["language"] for r in rows} == {language}


def _preset_values(options: TrainOptions) -> dict:
    """The Train tab's form values (by name) for these options."""
    return {name: getattr(options, name) for name in train_page.PRESET_FIELDS if hasattr(options, name)} | {
        "seed": options.seed
    }


@pytest.mark.real_weights
def test_real_xtts_v2_learns_a_new_language(tmp_path, tiny_models, speak):
    """The same flow on the real XTTS v2 base (users who have its weights and training assets run it; a GPU helps:
    one epoch of six clips)."""
    from engines.core.errors import LabError
    from engines.core.options import TTSOptions
    from engines.tts.engine import TTSEngine

    settings = dataclasses.replace(make_settings(tmp_path, tiny_models), tiny_models=False, xtts_cache_dir=None)
    engine = TrainingEngine(settings)
    try:
        engine.resolve_base("xtts_v2")
    except LabError as exc:
        pytest.skip(f"XTTS v2 weights or training assets are not on this machine: {exc}")
    clips = [(speak(text, lang="vi"), text) for text in SENTENCES["vi"]]
    make_dataset(settings.path("datasets_dir"), "lang-vi", clips, n_eval=2, language="vi")
    options = TrainOptions(dataset="lang-vi", base_model="xtts_v2", epochs=1, batch_size=2, grad_accum=1, seed=1)
    report = engine.vocabulary(options)
    assert report.needs_extension and not report.language_token  # XTTS v2 has no [vi]
    run_id = engine.start(options)
    assert wait_done(engine, run_id, timeout=3600).status == "finished"
    out = engine.export(run_id, name="voice-vi-real")
    tts = TTSEngine(settings, threading.RLock())
    options_vi = TTSOptions(language="vi", max_audio_tokens=200)
    result = tts.synthesize(SENTENCES["vi"][0], model_id=out.name, reference=[clips[0][0]], options=options_vi)
    assert result.audio_seconds > 0.2
    with pytest.raises(LabError, match="'vi' is not supported by XTTS v2"):
        tts.synthesize(SENTENCES["vi"][0], model_id="xtts_v2", reference=[clips[0][0]], options=options_vi)


def test_a_dataset_in_a_new_language_is_built_from_a_transcripts_file(tmp_path, tiny_models, speak):
    """Any ISO 639 code builds with a transcripts file; without one, Whisper must know the language."""
    from engines import Engines
    from engines.core.errors import InputError
    from engines.datasets.manifest import read_info, read_metadata

    settings = make_settings(tmp_path, tiny_models)
    engines = Engines.create(settings, tiny=tiny_models)
    texts = ["გამარჯობა მეგობრებო", "დღეს კარგი ამინდია", "მადლობა დახმარებისთვის", "როგორ ხარ დღეს"]
    wavs = [speak(text, lang="ka", name=f"ka{i}") for i, text in enumerate(texts)]
    listing = tmp_path / "transcripts.csv"
    listing.write_text("".join(f"{w.name}|{t}\n" for w, t in zip(wavs, texts)), encoding="utf-8")
    report = engines.datasets.build("georgian", [str(w) for w in wavs], "ka", transcripts=str(listing))
    folder = settings.path("datasets_dir") / "georgian"
    assert read_info(folder)["language"] == "ka" and report.files
    kept = [e.text for split in ("train", "eval") for e in read_metadata(folder, split)]
    assert kept and set(kept) <= set(texts)  # the texts as given: no character lost

    with pytest.raises(InputError, match="Whisper does not know the language 'tlh'"):
        engines.datasets.build("klingon", [str(wavs[0])], "tlh")
    with pytest.raises(InputError, match="not a language code"):
        engines.datasets.build("nonsense", [str(wavs[0])], "georgian!")


def test_a_nan_threshold_on_the_dataset_page_is_refused_not_replaced():
    from pages import finetune_dataset

    with pytest.raises(InputError, match="silence_db must be a finite number"):
        finetune_dataset.build_options({"silence_db": float("nan")})
    assert finetune_dataset.build_options({"silence_db": ""}).silence_db == DatasetOptions().silence_db
