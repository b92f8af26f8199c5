"""Voice conversion and speech editing on top of `FlashSpeech.synthesize`, as the paper describes them.

Voice conversion: the source latent is diffused to an intermediate sigma (`source + sigma * eps`) and
re-sampled by the consistency model conditioned on the target prompt, keeping the source's phonemes and
durations (so the timing follows the source) and using the pitch predicted for the target voice.

Speech editing: the span to change is cut out, the rest of the utterance becomes the prompt, the new
words are synthesized in that voice, and the pieces are joined with short crossfades.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from flashspeech.model import durations_from_log
from flashspeech.synthesis import FlashSpeech, SynthesisOutput, fit_durations
from flashspeech.text.phonemes import BOS, EOS
from flashspeech.timing import StageTimer

DEFAULT_VC_SIGMA = 2.0  # the paper does not give its noise level; 2 is its two-step intermediate sigma


def _waveform(x: Tensor | np.ndarray, name: str) -> Tensor:
    wav = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not torch.is_tensor(x) else x.float()
    if wav.dim() != 1 or wav.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D waveform, got shape {tuple(wav.shape)}")
    return wav


@torch.inference_mode()
def source_durations(tts: FlashSpeech, text: str, source: Tensor) -> Tensor:
    """Frames per phoneme of `text` as spoken in `source`: the duration predictor with the source as its
    own prompt, rescaled so the total equals the source's frame count (an aligner-free estimate)."""
    model = tts.model
    ids = torch.tensor([tts.frontend.encode(text)], device=tts.device)
    mask = torch.ones_like(ids, dtype=torch.bool)
    prompt, prompt_mask = tts.prompt_latents([source])
    prompt, prompt_mask = prompt.to(tts.device), prompt_mask.to(tts.device)
    spk, style, _ = model.encode_prompt(prompt, prompt_mask)
    hidden = model.encode_phonemes(ids, mask, style)
    log_dur, _ = model.prosody("duration", hidden, mask, spk, prompt_mask, 0.0, None)
    return fit_durations(durations_from_log(log_dur, mask)[0].cpu(), int(prompt_mask.sum()))


@torch.inference_mode()
def convert_voice(
    tts: FlashSpeech,
    source: Tensor | np.ndarray,
    source_text: str,
    target_prompt: Tensor | np.ndarray,
    *,
    sigmas: Sequence[float] = (DEFAULT_VC_SIGMA,),
    durations: Tensor | None = None,
    seed: int = 0,
    alpha: float | None = None,
    timer: StageTimer | None = None,
) -> SynthesisOutput:
    """Say what `source` says, as the speaker of `target_prompt` (both 1-D at tts.sample_rate).

    `sigmas` starts at the intermediate noise level (lower keeps more of the source, higher more of the
    target); `durations` (frames per phoneme, <s> and </s> included) default to `source_durations`.
    `timer` records the source's encoding and duration estimate as stage "source", then synthesis's stages.
    """
    source = _waveform(source, "source")
    target_prompt = _waveform(target_prompt, "target_prompt")
    timer = timer or StageTimer()
    with timer.stage("source", tts.device):
        z = tts.codec.normalize(tts.codec.encode(source.to(tts.device)[None]))[0]
        if durations is None:
            durations = source_durations(tts, source_text, source)
    if int(durations.sum()) != z.shape[-1]:
        raise ValueError(f"durations sum to {int(durations.sum())} frames but the source has {z.shape[-1]}")
    return tts.synthesize(
        [source_text],
        [target_prompt],
        sigmas=list(sigmas),
        seed=seed,
        alpha=alpha,
        durations=[durations],
        start_latents=[z.cpu()],
        timer=timer,
    )


@dataclass
class EditOutput:
    waveform: Tensor  # the edited utterance
    generated: Tensor  # the newly synthesized part alone
    sample_rate: int
    span_samples: tuple[int, int]  # the replaced span of the input
    synthesis: SynthesisOutput


def _crossfade(a: Tensor, b: Tensor, n: int) -> Tensor:
    n = min(n, len(a), len(b))
    if n == 0:
        return torch.cat([a, b])
    ramp = torch.linspace(0.0, 1.0, n)
    return torch.cat([a[:-n], a[-n:] * (1 - ramp) + b[:n] * ramp, b[n:]])


def edit_speech(
    tts: FlashSpeech,
    wav: Tensor | np.ndarray,
    span: tuple[float, float],
    new_text: str,
    *,
    steps: int = 2,
    seed: int = 0,
    crossfade_ms: float = 10.0,
) -> EditOutput:
    """Replace seconds [start, end) of `wav` with `new_text` spoken in the same voice."""
    wav = _waveform(wav, "wav")
    sr = tts.sample_rate
    start, end = round(span[0] * sr), round(span[1] * sr)
    if not 0 <= start < end <= len(wav):
        raise ValueError(f"span {span} s is not inside the audio (0-{len(wav) / sr:.3f} s) or is empty")
    context = torch.cat([wav[:start], wav[end:]])
    if len(context) < tts.codec.hop_length:
        raise ValueError("nothing is left outside the span to use as the voice prompt")
    out = tts.synthesize([new_text], [context], steps=steps, seed=seed)
    generated = _trim_edges(out, tts)
    fade = round(crossfade_ms / 1000 * sr)
    edited = _crossfade(_crossfade(wav[:start], generated, fade), wav[end:], fade)
    return EditOutput(edited, generated, sr, (start, end), out)


def _trim_edges(out: SynthesisOutput, tts: FlashSpeech) -> Tensor:
    """The generated audio without the leading <s> and trailing pause / </s> frames."""
    wav, durs, phonemes = out.waveforms[0], out.durations[0], out.phonemes[0]
    hop = tts.codec.hop_length
    lead = int(durs[0]) if phonemes[0] == BOS else 0
    tail = 0
    for p, d in zip(reversed(phonemes), reversed(durs.tolist()), strict=True):
        if p not in (EOS, "_"):
            break
        tail += int(d)
    stop = len(wav) - tail * hop
    return wav[lead * hop : stop] if stop > lead * hop else wav
