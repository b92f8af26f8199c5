"""Speaker-embedding backends behind one interface: `embed(16 kHz clips) -> (B, D)` unit vectors.

* `wavlm-tdnn`: UniSpeech's WavLM-Large + ECAPA-TDNN (the model papers report SIM with), from a local
  `wavlm_large_finetune.pth` loaded strictly. Comparable to published SIM-o/SIM-r numbers.
* `resemblyzer`: the GE2E d-vector whose weights ship in the `resemblyzer` wheel; the offline default.
  NOT comparable to papers' SIM (different model, different score range); always labelled as such.

Both are built by name, `SPEAKER_BACKENDS.build(name, device=..., **options)`, each checking its `Options`.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from flashspeech.foundation.fields import field_names
from flashspeech.foundation.hashing import cached_sha256
from flashspeech.foundation.registry import NoOptions, Registry
from suites.base import SuiteError

if TYPE_CHECKING:
    from suites.similarity.wavlm_tdnn import WavLMTDNNConfig

SAMPLE_RATE = 16_000
SPEAKER_BACKENDS = Registry("similarity backend", "name")  # speaker-embedding backend classes by `name`


class AudioRejected(ValueError):
    """Some clips of a batch cannot be embedded; `problems` maps their batch index to the reason."""

    def __init__(self, problems: dict[int, str]):
        self.problems = problems
        super().__init__("; ".join(f"clip {i}: {msg}" for i, msg in sorted(problems.items())))


class EmbeddingBackend(ABC):
    """A speaker encoder: 16 kHz mono float32 clips in, L2-normalised embeddings out."""

    name: str
    label: str  # how its numbers must be labelled wherever they appear
    comparable_to_papers: bool
    Options: ClassVar[type] = NoOptions  # what a config sets of it (the registry checks it before building)

    @abstractmethod
    def embed(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        """(B, D) float32 CPU tensor of unit vectors; raises `AudioRejected` naming unusable clips."""

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "label": self.label, "comparable_to_papers": self.comparable_to_papers}


@SPEAKER_BACKENDS.register
class ResemblyzerBackend(EmbeddingBackend):
    """resemblyzer's `VoiceEncoder` (GE2E, 256-d) with its `preprocess_wav` (volume norm + VAD trimming).

    Clips are cut into resemblyzer's 1.6 s partials exactly as `embed_utterance` does (rate 1.3,
    coverage 0.75), the partials of all clips of a batch go through the LSTM together, and each clip's
    embedding is the normalised mean of its partials -- identical to `embed_utterance`, only batched.
    """

    name = "resemblyzer"
    label = "resemblyzer (GE2E d-vector, not WavLM-TDNN)"
    comparable_to_papers = False

    def __init__(self, device: str = "cpu", trim_silence: bool = True, partials_per_batch: int = 256):
        try:
            with warnings.catch_warnings():  # webrtcvad imports pkg_resources; scipy namespace deprecations
                warnings.simplefilter("ignore")
                import resemblyzer
                from resemblyzer import VoiceEncoder
        except ImportError as exc:
            raise SuiteError(
                f"the resemblyzer backend needs the `resemblyzer` package ({exc}); "
                "pip install 'resemblyzer==0.1.4' 'setuptools<81'"
            ) from exc
        self._rz = resemblyzer
        self.encoder = VoiceEncoder(device, verbose=False).eval()
        self.device = device
        self.trim_silence = trim_silence
        self.partials_per_batch = partials_per_batch
        self.weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
        self._weights_sha256 = cached_sha256(self.weights)

    def preprocess(self, wav: np.ndarray) -> np.ndarray:
        """resemblyzer's `preprocess_wav` of a 16 kHz clip (volume normalisation + VAD silence trimming)."""
        wav = np.asarray(wav, dtype=np.float32)
        if self.trim_silence:
            return self._rz.preprocess_wav(wav)
        from resemblyzer.hparams import audio_norm_target_dBFS

        return self._rz.normalize_volume(wav, audio_norm_target_dBFS, increase_only=True)

    def _partials(self, wav: np.ndarray) -> np.ndarray:
        from resemblyzer.audio import wav_to_mel_spectrogram

        wav_slices, mel_slices = self.encoder.compute_partial_slices(len(wav), rate=1.3, min_coverage=0.75)
        end = wav_slices[-1].stop
        if end >= len(wav):
            wav = np.pad(wav, (0, end - len(wav)))
        mel = wav_to_mel_spectrogram(wav)
        return np.stack([mel[s] for s in mel_slices])

    def embed(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        problems: dict[int, str] = {}
        partials: list[np.ndarray] = []
        for i, clip in enumerate(clips):
            try:
                wav = self.preprocess(clip)
            except Exception as exc:  # e.g. webrtcvad on a clip shorter than one VAD window
                problems[i] = f"resemblyzer preprocessing failed: {type(exc).__name__}: {exc}"
                continue
            if len(wav) < SAMPLE_RATE // 10:
                problems[i] = f"no speech left after resemblyzer's VAD trimming ({len(wav) / SAMPLE_RATE:.2f} s)"
                continue
            partials.append(self._partials(wav))
        if problems:
            raise AudioRejected(problems)
        counts = [len(p) for p in partials]
        mels = torch.from_numpy(np.concatenate(partials)).to(self.device)
        with torch.inference_mode():
            outs = [self.encoder(chunk) for chunk in torch.split(mels, self.partials_per_batch)]
        per_partial = torch.cat(outs).float().cpu()
        means = torch.stack([part.mean(0) for part in torch.split(per_partial, counts)])
        return F.normalize(means, dim=1)

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            **super().describe(),
            "model": "resemblyzer VoiceEncoder (GE2E LSTM d-vector, 256-d)",
            "package": f"resemblyzer=={version('resemblyzer')}",
            "weights": str(self.weights),
            "weights_sha256": self._weights_sha256,
            "preprocessing": "volume normalisation to -30 dBFS"
            + (" + webrtcvad long-silence trimming" if self.trim_silence else " (no VAD trimming)"),
            "partials": "1.6 s windows, rate 1.3, min coverage 0.75 (resemblyzer embed_utterance)",
            "device": self.device,
        }


