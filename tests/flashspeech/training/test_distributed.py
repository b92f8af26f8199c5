"""Data-parallel training on CPU with gloo: the frame-budget sampler covers every item once per epoch across
ranks, two processes train the same weights as one process accumulating the same global batch, a run stopped
mid-epoch and resumed on its ranks equals an uninterrupted one, and bf16 autocast trains without NaNs."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from flashspeech.config import tiny
from flashspeech.model import FlashSpeechModel
from flashspeech.training.distributed import Ranks
from flashspeech.training.sampler import FrameBudgetSampler, spread
from flashspeech.training.trainer import TrainConfig, Trainer
from tests.flashspeech.training.test_trainer import make_items

STEPS, ITEMS = 4, 12


def config(
    accumulate: int = 1, steps: int = STEPS, batch_frames: int = 120, stage: str = "consistency", **changes
) -> TrainConfig:
    return TrainConfig(
        stage=stage, steps=steps, lr=2e-3, warmup=0, batch_frames=batch_frames, accumulate=accumulate, **changes
    )


def trainer(run_dir: Path, cfg: TrainConfig, ranks: Ranks | None = None) -> Trainer:
    torch.manual_seed(0)
    return Trainer(FlashSpeechModel(tiny()), make_items(ITEMS), cfg, run_dir, ranks=ranks or Ranks())


# --- the sampler ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("world", "accumulate"), [(1, 1), (2, 1), (3, 1), (2, 2), (1, 4)])
def test_every_item_once_per_epoch_across_ranks(world: int, accumulate: int) -> None:
    lengths = [20 + (7 * i) % 50 for i in range(37)]
    sampler = FrameBudgetSampler(lengths, 160, seed=3, world=world, accumulate=accumulate)
    for epoch in range(2):
        seen = [
            i
            for step in range(epoch * sampler.steps_per_epoch, (epoch + 1) * sampler.steps_per_epoch)
            for rank in range(world)
            for micro in range(accumulate)
            for i in sampler.indices(step, rank, micro)
        ]
        assert sorted(seen) == list(range(len(lengths)))
        for step in range(epoch * sampler.steps_per_epoch, (epoch + 1) * sampler.steps_per_epoch):
            for rank in range(world):
                for micro in range(accumulate):
                    batch = sampler.indices(step, rank, micro)
                    assert len(batch) * max(lengths[i] for i in batch) <= 160


def test_the_global_batch_does_not_depend_on_how_it_is_split() -> None:
    lengths = [20 + (7 * i) % 50 for i in range(37)]
    ranks = FrameBudgetSampler(lengths, 160, seed=1, world=2, accumulate=2)
    alone = FrameBudgetSampler(lengths, 160, seed=1, world=1, accumulate=4)
    for step in range(2 * ranks.steps_per_epoch):
        for rank in range(2):
            for micro in range(2):
                assert ranks.indices(step, rank, micro) == alone.indices(step, 0, micro * 2 + rank)
                assert ranks.global_index(step, rank, micro) == alone.global_index(step, 0, micro * 2 + rank)


def test_spreading_splits_the_largest_batches_and_refuses_too_few_items() -> None:
    assert spread([[0, 1, 2, 3], [4], [5, 6]], 2) == [[0, 1], [2, 3], [4], [5, 6]]
    with pytest.raises(ValueError, match="2 items cannot fill 3 micro-batches"):
        spread([[0], [1]], 3)


def test_a_single_process_is_the_trainer_it_was() -> None:
    """world 1, accumulate 1: the epoch's frame-budget batches in order, as before ranks existed."""
    from flashspeech.training.data import frame_budget_batches

    lengths = [20 + (7 * i) % 50 for i in range(37)]
    sampler = FrameBudgetSampler(lengths, 160, seed=5)
    n = sampler.steps_per_epoch
    for step in range(2 * n):
        assert sampler.indices(step) == frame_budget_batches(lengths, 160, 5 + step // n)[step % n]


# --- two processes with gloo ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, run_dir: str, stop_at: int | None, resume: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    ranks = Ranks.from_env("cpu")
    try:
        t = trainer(Path(run_dir), config(), ranks)
        if resume:
            t.load_state()
        if stop_at is None:
            t.run(progress=False)
        else:  # stopped mid-epoch right after a checkpoint, as a killed job would be
            while t.step < stop_at:
                t.train_step()
            t.save_state()
        if ranks.writer:
            torch.save(t.model.state_dict(), Path(run_dir) / f"weights-{t.step}.pt")
    finally:
        ranks.close()


def _spawn(run_dir: Path, stop_at: int | None = None, resume: bool = False) -> None:
    mp.spawn(_rank_main, args=(2, _free_port(), str(run_dir), stop_at, resume), nprocs=2, join=True)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("ranks")
    _spawn(run_dir)
    return run_dir


def test_two_processes_train_what_one_process_accumulating_both_trains(two_ranks: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank: the thread count changes the order of float sums (2 threads: 1.6e-4)
    try:
        alone = trainer(tmp_path, config(accumulate=2))
        alone.run(progress=False)
    finally:
        torch.set_num_threads(threads)
    distributed = torch.load(two_ranks / f"weights-{STEPS}.pt")
    for key, value in alone.model.state_dict().items():  # measured: identical; allowed: float tolerance
        torch.testing.assert_close(distributed[key], value, rtol=1e-5, atol=1e-6, msg=key)
    logged = (two_ranks / "metrics.jsonl").read_text().splitlines()
    assert logged and '"frames"' in logged[-1]  # rank 0 alone logs


def test_a_run_stopped_mid_epoch_and_resumed_equals_an_uninterrupted_one(two_ranks: Path, tmp_path: Path) -> None:
    assert trainer(tmp_path, config(accumulate=2)).n_batches == 2  # stopped mid-epoch 0; resumed across epoch 1
    _spawn(tmp_path, stop_at=1)
    _spawn(tmp_path, resume=True)
    resumed, straight = torch.load(tmp_path / f"weights-{STEPS}.pt"), torch.load(two_ranks / f"weights-{STEPS}.pt")
    for key, value in straight.items():
        assert torch.equal(resumed[key], value), key


def test_resuming_needs_the_same_global_batch(tmp_path: Path) -> None:
    first = trainer(tmp_path, config(accumulate=2, steps=1))
    first.run(progress=False)
    with pytest.raises(ValueError, match="saved with a different training config"):
        trainer(tmp_path, config(accumulate=2, steps=1, batch_frames=200)).load_state()
    with pytest.raises(ValueError, match="2 micro-batches per step"):
        trainer(tmp_path, config(accumulate=1, steps=1)).load_state()


# --- mixed precision --------------------------------------------------------------------------------------


def test_bf16_autocast_trains_the_tiny_model_without_nans(tmp_path: Path) -> None:
    t = trainer(tmp_path, config(steps=8, precision="bf16"))
    losses = [t.train_step().metrics["loss"] for _ in range(8)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) < sum(losses[:3])
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # weights and optimizer stay fp32


def test_fp16_needs_cuda_and_precision_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        trainer(tmp_path, config(precision="fp16"))
    with pytest.raises(ValueError, match="precision must be one of"):
        config(precision="int8")


def test_a_process_without_torchrun_variables_is_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ranks = Ranks.from_env("cuda")
    assert (ranks.rank, ranks.world, ranks.writer, ranks.distributed) == (0, 1, True, False)


# --- a recipe under torchrun's variables ----------------------------------------------------------------------


def _recipe(accumulate: int):  # type: ignore[no-untyped-def]
    from bench.training.recipes import Recipe

    common = {"batch_frames": 120, "warmup": 0, "accumulate": accumulate}
    return Recipe.from_dict(
        {
            "name": "toy",
            "stages": [
                {"name": "ct", "stage": "consistency", "steps": 2, **common},
                {"name": "refine", "stage": "refinement", "init": "ct", "steps": 2, "s1": 160, **common},
            ],
        }
    )


def _run_recipe(out: Path, accumulate: int) -> Path:
    from bench.training import recipes
    from bench.training.featurize import FeatureSet

    features = FeatureSet(items=make_items(ITEMS), problems=[], root=out)
    real = recipes.training_items
    recipes.training_items = lambda data, codec, cache_dir=None, **kw: (features, [])
    try:
        return recipes.run_recipe(_recipe(accumulate), out, mlflow_curves=False)
    finally:  # the in-process run must not leave the fake for the tests after it
        recipes.training_items = real


def _recipe_rank(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    try:
        _run_recipe(Path(out), accumulate=1)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_a_recipe_on_two_ranks_exports_what_one_process_exports(tmp_path: Path, monkeypatch) -> None:
    from flashspeech.checkpoint import read_description
    from flashspeech.synthesis import FlashSpeech

    mp.spawn(_recipe_rank, args=(2, _free_port(), str(tmp_path / "ranks")), nprocs=2, join=True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = _run_recipe(tmp_path / "alone", accumulate=2)
    finally:
        torch.set_num_threads(threads)
    ranks = tmp_path / "ranks" / "refine" / "checkpoint"
    history = read_description(ranks)["metadata"]["training"]
    assert [(h["stage"], h.get("ranks")) for h in history] == [("ct", 2), ("refine", 2)]
    a, b = FlashSpeech.from_pretrained(ranks).model.state_dict(), FlashSpeech.from_pretrained(alone).model.state_dict()
    for key, value in a.items():
        torch.testing.assert_close(value, b[key], rtol=1e-5, atol=1e-6, msg=key)


def _killed_rank_main(rank: int, world: int, port: int, run_dir: str, kill_after: int) -> None:
    """Train with a checkpoint every step; rank 1 is killed (SIGKILL) right after step `kill_after`."""
    import signal

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    ranks = Ranks.from_env("cpu", timeout_s=60)
    t = trainer(Path(run_dir), config(checkpoint_every=1), ranks)
    while t.step < STEPS:
        t.train_step()
        t.save_state()
        if rank == 1 and t.step == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_a_killed_rank_and_a_restart_resume_bit_for_bit(two_ranks: Path, tmp_path: Path) -> None:
    with pytest.raises((mp.ProcessExitedException, mp.ProcessRaisedException)):  # rank 1 killed, rank 0 loses it
        mp.spawn(_killed_rank_main, args=(2, _free_port(), str(tmp_path), 1), nprocs=2, join=True)
    _spawn(tmp_path, resume=True)  # torchrun's agent would restart every rank the same way
    resumed, straight = torch.load(tmp_path / f"weights-{STEPS}.pt"), torch.load(two_ranks / f"weights-{STEPS}.pt")
    for key, value in straight.items():
        assert torch.equal(resumed[key], value), key


def _adversarial(run_dir: Path, accumulate: int, ranks: Ranks | None = None) -> Trainer:
    """The adversarial stage with a small random Whisper encoder (as test_trainer's): generator on even steps,
    discriminator on odd ones."""
    from whisper.model import AudioEncoder

    from flashspeech.codecs.mel import MelCodec
    from flashspeech.training.speech_encoders import WhisperEncoderFeatures

    torch.manual_seed(0)
    encoder = WhisperEncoderFeatures(AudioEncoder(n_mels=80, n_ctx=1500, n_state=16, n_head=2, n_layer=2), name="rnd")
    torch.manual_seed(0)
    cfg = config(accumulate, stage="adversarial", fixed_sigmas=41, disc_widths=(8, 8, 8, 8))
    model = FlashSpeechModel(tiny())
    return Trainer(
        model, make_items(ITEMS), cfg, run_dir, codec=MelCodec(), speech_encoder=encoder, ranks=ranks or Ranks()
    )


def _adversarial_rank(rank: int, world: int, port: int, run_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    ranks = Ranks.from_env("cpu")
    try:
        t = _adversarial(Path(run_dir), 1, ranks)
        t.run(progress=False)
        if ranks.writer:
            torch.save({"g": t.model.state_dict(), "d": t.discriminator.state_dict()}, Path(run_dir) / "w.pt")
    finally:
        ranks.close()


def test_the_adversarial_stage_on_two_ranks_equals_one_process_accumulating(tmp_path: Path) -> None:
    """Both the generator's and the discriminator's gradients are averaged over the ranks."""
    mp.spawn(_adversarial_rank, args=(2, _free_port(), str(tmp_path / "ranks")), nprocs=2, join=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = _adversarial(tmp_path / "alone", 2)
        alone.run(progress=False)
    finally:
        torch.set_num_threads(threads)
    ranks = torch.load(tmp_path / "ranks" / "w.pt")
    for part, state in (("g", alone.model.state_dict()), ("d", alone.discriminator.state_dict())):
        for key, value in state.items():
            torch.testing.assert_close(ranks[part][key], value, rtol=1e-5, atol=1e-6, msg=f"{part}.{key}")
