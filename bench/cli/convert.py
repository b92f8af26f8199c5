"""`convert-official`: a checkpoint trained with the official FlashSpeech code -> our checkpoint directory.

The mapping, what is ignored and why, and the compatibility settings under which the converted model
computes what the official model computes are in `flashspeech.official`. Bad input raises
`flashspeech.official.OfficialCheckpointError` (or FileNotFoundError).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

STAGES = ("s1", "s2")  # flashspeech.official.STAGES, without importing torch to build the parser


def add_convert_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `convert-official SRC -o OUT_DIR [--stage s1|s2] [--codec DIR] [--untrained-refinement]` to the
    subparsers object `commands` (no heavy imports: building the parser stays fast)."""
    p = commands.add_parser(
        "convert-official",
        help="convert an official FlashSpeech s1/s2 checkpoint into a checkpoint directory",
        description=(
            "Map a checkpoint trained with github.com/zhenye234/FlashSpeech (a Lightning .ckpt or a state dict) "
            "strictly onto our model: every official tensor is mapped or ignored with a reason, every one of ours "
            "is filled. The converted model is set to compute what the official one computes at batch size 1."
        ),
    )
    p.add_argument("src", type=Path, help="the official .ckpt, or a .pt/.pth state dict")
    p.add_argument("-o", "--out", dest="out_dir", type=Path, required=True, help="checkpoint directory to write")
    p.add_argument("--stage", choices=STAGES, default=None, help="s1 or s2 (default: told by the file's keys)")
    p.add_argument(
        "--codec",
        type=Path,
        default=None,
        help="codec directory (codec.json) giving the official latent: 16 kHz, hop 200, 256-d, latent_scale 3",
    )
    p.add_argument(
        "--untrained-refinement",
        action="store_true",
        help="keep our prosody refinement models as initialised (the official code has none) and set alpha to 0",
    )
    p.set_defaults(func=cmd_convert_official)
    return p


def summary(out: Path) -> str:
    """What a conversion wrote: counts, ignored tensors by reason, the compatibility settings, the refinement
    note, the directory."""
    from flashspeech.checkpoint import read_description

    meta = read_description(out)["metadata"]
    source, mapping = meta["converted_from"], meta["mapping"]
    lines = [
        f"converted {source['file']} (stage {source['stage'] or 'not recorded'}, sha256 {source['sha256'][:12]}): "
        f"{mapping['source_keys']} official tensors, {mapping['mapped_targets']} of ours filled from them",
        *(f"  ignored {count}: {reason}" for reason, count in mapping["ignored"].items()),
        "  official compatibility settings: "
        + ", ".join(f"{name} = {value}" for name, value in meta["compat"]["settings"].items()),
        f"  refinement: {meta['refinement']}",
        f"wrote {out}",
    ]
    return "\n".join(lines)


def cmd_convert_official(args: argparse.Namespace) -> int:
    from flashspeech.official import convert_official

    out = convert_official(
        args.src,
        args.out_dir,
        stage=args.stage,
        codec=args.codec,
        untrained_refinement=args.untrained_refinement,
    )
    print(summary(out))
    return 0
