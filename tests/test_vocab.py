"""Vocabulary extension for a language XTTS lacks (engines.tts.vocab): coverage, exact old tokenization, grown rows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.core.errors import InputError
from engines.training.runs import BaseModel
from engines.training.vocabulary import prepare_base
from engines.tts import vocab

VIETNAMESE = [
    "Xin chào, tôi tên là Lan và tôi đến từ Hà Nội.",
    "Hôm nay trời đẹp quá, chúng ta đi dạo nhé.",
    "Tôi có 3 con mèo và 12 con cá.",
    "Cảm ơn bạn rất nhiều vì đã giúp đỡ tôi.",
]
UKRAINIAN = [
    "Привіт, як справи? Мене звати Олена.",
    "Сьогодні чудова погода, ходімо гуляти.",
    "У мене є 3 коти та 12 рибок.",
    "Дякую вам за допомогу, це дуже приємно.",
]
GEORGIAN = ["გამარჯობა, როგორ ხარ?", "დღეს კარგი ამინდია."]
ENGLISH = [
    "the quick brown fox jumps over the lazy dog.",
    "and so my fellow americans, ask not what your country can do for you.",
    "printing differs from most arts.",
]


@pytest.fixture()
def base_vocab(tiny_models, tmp_path) -> Path:
    copy = tmp_path / "vocab.json"
    copy.write_bytes((Path(tiny_models.xtts_dir) / "vocab.json").read_bytes())
    return copy


def test_coqui_cleans_its_languages_and_the_fallback_says_what_it_did():
    assert vocab.clean_text('Hello "World" 42', "en").steps == ("coqui cleaners",)
    vi = vocab.clean_text("Tôi có  3 con MÈO", "vi")
    assert vi.text == "tôi có ba con mèo"
    assert "numbers spelled out (num2words)" in vi.steps
    ka = vocab.clean_text("მაქვს 3 კატა", "ka")  # num2words has no Georgian: digits stay, and it says so
    assert "3" in ka.text and "numbers kept as digits (num2words lacks it)" in ka.steps
    assert vocab.clean_text("გამარჯობა!", "ka").text == "გამარჯობა!"  # nothing deleted


def test_coverage_reports_unknown_characters_and_a_missing_language_token(base_vocab):
    report = vocab.coverage(VIETNAMESE, base_vocab, "vi")
    assert report.needs_extension and not report.language_token
    assert report.unk_tokens > 0 and 0 < report.unk_share < 1
    assert "ư" in report.unknown_chars or "ạ" in report.unknown_chars or "ế" in report.unknown_chars
    assert "[UNK]" in report.summary() and "[vi]" in report.summary()
    english = vocab.coverage(ENGLISH, base_vocab, "en")
    assert english.language_token and english.unk_tokens == 0


@pytest.mark.parametrize(("code", "texts"), [("vi", VIETNAMESE), ("uk", UKRAINIAN), ("ka", GEORGIAN)])
def test_extension_covers_the_new_language(base_vocab, tmp_path, code, texts):
    out = tmp_path / f"vocab-{code}.json"
    ext = vocab.extend_vocabulary(base_vocab, texts, code, out)
    assert ext.new_size > ext.old_size and ext.language_token_id == ext.new_size - 1
    after = vocab.coverage(texts, out, code)
    assert after.language_token and after.unk_tokens == 0
    assert not after.needs_extension, after.reasons
    assert code in vocab.vocabulary_languages(out)
    before = vocab.coverage(texts, base_vocab, code)
    assert after.tokens_per_char <= before.tokens_per_char


def test_old_languages_tokenize_exactly_as_before(base_vocab, tmp_path):
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

    out = tmp_path / "vocab-vi.json"
    vocab.extend_vocabulary(base_vocab, VIETNAMESE + UKRAINIAN, "vi", out)
    old, new = VoiceBpeTokenizer(str(base_vocab)), VoiceBpeTokenizer(str(out))
    for text in ENGLISH:
        assert new.encode(text, "en") == old.encode(text, "en")
    assert new.encode("hola, ¿cómo estás?", "es") == old.encode("hola, ¿cómo estás?", "es")
    # random words over the base alphabet: none of them may meet a new merge
    data = json.loads(base_vocab.read_text())
    alphabet = sorted({t for t in data["model"]["vocab"] if len(t) == 1 and t.isalpha()})
    rng = random.Random(0)
    for _ in range(300):
        text = " ".join("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(4))
        assert new.tokenizer.encode(text).ids == old.tokenizer.encode(text).ids, text


def test_lab_tokenizer_speaks_the_new_language_coqui_refuses(base_vocab, tmp_path):
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

    out = tmp_path / "vocab-vi.json"
    ext = vocab.extend_vocabulary(base_vocab, VIETNAMESE, "vi", out)
    with pytest.raises(NotImplementedError):
        VoiceBpeTokenizer(str(out)).encode(VIETNAMESE[0], "vi")
    lab = vocab.lab_tokenizer(out)
    ids = lab.encode(VIETNAMESE[0], "vi")
    assert ids[0] == ext.language_token_id and lab.tokenizer.token_to_id("[UNK]") not in ids
    assert lab.char_limits["vi"] == vocab.DEFAULT_CHAR_LIMIT
    assert lab.encode(ENGLISH[0], "en") == VoiceBpeTokenizer(str(out)).encode(ENGLISH[0], "en")


def test_grown_rows_keep_every_old_row_bit_identical():
    torch.manual_seed(0)
    state = {
        "gpt.text_embedding.weight": torch.randn(300, 64),
        "gpt.text_head.weight": torch.randn(300, 64),
        "gpt.text_head.bias": torch.randn(300),
        "gpt.other": torch.randn(3),
    }
    grown = vocab.grow_text_rows(state, 320)
    for key in vocab.TEXT_ROW_KEYS:
        old, new = state["gpt." + key], grown["gpt." + key]
        assert new.shape[0] == 320 and torch.equal(new[:300], old)
        assert torch.allclose(new[300:], old.mean(dim=0, keepdim=True).expand(20, *old.shape[1:]))
    assert grown["gpt.other"] is state["gpt.other"]
    with pytest.raises(InputError, match="more than"):
        vocab.grow_text_rows(state, 299)


def test_language_codes_are_checked():
    from engines.core.names import speech_language

    assert speech_language(" VI ") == "vi" and speech_language("yue") == "yue" and speech_language("zh") == "zh-cn"
    for bad in ("", "vietnamese", "v", "../x", None):
        with pytest.raises(InputError):
            speech_language(bad)


def _tiny_base(tiny_models) -> BaseModel:
    folder = Path(tiny_models.xtts_dir)
    return BaseModel(
        model_id="tiny",
        model_dir=folder,
        checkpoint=folder / "model.pth",
        config=folder / "config.json",
        vocab=folder / "vocab.json",
        dvae=folder / "dvae.pth",
        mel_stats=folder / "mel_stats.pth",
        speakers=None,
    )


def test_a_covered_dataset_trains_from_the_base_itself(tiny_models, tmp_path):
    base = _tiny_base(tiny_models)
    same, record = prepare_base(tmp_path / "run", base, ENGLISH, "en")
    assert same == base and record["extension"] is None and not record["coverage"]["needs_extension"]
    with pytest.raises(InputError, match="does not cover"):
        prepare_base(tmp_path / "run", base, VIETNAMESE, "vi", extend=False)


def test_an_extended_base_loads_through_coqui_and_speaks_the_new_language(tiny_models, tmp_path):
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts

    base = _tiny_base(tiny_models)
    extended, record = prepare_base(tmp_path / "run", base, VIETNAMESE, "vi")
    assert extended.checkpoint.parent == tmp_path / "run" / "base" and extended.dvae == base.dvae
    new_size = record["extension"]["new_size"]
    config = XttsConfig()
    config.load_json(str(extended.config))
    assert "vi" in config.languages and vocab.model_languages(config.to_dict())[-1] == "vi"
    model = Xtts(config)
    model.load_checkpoint(config, checkpoint_dir=str(extended.checkpoint.parent), eval=True, use_deepspeed=False)
    assert model.gpt.text_embedding.weight.shape[0] == new_size
    old = torch.load(base.checkpoint, map_location="cpu", weights_only=True)["model"]["gpt.text_embedding.weight"]
    assert torch.equal(model.gpt.text_embedding.weight[: old.shape[0]].detach(), old)
    model.tokenizer = vocab.lab_tokenizer(extended.vocab)
    torch.manual_seed(0)
    latent, embedding = model.get_conditioning_latents(audio_path=[str(_speech(tmp_path))])
    out = model.inference(VIETNAMESE[1], "vi", latent, embedding, enable_text_splitting=False, max_new_tokens=40)
    wav = np.asarray(out["wav"])
    assert wav.size > 0 and np.isfinite(wav).all()


def _speech(tmp_path: Path) -> Path:
    import soundfile as sf

    t = np.arange(int(22050 * 2.0)) / 22050
    wav = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    path = tmp_path / "ref.wav"
    sf.write(path, wav.astype(np.float32), 22050)
    return path


def test_whisper_is_told_the_languages_it_knows_and_detects_the_others():
    from engines.asr.options import whisper_code

    assert whisper_code("vi") == "vi" and whisper_code("zh-cn") == "zh" and whisper_code("uk") == "uk"
    assert whisper_code("tlh") is None and whisper_code("bem") is None  # eval transcribes these with detection
