"""Small real runs for the executor tests: committed real clips as prompts and targets, cheap systems."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from bench.config import BenchConfig
from bench.testsets.manifest import write_manifest
from suites.item import EvalItem

REAL = Path("bench/testsets/assets/real").resolve()

# An external TTS program that logs every item it finishes, and kills the process that runs it (the worker)
# when it reaches the item "victim": the first time only (mode "once") or every time (mode "always").
TTS = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    import numpy as np, soundfile as sf
    log, mode = Path(sys.argv[2]), sys.argv[3]
    for line in open(sys.argv[1]):
        r = json.loads(line)
        marker = log.with_name(f"killed-{r['id']}-{r['seed']}")
        if r["id"] == "victim" and (mode == "always" or not marker.exists()):
            marker.touch()
            os.kill(os.getppid(), signal.SIGKILL)
            sys.exit(1)
        t = np.arange(16000 + 800 * len(r["text"].split())) / 16000
        sf.write(r["output"], 0.2 * np.sin(2 * np.pi * (150 + 10 * r["seed"]) * t), 16000)
        with log.open("a") as fh:
            fh.write(f"{r['id']} {r['seed']}\\n")
    """
)


def items(names: list[str]) -> list[EvalItem]:
    clips = sorted(REAL.glob("*.wav"))
    texts = ["He was not an ill disposed young man.", "The cards were on the table.", "It rained all day."]
    return [
        EvalItem(
            name,
            texts[i % len(texts)],
            str(clips[(2 * i) % len(clips)]),
            f"speaker-{i % 2}",
            target_audio=str(clips[(2 * i + 1) % len(clips)]),
        )
        for i, name in enumerate(names)
    ]


@pytest.fixture
def make_config(tmp_path):
    """make_config(names, systems=..., suites=..., mode=..., **fields) -> BenchConfig over items `names`."""
    script = tmp_path / "tts.py"
    script.write_text(TTS)
    log = tmp_path / "generated.log"

    def make(names: list[str], *, mode: str = "never", cache: str = "cache", **fields) -> BenchConfig:
        manifest = write_manifest(items(names), tmp_path / "set.jsonl")
        external = {
            "kind": "external",
            "name": "ext",
            "command": [sys.executable, str(script), "{input}", str(log), mode],
        }
        data = {
            "name": "t",
            "output_dir": str(tmp_path / f"out-{cache}"),
            "cache_dir": str(tmp_path / cache),
            "seeds": [0, 1],
            "testsets": [{"name": "t", "manifest": str(manifest)}],
            "systems": [external],
            "suites": {"defects": {}},
            "mlflow": False,
            "reports": False,
            "bootstrap_resamples": 50,
            **fields,
        }
        return BenchConfig.from_dict(data)

    make.log = log
    return make
