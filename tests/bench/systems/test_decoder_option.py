"""A system's `decoder` option through the CLI: Griffin-Lim and a neural decoder side by side in one run, the decoder
and its weights' sha256 in the results, caches keyed by the decoder's weights, a bad decoder named in one line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.results import Results
from flashspeech.codecs import MelCodec
from flashspeech.codecs.vocos import Vocos, VocosConfig, save_vocoder

pytestmark = pytest.mark.usefixtures("one_thread")


def _vocoder(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_vocoder(Vocos(VocosConfig(dim=32, intermediate=64, layers=2)), MelCodec().describe(), path)


def _config(tmp_path: Path, decoder: str) -> Path:
    body = f"""
        name = "decoders"
        output_dir = "{tmp_path / "out"}"
        cache_dir = "{tmp_path / "cache"}"
        seeds = [0]
        mlflow = false

        [[testsets]]
        name = "smoke"
        max_items = 3

        [[systems]]
        kind = "codec_resynthesis"
        name = "codec-griffin-lim"

        [[systems]]
        kind = "codec_resynthesis"
        name = "codec-vocos"
        decoder = "{decoder}"

        [[systems]]
        kind = "flashspeech"
        name = "flashspeech-vocos"
        checkpoint = "pretrained:flashspeech-tiny"
        steps = [1]
        decoder = "{decoder}"

        [suites.rtf]
        [suites.defects]
    """
    path = tmp_path / "decoders.toml"
    path.write_text(textwrap.dedent(body))
    return path


def test_decoders_side_by_side_keyed_by_their_weights(tmp_path, capsys):
    decoder = _vocoder(tmp_path / "voc", seed=0)
    config = _config(tmp_path, str(decoder))
    assert main(["run", "--config", str(config), "--quiet"]) == 0
    assert "9 generated, 0 from the cache" in capsys.readouterr().out
    results = Results.load(tmp_path / "out")
    systems = results.metadata["systems"]
    sha = json.loads((decoder / "config.json").read_text())["weights_sha256"]
    assert "decoder" not in systems["smoke:codec-griffin-lim"]["codec"]  # Griffin-Lim
    for label in ("smoke:codec-vocos", "smoke:flashspeech-vocos@1"):
        assert systems[label]["codec"]["decoder"] == str(decoder)
        assert systems[label]["codec"]["decoder_sha256"] == sha
    items = pd.read_csv(tmp_path / "out" / "items.csv")
    assert items["error"].isna().all() and len(items) == 9
    griffin, neural = (items[items.system == f"smoke:{s}"] for s in ("codec-griffin-lim", "codec-vocos"))
    assert set(griffin["item_id"]) == set(neural["item_id"]) and len(griffin) == 3

    # the decoder's card from this run: its training record, the side-by-side table, the targets (measured or not)
    rows = [{"step": 0, "val_mel_l1": 2.0, "val_mel_l1_griffin_lim": 0.1, "val_spec_l1": 2.5,
             "val_spec_l1_griffin_lim": 0.5}, {"step": 10, "val_mel_l1": 0.2, "val_mel_l1_griffin_lim": 0.1,
             "val_spec_l1": 0.6, "val_spec_l1_griffin_lim": 0.5}]  # fmt: skip
    (decoder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["decoder-card", "--decoder", str(decoder), "--results", str(tmp_path / "out")]) == 0
    card = (decoder / "README.md").read_text()
    assert (decoder / "training_curves.png").stat().st_size > 1000
    assert f"weights sha256 `{sha}`" in card and "log-mel L1 0.200 (Griffin-Lim 0.100)" in card
    assert "| codec resynthesis | Griffin-Lim |" in card and "| codec resynthesis | vocos-tiny |" in card
    assert "| FlashSpeech@2 | vocos-tiny |" in card
    assert "decoder CPU time <= 0.33 x Griffin-Lim's (codec resynthesis, all sets)" in card
    assert "smoke: resynthesis DistillMOS (vocos-tiny) >= ground truth" in card and "not measured" in card

    # warm: all from the cache; other weights at the same path: the neural systems generate again, Griffin-Lim not
    assert main(["run", "--config", str(config), "--quiet", "--output-dir", str(tmp_path / "warm")]) == 0
    assert "0 generated, 9 from the cache" in capsys.readouterr().out
    _vocoder(tmp_path / "voc", seed=1)
    assert main(["run", "--config", str(config), "--quiet", "--output-dir", str(tmp_path / "new")]) == 0
    assert "6 generated, 3 from the cache" in capsys.readouterr().out


def test_a_bad_decoder_is_named_in_one_line(tmp_path, capsys):
    config = _config(tmp_path, "pretrained:no-such-decoder")
    assert main(["run", "--config", str(config), "--check"]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "systems.codec-vocos.decoder: decoder pretrained:no-such-decoder: no shipped checkpoint" in text
    assert "Traceback" not in text
