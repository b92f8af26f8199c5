"""The mel codec's neural decoder: shapes and framing, the iSTFT head's round trip, strict sha256 loading, and the
codec's decoder selection."""

from __future__ import annotations

import json

import pytest
import torch

from flashspeech.codecs import MelCodec, load_codec
from flashspeech.codecs.vocos import (
    CONFIG,
    WEIGHTS,
    VocoderError,
    Vocos,
    VocosConfig,
    load_vocoder,
    save_vocoder,
)

SMALL = VocosConfig(dim=32, intermediate=64, layers=2)


def small_vocoder(seed: int = 0) -> Vocos:
    torch.manual_seed(seed)
    return Vocos(SMALL).eval()


@pytest.fixture
def vocoder_dir(tmp_path):
    return save_vocoder(small_vocoder(), MelCodec().describe(), tmp_path / "voc", note="test")


@pytest.mark.parametrize("frames", [1, 2, 7, 80])
def test_t_frames_decode_to_t_hops(frames):
    wav = small_vocoder()(torch.randn(3, 100, frames) - 5)
    assert wav.shape == (3, frames * 200) and torch.isfinite(wav).all()


def test_bad_input_shape_is_named():
    with pytest.raises(ValueError, match=r"expected a log-mel \[B, 100, T\]"):
        small_vocoder()(torch.randn(1, 80, 10))


def test_the_istft_head_inverts_the_spectrum_it_is_given(monkeypatch):
    """The head's inverse: fed the exact centred STFT (its n_fft, hop, window) of a T*hop-sample signal, the
    decoder returns that signal sample for sample, so frame t sits at sample t*hop as in the codec's encoder."""
    model = small_vocoder()
    cfg = model.config
    frames = 50
    wav = torch.randn(2, frames * cfg.hop_length) * 0.1
    spec = torch.stft(wav, cfg.n_fft, cfg.hop_length, cfg.n_fft, model.window, center=True, return_complex=True)
    assert spec.shape[-1] == frames + 1  # the head predicts T + 1 frames (last input frame repeated)
    monkeypatch.setattr(model, "spectrum", lambda log_mel: spec)
    out = model(torch.zeros(2, 100, frames))
    assert out.shape == wav.shape
    torch.testing.assert_close(out, wav, atol=1e-5, rtol=0)


def test_head_spectrum_shape_and_magnitude_clip():
    model = small_vocoder()
    spec = model.spectrum(torch.randn(1, 100, 9) - 5)
    assert spec.shape == (1, SMALL.n_fft // 2 + 1, 10) and spec.is_complex()
    assert float(spec.detach().abs().max()) <= SMALL.max_magnitude + 1e-3


def test_save_and_strict_load_round_trip(vocoder_dir):
    model, description = load_vocoder(vocoder_dir)
    assert description["type"] == "vocos" and description["metadata"] == {"note": "test"}
    assert description["mel"]["hop_length"] == 200 and description["parameters"] > 0
    x = torch.randn(1, 100, 12) - 5
    torch.testing.assert_close(model(x), small_vocoder()(x))


def test_changed_weights_fail_the_sha256_check(vocoder_dir):
    from safetensors.torch import load_file, save_file

    state = load_file(str(vocoder_dir / WEIGHTS))
    state["head.bias"] = state["head.bias"] + 1
    save_file(state, str(vocoder_dir / WEIGHTS))
    with pytest.raises(VocoderError, match=r"sha256 \w+ does not match \w+ recorded in config\.json"):
        load_vocoder(vocoder_dir)


@pytest.mark.parametrize("change", ["missing", "unexpected", "shape"])
def test_keys_that_do_not_match_the_network_are_named(vocoder_dir, change):
    from safetensors.torch import load_file, save_file

    from flashspeech.foundation.hashing import sha256_file

    state = load_file(str(vocoder_dir / WEIGHTS))
    if change == "missing":
        del state["head.bias"]
    elif change == "unexpected":
        state["extra.weight"] = torch.zeros(1)
    else:
        state["head.bias"] = torch.zeros(3)
    save_file(state, str(vocoder_dir / WEIGHTS))
    config = json.loads((vocoder_dir / CONFIG).read_text())
    config["weights_sha256"] = sha256_file(vocoder_dir / WEIGHTS)  # a consistent but wrong checkpoint
    (vocoder_dir / CONFIG).write_text(json.dumps(config))
    expected = {"missing": r"missing keys \(1\): head\.bias", "unexpected": r"unexpected keys \(1\): extra\.weight",
                "shape": r"shape mismatches \(1\): head\.bias"}[change]  # fmt: skip
    with pytest.raises(VocoderError, match=expected):
        load_vocoder(vocoder_dir)


def test_a_directory_that_is_no_vocoder_is_refused(tmp_path):
    with pytest.raises(VocoderError, match=r"config.json: not found"):
        load_vocoder(tmp_path)
    (tmp_path / CONFIG).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(VocoderError, match=r"format 'something-else', expected 'flashspeech-bench/vocoder-v1'"):
        load_vocoder(tmp_path)


def test_codec_decodes_with_the_named_decoder_and_describes_it(vocoder_dir):
    codec = MelCodec(decoder=str(vocoder_dir))
    description = codec.describe()
    assert description["decoder"] == str(vocoder_dir) and len(description["decoder_sha256"]) == 64
    latent = torch.randn(1, 100, 20) - 5
    torch.testing.assert_close(codec.decode(latent), small_vocoder()(latent))
    assert codec.griffin_lim(latent).shape == codec.decode(latent).shape  # the reference decoder stays available
    assert "decoder" not in MelCodec().describe()  # Griffin-Lim: the description is as it always was
    rebuilt = load_codec(description)
    torch.testing.assert_close(rebuilt.decode(latent), codec.decode(latent))
    back = codec.with_decoder("griffin-lim")
    assert back.vocoder is None and back.describe() == MelCodec().describe()


def test_a_description_whose_decoder_changed_is_refused(vocoder_dir):
    description = MelCodec(decoder=str(vocoder_dir)).describe()
    save_vocoder(small_vocoder(seed=1), MelCodec().describe(), vocoder_dir)  # other weights, same place
    with pytest.raises(VocoderError, match=r"weights sha256 \w+ but the description records"):
        load_codec(description)


def test_a_decoder_trained_on_other_mel_settings_is_refused(tmp_path):
    other = MelCodec(f_max=7600.0)
    path = save_vocoder(small_vocoder(), other.describe(), tmp_path / "voc")
    with pytest.raises(VocoderError, match=r"trained on other mel settings: f_max 7600.0 \(codec: 8000.0\)"):
        MelCodec(decoder=str(path))


def test_unknown_pretrained_decoder_lists_what_is_shipped():
    with pytest.raises(VocoderError, match=r"decoder pretrained:nope: no shipped checkpoint of that name"):
        MelCodec(decoder="pretrained:nope")


def test_other_codecs_have_no_selectable_decoder():
    from flashspeech.codecs import ConvCodec

    with pytest.raises(ValueError, match=r"the 'conv' codec has no selectable decoder"):
        ConvCodec().with_decoder("griffin-lim")
