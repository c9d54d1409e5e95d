"""Teaching XTTS a language it lacks (issue 21), end to end with the tiny model (plumbing, not quality):
a Latin-script language (Vietnamese) and a Cyrillic one with letters Russian lacks (Ukrainian)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from engines.training.engine import TrainingEngine
from engines.training.options import TrainOptions
from engines.tts import vocab
from tests.test_training import make_dataset, make_settings, wait_done

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


@pytest.mark.parametrize("language", ["vi", "uk"])
def test_a_new_language_is_taught_resumed_exported_and_spoken(language, tmp_path, tiny_models, speak):
    settings = make_settings(tmp_path, tiny_models)
    clips = [(speak(text, lang=language), text) for text in SENTENCES[language]]
    make_dataset(settings.path("datasets_dir"), f"lang-{language}", clips, n_eval=2, language=language)
    engine = TrainingEngine(settings, tiny=tiny_models)
    options = TrainOptions(
        dataset=f"lang-{language}", base_model="tiny", epochs=2, batch_size=2, grad_accum=1, save_every=1, seed=1
    )

    report = engine.vocabulary(options)  # what the Train tab shows before starting
    assert report.needs_extension and not report.language_token and f"[{language}]" in report.summary()

    run_id = engine.start(options)
    status = wait_done(engine, run_id)
    assert status.status == "finished", status.log_tail
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
