"""MOS predictors behind one interface: `predict(16 kHz mono clips) -> one {metric: score} dict per clip`.

* `distillmos`: DistillMOS (Stahl & Gamper, ICASSP 2025; the `distillmos` wheel's `distill_mos_v7.pt`), a small
  CNN + transformer speech-quality MOS predictor distilled from XLS-R SQA models. The offline default.
* `dnsmos`: Microsoft's DNSMOS (the `speechmos` wheel's ONNX files): P.835 SIG / BAK / OVRL from
  `sig_bak_ovr.onnx` and P.808 MOS from `model_v8.onnx`. Built for noise-suppressed speech, not TTS.
* `utmos`: UTMOS22 strong from a local checkpoint (`suites.mos.utmos`): the predictor the FlashSpeech paper
  reports UTMOS with. The only backend whose numbers may be set next to the paper's UTMOS.

Weights are never downloaded: the two offline predictors read the files shipped in their wheels, whose sha256
is recorded; UTMOS reads a file the user provides (model directory or explicit path). Each is built by name,
`MOS_BACKENDS.build(name, device=..., **options)`, its `Options` checking the options.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from flashspeech.foundation.assets import AssetError
from flashspeech.foundation.hashing import cached_sha256
from flashspeech.foundation.registry import Registry
from suites.base import SuiteError

if TYPE_CHECKING:
    from suites.mos.utmos import LoadedUTMOS, UTMOSConfig

SAMPLE_RATE = 16_000
Scores = dict[str, float]
MOS_BACKENDS = Registry("mos backend", "name")  # MOS predictor classes by `name`


def _package_file(package: str, relative: str) -> Path:
    """A file shipped inside an installed package (no import of the package itself)."""
    try:
        files = metadata.files(package) or []
    except metadata.PackageNotFoundError as exc:
        raise SuiteError(f"the {package} package is not installed: pip install -e '.[mos]'") from exc
    for entry in files:
        if str(entry).replace("\\", "/").endswith(relative):
            return Path(str(entry.locate()))
    raise SuiteError(f"{relative} is not in the installed {package} package; reinstall it: pip install -e '.[mos]'")


class MosBackend(ABC):
    """A MOS predictor: scores 16 kHz clips; `metrics` are the keys of every scores dict it returns."""

    name: ClassVar[str]
    Options: ClassVar[type]  # what a config sets of it (the registry checks it before building)
    predictor: ClassVar[str]  # how its numbers must be labelled wherever they appear
    paper_comparable: ClassVar[bool]  # True only for the paper's predictor (UTMOS22 strong)
    metrics: ClassVar[tuple[str, ...]] = ("mos",)

    @abstractmethod
    def load(self) -> None:
        """Load the model (once)."""

    @abstractmethod
    def predict(self, clips: Sequence[np.ndarray]) -> list[Scores]:
        """One scores dict per clip (mono float32 at 16 kHz, already checked: finite, not empty)."""

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "predictor": self.predictor,
            "paper_comparable": self.paper_comparable,
            "sample_rate": SAMPLE_RATE,
        }


@dataclass
class DistillMOSOptions:
    """DistillMOS settings: `crops_per_batch` bounds how many 7.68 s crops go through the network together."""

    crops_per_batch: int = 16


@MOS_BACKENDS.register
class DistillMOSBackend(MosBackend):
    """DistillMOS v7 with the wheel's checkpoint loaded strictly; clips batched as the model's own crops.

    The model rates 7.68 s crops (122,880 samples): a shorter clip is zero-padded to one crop; a longer one is
    cut into ceil((T - 122880) / 16000) + 1 crops evenly spaced from start to end, each crop is peak-normalised
    and scored, and the clip's MOS is the mean over its crops -- exactly `ConvTransformerSQAModel.forward` with
    segmenting, but the crops of all clips of a batch go through the network together.
    """

    name = "distillmos"
    Options = DistillMOSOptions
    predictor = "DistillMOS (offline, not UTMOS)"
    paper_comparable = False
    CROP = 122_880
    MAX_HOP = 16_000

    def __init__(self, device: str = "cpu", **options: Any):
        self.device = device
        self.options = DistillMOSOptions(**options)
        self.weights = _package_file("distillmos", "distillmos/weights/distill_mos_v7.pt")
        self.model: torch.nn.Module | None = None

    def load(self) -> None:
        if self.model is not None:
            return
        try:
            from distillmos import ConvTransformerSQAModel
        except ImportError as exc:
            raise SuiteError(
                f"the distillmos backend needs the `distillmos` package ({exc}): pip install -e '.[mos]'"
            ) from exc
        model = ConvTransformerSQAModel(load_weights=False, segmenting_in_forward=False)
        checkpoint = torch.load(self.weights, map_location="cpu", weights_only=True)
        state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            raise AssetError(f"DistillMOS checkpoint {self.weights} has no `model` state dict")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # lists every missing / unexpected key and shape mismatch
            raise AssetError(f"DistillMOS checkpoint {self.weights} does not match the model: {exc}") from exc
        self.model = model.to(self.device).eval()

    @classmethod
    def crops(cls, clip: np.ndarray) -> np.ndarray:
        """(n, 122880) crops of a clip, as DistillMOS's forward makes them."""
        if len(clip) <= cls.CROP:
            return np.pad(clip, (0, cls.CROP - len(clip)))[None]
        over = len(clip) - cls.CROP
        hops = math.ceil(over / cls.MAX_HOP) + 1
        starts = [int(c * over) for c in np.linspace(0, 1, hops)]
        return np.stack([clip[s : s + cls.CROP] for s in starts])

    def predict(self, clips: Sequence[np.ndarray]) -> list[Scores]:
        self.load()
        per_clip = [self.crops(np.asarray(c, dtype=np.float32)) for c in clips]
        crops = torch.from_numpy(np.concatenate(per_clip))
        outs = []
        with torch.inference_mode():
            for chunk in torch.split(crops, max(self.options.crops_per_batch, 1)):
                outs.append(self.model(chunk.to(self.device)).float().cpu().reshape(-1))
        scores = torch.cat(outs).double()
        counts = [len(c) for c in per_clip]
        return [{"mos": float(part.mean())} for part in torch.split(scores, counts)]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model": "DistillMOS v7 (ConvTransformerSQAModel: complex-spectrogram CNN + 7-layer transformer)",
            "package": f"distillmos=={metadata.version('distillmos')}",
            "weights": str(self.weights),
            "weights_sha256": cached_sha256(self.weights),
            "segmenting": "7.68 s crops (zero-padded when shorter), hop <= 1 s, peak-normalised; mean over crops",
            "batching": f"crops of a batch scored together, {self.options.crops_per_batch} per forward",
            "device": self.device,
            "torch": torch.__version__,
        }


