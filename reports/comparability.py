"""Whether a run's numbers can be set against the FlashSpeech paper's (Ye et al. 2024, arXiv:2404.14700): a
`Verdict` (comparable, approximate or not comparable, with the reasons) per condition of the paper's protocol.

WER needs HuBERT-large (Whisper: approximately) and the paper protocol's normaliser (`PAPER_NORMALIZER`), SIM
needs WavLM-TDNN, UTMOS needs the `mos` suite's `utmos` backend (UTMOS22 strong), every metric needs LibriSpeech
test-clean as the paper selected it (proven by the manifest's import record: `bench.testsets.provenance`), RTF
needs the paper's device class (one V100; another GPU is named and not comparable). Anything
else is stated as the reason the numbers are not comparable. Backends and device are read with `reports.provenance`.

The paper does not name a text normaliser. Its protocol (VALL-E's) scores HuBERT-large-ls960-ft, whose CTC
alphabet is the letters plus the apostrophe, against LibriSpeech transcripts (upper case, no punctuation,
apostrophes kept, numbers spelled out): comparing the two needs only lower-casing and deleting punctuation
while keeping apostrophes, which is our ``seedtts`` normaliser (ZipVoice's HuBERT LibriSpeech WER uses the
same rule). Whisper's normaliser also expands contractions and respells words, so it counts differently.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.results import Results
from bench.testsets.provenance import SEVERE, paper_differences
from reports import provenance as prov

PAPER_NORMALIZER = "seedtts"  # see the module docstring
PAPER_GPU = "V100"
COMPARABLE, APPROXIMATE, NOT_COMPARABLE = "comparable", "approximate", "not comparable"
CONDITIONS = (
    "Our numbers are comparable to the paper's only when WER comes from HuBERT-large (facebook/hubert-large-"
    "ls960-ft; Whisper: approximately) with the LibriSpeech transcript normalisation (lowercase, punctuation "
    f"deleted, apostrophes kept: '{PAPER_NORMALIZER}'), SIM from WavLM-TDNN, the test set is LibriSpeech "
    "test-clean imported with the paper's selection (4-10 s targets, 3 s prompts, every 10th target; the import "
    f"record proves it) and RTF is measured on the paper's device class (end to end on one {PAPER_GPU}; other GPUs are "
    "named, not compared). The paper's exact test list is unreleased, so even then the items and prompts differ."
)


@dataclass(frozen=True)
class Verdict:
    """Whether one condition (or a metric, all its conditions) matches the paper's protocol."""

    level: str
    reasons: tuple[str, ...] = ()

    @property
    def comparable(self) -> bool:
        return self.level != NOT_COMPARABLE

    def __add__(self, other: Verdict) -> Verdict:
        order = (COMPARABLE, APPROXIMATE, NOT_COMPARABLE)
        level = max(self.level, other.level, key=order.index)
        return Verdict(level, self.reasons + other.reasons)

    @property
    def text(self) -> str:
        head = {COMPARABLE: "yes", APPROXIMATE: "approximately", NOT_COMPARABLE: "no"}[self.level]
        return head if not self.reasons else f"{head}: {'; '.join(self.reasons)}"


def testset_verdict(facts: prov.TestsetImport) -> Verdict:
    """Whether a test set is the paper's LibriSpeech test-clean selection, from its import record (source tree,
    filter, every n-th, counts) and what the run loaded, never from its name (`paper_differences`)."""
    differences = paper_differences(facts.record, ran_items=facts.ran_items, items_sha256=facts.items_sha256)
    level = COMPARABLE
    if any(d.severity == SEVERE for d in differences):
        level = NOT_COMPARABLE
    elif differences:
        level = APPROXIMATE
    return Verdict(level, tuple(d.reason for d in differences))


def _asr_verdict(wer: prov.WerBackend) -> Verdict:
    name, model = (wer.name or "").lower(), (wer.model or "").lower()
    if name == "hubert" and "large" in model:
        return Verdict(COMPARABLE)
    if name == "hubert":
        return Verdict(APPROXIMATE, (f"HuBERT checkpoint {wer.model or 'not recorded'}, not hubert-large-ls960-ft",))
    if name in ("whisper", "ct2"):  # Whisper on openai-whisper or on CTranslate2
        return Verdict(APPROXIMATE, (f"WER from {wer.label}, not the paper's HuBERT-large: a different ASR",))
    if wer.name is None:
        return Verdict(NOT_COMPARABLE, ("WER backend not recorded",))
    return Verdict(NOT_COMPARABLE, (f"WER backend {wer.label!r} is neither HuBERT-large nor Whisper",))


def _normalizer_verdict(wer: prov.WerBackend) -> Verdict:
    if wer.normalizer == PAPER_NORMALIZER:
        return Verdict(COMPARABLE)
    protocol = f"the paper protocol's LibriSpeech convention is {PAPER_NORMALIZER!r}"
    if wer.normalizer is None:
        return Verdict(APPROXIMATE, (f"WER normaliser not recorded ({protocol})",))
    return Verdict(APPROXIMATE, (f"WER normaliser {wer.normalizer!r}, not {PAPER_NORMALIZER!r} ({protocol})",))


def wer_verdict(results: Results) -> Verdict:
    """The ASR backend and the normaliser: both must be the paper protocol's."""
    wer = prov.wer_backend(results)
    return _asr_verdict(wer) + _normalizer_verdict(wer)


def sim_verdict(results: Results) -> Verdict:
    """Comparable only with WavLM-TDNN (or a backend recorded as comparable to papers)."""
    sim = prov.sim_backend(results)
    if sim is None:
        return Verdict(NOT_COMPARABLE, ("no similarity suite ran",))
    if sim.is_resemblyzer:
        return Verdict(NOT_COMPARABLE, ("SIM from resemblyzer (GE2E d-vector), not WavLM-TDNN",))
    if sim.name is None:
        return Verdict(NOT_COMPARABLE, ("SIM backend not recorded",))
    if sim.comparable_to_papers or "wavlm-tdnn" in sim.name.lower():
        return Verdict(COMPARABLE)
    return Verdict(NOT_COMPARABLE, (f"SIM backend {sim.label!r} is not WavLM-TDNN",))


def rtf_verdict(results: Results) -> Verdict:
    """Comparable only on the paper's device class (one V100), and the device is always named."""
    dev = results.record.device
    if not dev.recorded:
        return Verdict(NOT_COMPARABLE, ("device not recorded",))
    if not dev.is_gpu:
        return Verdict(NOT_COMPARABLE, (f"measured on {dev.label}, not a GPU (paper: one {PAPER_GPU})",))
    if dev.model is None:
        return Verdict(NOT_COMPARABLE, (f"measured on {dev.label}, GPU model not recorded (paper: one {PAPER_GPU})",))
    if PAPER_GPU.lower() in dev.model.lower():
        return Verdict(COMPARABLE, (f"measured on {dev.model}, the paper's device class (one {PAPER_GPU})",))
    return Verdict(NOT_COMPARABLE, (f"{dev.model} vs the paper's {PAPER_GPU}: not the same device class",))


def utmos_verdict(results: Results) -> Verdict:
    """Comparable only when the mos suite's backend is the paper's predictor, UTMOS22 strong."""
    mos = prov.mos_predictor(results)
    if mos is None or mos.name is None:
        return Verdict(NOT_COMPARABLE, ("MOS predictor not recorded (paper: UTMOS22 strong)",))
    if mos.is_utmos:
        return Verdict(COMPARABLE)
    return Verdict(NOT_COMPARABLE, (f"MOS from {mos.label}, not the paper's UTMOS22 strong",))
