"""The training feature cache: per utterance, codec latents, phoneme ids, frame durations and F0.

Each utterance's features are computed once and written atomically to its own file under
`<cache>/features/<fingerprint>/`, so an interrupted build resumes where it stopped and a broken
utterance (unreadable audio, durations that do not fit the audio) is reported by id and skipped, never
silently dropped. The fingerprint covers everything that shapes the features: the codec's description,
the phoneme vocabulary, the F0 extractor and this module's format version.

Latents are stored normalised (the codec's `normalize`) in float16; F0 in Hz per codec frame (pyworld
DIO + StoneMask at the codec's frame period; 0 = unvoiced); durations fitted to the codec's exact frame
count (`fit_to_frames`).

At corpus scale (MLS: millions of utterances, terabytes of latents) the build is split into shards: shard k of
N takes every N-th utterance from the k-th (`shard=(k, N)`, `flashspeech-bench data featurize --shard k/N`, one
process or machine each, into one shared cache) and writes `index-<k>-of-<N>.jsonl` (file, id, speaker, frames).
With `stream`, the items of this call's utterances are `StreamedFeatures`: their lengths from the indexes (no file
is loaded that any shard has indexed), an utterance's file loaded only when a batch needs it: the trainer's sampler
needs nothing but the lengths. Only this call's utterances: the cache may hold other sources' features too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bench.training.sources import TrainingUtterance
from flashspeech.codecs import Codec, load_codec
from flashspeech.foundation.audio import read_audio
from flashspeech.foundation.f0 import F0Config, extract_f0
from flashspeech.foundation.files import atomic_path
from flashspeech.foundation.hashing import fingerprint
from flashspeech.text.phonemes import PhonemeVocab
from flashspeech.training.data import fit_to_frames

FEATURE_FORMAT = 1
MAX_FIT_FRAMES = 3  # durations may differ from the codec's frame count by this much before it is an error


@dataclass(frozen=True)
class FeatureItem:
    """One utterance ready for training."""

    id: str
    speaker: str
    phonemes: Tensor  # (P,) long, <s> ... </s>
    durations: Tensor  # (P,) long, sums to T
    latent: Tensor  # (D, T) float16, normalised
    f0: Tensor  # (T,) float32, Hz, 0 = unvoiced

    @property
    def n_frames(self) -> int:
        return int(self.latent.shape[-1])


def feature_fingerprint(codec: Codec, vocab: PhonemeVocab, f0_config: F0Config) -> str:
    payload = {
        "format": FEATURE_FORMAT,
        "codec": codec.describe(),
        "vocab": vocab.fingerprint,
        "f0": f0_config.describe(),
    }
    return fingerprint(payload, 16)


def _item_key(utt: TrainingUtterance) -> str:
    """File name of an utterance's features: its id plus a hash of its alignment and audio path."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in utt.id)
    return f"{safe}-{fingerprint([str(utt.audio), list(utt.phonemes), list(utt.durations)], 10)}.pt"


def compute_features(utt: TrainingUtterance, codec: Codec, vocab: PhonemeVocab, f0_config: F0Config) -> dict:
    """Features of one utterance as a dict of tensors; ValueError naming the utterance on bad input."""
    audio = read_audio(utt.audio, codec.sample_rate)
    wav = torch.from_numpy(np.ascontiguousarray(audio.samples, dtype=np.float32))
    with torch.no_grad():
        latent = codec.normalize(codec.encode(wav[None]))[0]
    n_frames = latent.shape[-1]
    if abs(sum(utt.durations) - n_frames) > MAX_FIT_FRAMES:
        raise ValueError(
            f"{utt.id}: durations sum to {sum(utt.durations)} frames but the audio has {n_frames} codec frames"
        )
    durations = fit_to_frames(utt.durations, n_frames)
    ids = vocab.encode(list(utt.phonemes))
    config = F0Config(
        sample_rate=codec.sample_rate,
        frame_period_ms=1000.0 * codec.hop_length / codec.sample_rate,
        f0_floor=f0_config.f0_floor,
        f0_ceil=f0_config.f0_ceil,
        method=f0_config.method,
    )
    f0 = extract_f0(audio.samples, codec.sample_rate, config).f0[:n_frames]
    f0 = np.pad(f0, (0, n_frames - len(f0)))
    return {
        "id": utt.id,
        "speaker": utt.speaker,
        "phonemes": torch.tensor(ids, dtype=torch.long),
        "durations": torch.tensor(durations, dtype=torch.long),
        "latent": latent.to(torch.float16),
        "f0": torch.from_numpy(f0.astype(np.float32)),
    }


_WORKER: dict = {}