@dataclass
class DNSMOSOptions:
    """DNSMOS settings: `personalized` uses the personalised P.835 model (pDNSMOS) instead of the standard one."""

    personalized: bool = False


@MOS_BACKENDS.register
class DNSMOSBackend(MosBackend):
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 through the `speechmos` wheel's ONNX files on onnxruntime (CPU).

    Per clip, as speechmos / Microsoft's `dnsmos_local.py`: a clip shorter than 9.01 s is repeated until it is
    not; 9.01 s windows hopped by 1 s are scored (P.835 on the waveform, mapped through DNSMOS's polynomial
    fit; P.808 on a 120-band log-mel of the window) and averaged. The windows of all clips of a batch go through
    each ONNX model in one call. `mos` is OVRL (P.835 overall quality). Samples are clipped to [-1, 1], the
    range a 16-bit file holds (speechmos rejects arrays outside it).
    """

    name = "dnsmos"
    Options = DNSMOSOptions
    predictor = "DNSMOS P.835 OVRL (offline, not UTMOS)"
    paper_comparable = False
    metrics = ("mos", "sig", "bak", "ovrl", "p808")
    WINDOW_S = 9.01

    def __init__(self, device: str = "cpu", **options: Any):
        self.device = device
        self.options = DNSMOSOptions(**options)
        folder = "pdnsmos_models" if self.options.personalized else "dnsmos_models"
        self.primary_path = _package_file("speechmos", f"speechmos/{folder}/sig_bak_ovr.onnx")
        self.p808_path = _package_file("speechmos", "speechmos/dnsmos_models/model_v8.onnx")
        self._dnsmos: Any = None

    def load(self) -> None:
        if self._dnsmos is not None:
            return
        try:
            from speechmos.dnsmos import DNSMOS
        except ImportError as exc:
            raise SuiteError(
                f"the dnsmos backend needs `speechmos` and `onnxruntime` ({exc}): pip install -e '.[mos]'"
            ) from exc
        self._dnsmos = DNSMOS(str(self.primary_path), str(self.p808_path))

    def windows(self, clip: np.ndarray) -> np.ndarray:
        """(n, 144160) scoring windows of a clip, as DNSMOS makes them."""
        length = int(self.WINDOW_S * SAMPLE_RATE)
        audio = clip
        while len(audio) < length:
            audio = np.append(audio, audio)
        hops = int(np.floor(len(audio) / SAMPLE_RATE) - self.WINDOW_S) + 1
        cuts = [audio[int(i * SAMPLE_RATE) : int((i + self.WINDOW_S) * SAMPLE_RATE)] for i in range(hops)]
        return np.stack([c for c in cuts if len(c) >= length]).astype(np.float32)  # DNSMOS skips short cuts

    def predict(self, clips: Sequence[np.ndarray]) -> list[Scores]:
        self.load()
        dns = self._dnsmos
        per_clip = [self.windows(np.clip(np.asarray(c, dtype=np.float32), -1.0, 1.0)) for c in clips]
        windows = np.concatenate(per_clip)
        mels = np.stack([dns.audio_melspec(audio=w[:-160]) for w in windows]).astype(np.float32)
        raw = dns.onnx_sess.run(None, {"input_1": windows})[0]
        p808 = dns.p808_onnx_sess.run(None, {"input_1": mels})[0][:, 0]
        sig, bak, ovrl = dns.get_polyfit_val(raw[:, 0], raw[:, 1], raw[:, 2], self.options.personalized)
        per_window = {"sig": sig, "bak": bak, "ovrl": ovrl, "p808": p808}
        out, start = [], 0
        for part in per_clip:
            window = slice(start, start + len(part))
            start += len(part)
            values = {k: float(np.mean(v[window], dtype=np.float64)) for k, v in per_window.items()}
            out.append({"mos": values["ovrl"], **values})
        return out

    def describe(self) -> dict[str, Any]:
        import onnxruntime

        return {
            **super().describe(),
            "model": ("personalised " if self.options.personalized else "")
            + "DNSMOS P.835 (sig_bak_ovr.onnx) + P.808 (model_v8.onnx)",
            "package": f"speechmos=={metadata.version('speechmos')}",
            "weights": str(self.primary_path),
            "weights_sha256": cached_sha256(self.primary_path),
            "p808_weights_path": str(self.p808_path),
            "p808_weights_sha256": cached_sha256(self.p808_path),
            "personalized": self.options.personalized,
            "mos_is": "ovrl (P.835 overall quality)",
            "windows": "9.01 s, hop 1 s, short clips repeated to 9.01 s; mean over windows; samples clipped to [-1, 1]",
            "onnxruntime": onnxruntime.__version__,
            "device": "cpu (onnxruntime CPUExecutionProvider)",
        }


@dataclass
class UTMOSOptions:
    """UTMOS settings: the local UTMOS22 strong checkpoint (None: the model directory's copy)."""

    checkpoint: str | None = None


@MOS_BACKENDS.register
class UTMOSBackend(MosBackend):
    """UTMOS22 strong from a local checkpoint, loaded strictly; one utterance per forward pass.

    Unbatched on purpose: the first conv layer's group norm normalises over the whole (padded) sequence and the
    BLSTM and the frame mean would read padding, so a padded batch would change every shorter clip's score.
    """

    name = "utmos"
    Options = UTMOSOptions
    predictor = "UTMOS22 strong (SpeechMOS utmos22_strong, the FlashSpeech paper's predictor)"
    paper_comparable = True

    def __init__(self, checkpoint: str | Path | None = None, device: str = "cpu", config: UTMOSConfig | None = None):
        self.checkpoint_arg = checkpoint
        self.device = device
        self.config = config
        self.model: torch.nn.Module | None = None
        self.loaded: LoadedUTMOS | None = None  # the file, its sha256 and the mapping report, once loaded

    def load(self) -> None:
        if self.model is not None:
            return
        from suites.mos.utmos import load_utmos

        self.loaded = load_utmos(self.checkpoint_arg, self.config)
        self.model = self.loaded.model.to(self.device).eval()

    def predict(self, clips: Sequence[np.ndarray]) -> list[Scores]:
        self.load()
        out = []
        with torch.inference_mode():
            for clip in clips:
                wave = torch.from_numpy(np.asarray(clip, dtype=np.float32))[None].to(self.device)
                out.append({"mos": float(self.model(wave).double().cpu()[0])})
        return out

    def _checkpoint(self) -> dict[str, Any]:
        """The checkpoint's identity, the same before and after loading (describe() keys the score cache before
        any model is loaded); a missing file is described by its error, and loading it stops the suite."""
        from suites.mos.utmos import IGNORED, UTMOS_ASSET

        try:
            if self.loaded is not None:
                path, digest = self.loaded.path, self.loaded.sha256
            else:
                path = str(UTMOS_ASSET.resolve(self.checkpoint_arg))
                digest = cached_sha256(path)
        except (AssetError, OSError) as exc:
            return {"path": str(self.checkpoint_arg or UTMOS_ASSET.filename), "error": str(exc)}
        # no authoritative digest is published: the sha256 is recorded, not verified
        return {"path": path, "sha256": digest, "sha256_pinned": False, "ignored_keys": sorted(IGNORED)}

    def describe(self) -> dict[str, Any]:
        import torchaudio

        return {
            **super().describe(),
            "model": "UTMOS22 strong learner: wav2vec 2.0 Base (torchaudio) + domain/judge embeddings + BLSTM + "
            "MLP, frame mean x 2 + 3",
            "checkpoint": self._checkpoint(),
            "batching": "one utterance per forward (group norm over time and the BLSTM would read padding)",
            "device": self.device,
            "torch": torch.__version__,
            "torchaudio": torchaudio.__version__,
        }