@dataclass(frozen=True)
class WavLMTDNNOptions:
    """What a config sets of WavLM-TDNN: the local `wavlm_large_finetune.pth` (None: the model directory's)
    and the clips per forward pass."""

    checkpoint: str | None = None
    batch_size: int = 8


@SPEAKER_BACKENDS.register
class WavLMTDNNBackend(EmbeddingBackend):
    """UniSpeech WavLM-TDNN from a local checkpoint; padded batches sorted by length, masks throughout."""

    name = "wavlm-tdnn"
    label = "WavLM-TDNN (UniSpeech wavlm_large_finetune, as in seed-tts-eval / F5-TTS)"
    comparable_to_papers = True
    Options = WavLMTDNNOptions

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 8,
        config: WavLMTDNNConfig | None = None,
    ):
        """Build the model (`config`: WavLM-Large + UniSpeech head by default) and load `checkpoint` strictly."""
        from flashspeech.foundation.unispeech import load_checkpoint
        from suites.similarity.wavlm_tdnn import WavLMTDNN

        self.device = device
        self.batch_size = batch_size
        with torch.device("meta"):  # weights come from the checkpoint (assigned), not a random init
            self.model = WavLMTDNN(config)
        loaded = load_checkpoint(self.model, checkpoint)
        self.model = self.model.to(device).eval()
        self.checkpoint = {
            "path": loaded.path,
            "sha256": loaded.sha256,
            "sha256_pinned": False,  # no authoritative digest published: recorded, not verified
            "source_keys": loaded.report.source_keys,
            "ignored_keys": loaded.report.ignored,
        }

    def embed(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        problems = {i: f"shorter than one WavLM frame ({len(c)} samples)" for i, c in enumerate(clips) if len(c) < 400}
        if problems:
            raise AudioRejected(problems)
        order = sorted(range(len(clips)), key=lambda i: len(clips[i]))
        out = torch.empty(len(clips), self.model.config.head.embedding_dim)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            lengths = torch.tensor([len(clips[i]) for i in idx])
            batch = torch.zeros(len(idx), int(lengths.max()))
            for row, i in enumerate(idx):
                batch[row, : len(clips[i])] = torch.from_numpy(np.asarray(clips[i], dtype=np.float32))
            with torch.inference_mode():
                emb = self.model(batch.to(self.device), lengths.to(self.device))
            out[idx] = F.normalize(emb.float().cpu(), dim=1)
        return out

    def describe(self) -> dict[str, Any]:
        import torchaudio

        return {
            **super().describe(),
            "model": "WavLM-Large (torchaudio wavlm_model) + ECAPA-TDNN, 25 softmax-weighted hidden states, 256-d",
            "checkpoint": self.checkpoint,
            "preprocessing": "16 kHz, per-utterance waveform layer norm (s3prl WavLM-Large), no VAD",
            "batching": f"length-sorted padded batches of {self.batch_size} with frame masks (padding-invariant)",
            "torch": torch.__version__,
            "torchaudio": torchaudio.__version__,
            "device": self.device,
        }


def backend_options(backend: str, checkpoint: str | None, batch_size: int) -> dict[str, Any]:
    """A backend's options from the similarity suite's: the checkpoint when one is set, and the suite's batch
    size when the backend batches on its own (wavlm-tdnn)."""
    options: dict[str, Any] = {} if checkpoint is None else {"checkpoint": checkpoint}
    if backend in SPEAKER_BACKENDS and "batch_size" in field_names(SPEAKER_BACKENDS[backend].Options):
        options["batch_size"] = batch_size
    return options