def _init_worker(codec_description: dict, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["codec"] = load_codec(codec_description)
    _WORKER["vocab"] = PhonemeVocab.load()


def _build_one(args: tuple[TrainingUtterance, str, F0Config]) -> str | None:
    utt, path, f0_config = args
    try:
        feats = compute_features(utt, _WORKER["codec"], _WORKER["vocab"], f0_config)
    except Exception as exc:  # reported by id, the build goes on
        return f"{utt.id}: {exc}"
    tmp, final = atomic_path(path)
    torch.save(feats, tmp)
    os.replace(tmp, final)
    return None


@dataclass(frozen=True)
class IndexRow:
    file: str
    id: str
    speaker: str
    frames: int


class StreamedFeatures(Sequence):
    """The items of a feature cache, loaded from disk on access; `lengths` from the shards' index files."""

    def __init__(self, root: Path, rows: Sequence[IndexRow]):
        self.root, self.rows = Path(root), sorted(rows, key=lambda r: r.id)
        self.lengths = [r.frames for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return FeatureItem(**torch.load(self.root / self.rows[i].file, weights_only=True))


def _read_indexes(root: Path) -> dict[str, IndexRow]:
    """Every shard index's rows under `root`, by feature file."""
    rows: dict[str, IndexRow] = {}
    for index in sorted(root.glob("index-*-of-*.jsonl")):
        for line in index.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = IndexRow(**json.loads(line))
                rows[row.file] = row
    return rows


def _write_index(root: Path, shard: tuple[int, int], paths: Sequence[Path]) -> list[IndexRow]:
    """The shard's index of `paths` (those built), reusing any shard's rows and loading only files no index has."""
    k, n = shard
    index = root / f"index-{k}-of-{n}.jsonl"
    known = _read_indexes(root)
    rows = []
    for path in paths:
        if not path.exists():
            continue
        row = known.get(path.name)
        if row is None:
            d = torch.load(path, weights_only=True)
            row = IndexRow(path.name, d["id"], d["speaker"], int(d["latent"].shape[-1]))
        rows.append(row)
    tmp, final = atomic_path(index)
    Path(tmp).write_text("".join(json.dumps(r.__dict__) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, final)
    return rows


@dataclass
class FeatureSet:
    items: Sequence[FeatureItem]
    problems: list[str]
    root: Path

    @property
    def speakers(self) -> list[str]:
        if isinstance(self.items, StreamedFeatures):
            return sorted({r.speaker for r in self.items.rows})
        return sorted({i.speaker for i in self.items})

    @property
    def hours(self) -> float:
        if isinstance(self.items, StreamedFeatures):
            return sum(self.items.lengths) / 80.0 / 3600.0
        return sum(i.n_frames for i in self.items) / 80.0 / 3600.0


def build_features(
    utterances: Sequence[TrainingUtterance],
    codec: Codec,
    cache_dir: str | Path | None = None,
    *,
    f0_config: F0Config | None = None,
    workers: int | None = None,
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
    stream: bool = False,
) -> FeatureSet:
    """Compute (or reuse) the features of shard `shard` = (k, N) of the utterances (every N-th from the k-th;
    default all) and write its index; problems are listed by utterance. The items: loaded into memory, or with
    `stream` as `StreamedFeatures`, read from disk when used."""
    from tqdm.auto import tqdm

    from bench.testsets.corpus import default_cache_dir

    f0_config = f0_config or F0Config()
    vocab = PhonemeVocab.load()
    root = Path(cache_dir or default_cache_dir()) / "features" / feature_fingerprint(codec, vocab, f0_config)
    root.mkdir(parents=True, exist_ok=True)
    k, n = shard
    if not 0 <= k < n:
        raise ValueError(f"shard {k}/{n}: need 0 <= k < N")
    utterances = list(utterances)[k::n]
    paths = [root / _item_key(u) for u in utterances]
    todo = [(u, str(p), f0_config) for u, p in zip(utterances, paths, strict=True) if not p.exists()]
    problems: list[str] = []
    if todo:
        n_workers = max(1, min(workers or (os.cpu_count() or 1), len(todo)))
        with (
            ProcessPoolExecutor(n_workers, initializer=_init_worker, initargs=(codec.describe(), 1)) as pool,
            tqdm(total=len(todo), desc="training features", unit="utt", disable=not progress) as bar,
        ):
            for problem in pool.map(_build_one, todo, chunksize=8):
                if problem:
                    problems.append(problem)
                bar.update()
    rows = _write_index(root, shard, paths)
    (root / "features.json").write_text(
        json.dumps({"codec": codec.describe(), "vocab": vocab.fingerprint, "f0": f0_config.describe()}, indent=1)
    )
    if stream:
        return FeatureSet(items=StreamedFeatures(root, rows), problems=problems, root=root)
    items = [FeatureItem(**torch.load(path, weights_only=True)) for path in paths if path.exists()]
    return FeatureSet(items=items, problems=problems, root=root)
