"""The speed benchmark (`flashspeech-bench speed`): config parsing, length control, stage split, ratios, JSON.

Everything runs the tiny preset for about a second of audio with one warm-up and one repeat, on one
thread; the GPU test runs the gpu-rtf path briefly on CUDA (skipped without one).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench.config import ConfigError
from bench.speed.benchmark import run_speed
from bench.speed.report import markdown, targets
from bench.speed.scoring import whisper_dims
from bench.speed.settings import SpeedConfig, SuiteSpeedConfig, load_speed_config
from flashspeech.codecs.conv import ConvCodec
from flashspeech.timing import STAGES

TINY = [
    "target_seconds=1.0",
    "warmup=1",
    "repeats=1",
    "steps=[1, 2]",
    "diffusion_steps=[3]",
    "suites.items=1",
    "suites.whisper_batch=1",
    "suites.wavlm_batch=1",
    "suites.warmup_items=0",
    "suites.min_seconds=1.0",
    "suites.max_seconds=1.5",
    "suites.tokens_per_second=2.0",
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("speed")
    config = load_speed_config("cpu-rtf", [*TINY, f"output_dir={json.dumps(str(out))}"])
    report, path = run_speed(config, log=lambda _: None)
    return config, report, path


def test_shipped_configs_parse():
    gpu = load_speed_config("gpu-rtf")
    assert (gpu.preset, gpu.diffusion_preset, gpu.device, gpu.dtype) == ("paper", "paper-diffusion", "cuda", "bfloat16")
    assert gpu.steps == (1, 2, 4) and gpu.diffusion_steps == (150,) and gpu.sampler == "heun"
    assert gpu.batch_sizes == (1, 16) and (gpu.warmup, gpu.repeats) == (3, 20)
    assert (gpu.suites.whisper, gpu.suites.wavlm, gpu.suites.extrapolate_items) == ("large-v3", "large", 1200)
    cpu = load_speed_config("cpu-rtf")
    assert (cpu.preset, cpu.device, cpu.dtype, cpu.name) == ("tiny", "cpu", "float32", "cpu-rtf")
    assert 150 in cpu.diffusion_steps and cpu.reference_steps in cpu.steps


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('dtype="fp8"', "dtype = 'fp8': expected one of"),
        ("steps=[0]", "steps must be >= 1"),
        ('steps="2"', "steps: expected a list, got '2'"),
        ("steps=[true]", "steps.0: expected an integer, got True"),
        ("repeats=0", "repeats must be >= 1"),
        ("warmpu=2", "warmpu: unknown key of a speed config (known: name, "),
        ("suites.itmes=2", "suites.itmes: unknown key (known: whisper, "),
        ('suites.whisper="huge"', "suites.whisper = 'huge'"),
        ('preset="tiny-diffusion"', "is a diffusion model"),
        ('diffusion_preset="tiny"', "is not a diffusion model"),
        ("reference_steps=8", "reference_steps 8 is not in steps"),
        ('device="tpu"', "device must be cpu or cuda"),
        ("compile=1", "compile: expected true or false, got 1"),
        ('target_seconds="ten"', "target_seconds: expected a number, got 'ten'"),
    ],
)
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_speed_config("cpu-rtf", [override])
    assert message in str(info.value)


def test_config_file_and_missing(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('preset = "tiny"\nrepeats = 2\n[suites]\nwhisper = "off"\n')
    config = load_speed_config(path)
    assert (config.name, config.repeats, config.suites.whisper) == ("mine", 2, "off")
    with pytest.raises(ConfigError, match="no shipped config"):
        load_speed_config("no-such-speed-config")
    path.write_text("repeats = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_speed_config(path)


def test_result_has_every_field(run):
    _, report, _ = run
    assert {"schema", "config", "environment", "flashspeech", "suites", "targets", "wall_s"} <= set(report)
    env = report["environment"]
    assert {"device", "dtype", "torch", "cuda", "torch_threads"} <= set(env) and env["device"] == "cpu"
    names = [(s["system"], s["batch"]) for s in report["flashspeech"]["systems"]]
    assert names == [("flashspeech@1", 1), ("flashspeech@2", 1), ("diffusion-heun@3", 1)]
    for s in report["flashspeech"]["systems"]:
        assert s["repeats"] == 1 and s["warmup"] == 1 and len(s["times_s"]) == 1
        assert {"median", "iqr", "min", "max", "p25", "p75"} <= set(s["time_s"])
        assert set(s["stages"]) == {*STAGES, "other"}
        assert s["rtf"] == pytest.approx(s["time_s"]["median"] / s["audio_s"])
        assert s["throughput_audio_s_per_s"] == pytest.approx(1 / s["rtf"])
    assert report["flashspeech"]["systems"][2]["nfe"] == 5  # heun: 2 * 3 - 1
    models = report["flashspeech"]["models"]
    assert set(models) == {"tiny", "tiny-diffusion"} and models["tiny"]["parameters"] > 0


def test_every_system_makes_the_same_audio(run):
    _, report, _ = run
    systems = report["flashspeech"]["systems"]
    assert {s["frames_per_item"] for s in systems} == {80}  # 1 s at 80 frames/s
    assert {s["audio_s"] for s in systems} == {1.0}


def test_stage_split_sums_to_the_total(run):
    _, report, _ = run
    for s in report["flashspeech"]["systems"]:
        total = s["times_s"][0]
        staged = sum(s["stages_s"][name][0] for name in STAGES)
        assert staged <= total + 1e-6
        assert staged + s["stages_s"]["other"][0] == pytest.approx(total, rel=1e-6, abs=1e-6)
        assert s["stages_s"]["other"][0] <= 0.25 * total + 0.005  # the stages cover nearly all the time


def test_speedup_ratio(run):
    _, report, _ = run
    (ratio,) = report["flashspeech"]["speedups"]
    systems = {s["system"]: s for s in report["flashspeech"]["systems"]}
    expected = systems["diffusion-heun@3"]["time_s"]["median"] / systems["flashspeech@2"]["time_s"]["median"]
    assert (ratio["system"], ratio["reference"], ratio["batch"]) == ("diffusion-heun@3", "flashspeech@2", 1)
    assert ratio["speedup"] == pytest.approx(expected) and ratio["nfe_ratio"] == pytest.approx(2.5)


def test_suites_throughput(run):
    _, report, _ = run
    suites = report["suites"]
    w, s = suites["whisper"], suites["wavlm_tdnn"]
    assert w["model"] == "tiny" and w["items"] == 1 and w["items_per_s"] > 0
    assert w["tokens_per_batch"] == [3]  # ceil(2 tokens/s x the 1.0-1.5 s clip)
    assert w["extrapolated_s"] == pytest.approx(1200 / w["items_per_s"])
    assert s["items_per_s"] > 0 and s["extrapolated_s"] == pytest.approx(1200 * 2 / s["items_per_s"])
    assert suites["score_items_s"] == pytest.approx(w["extrapolated_s"] + s["extrapolated_s"])


def test_json_written_and_rereadable(run):
    config, report, path = run
    assert path.name == "cpu-rtf-cpu.json" and path.parent == Path(config.output_dir)
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left no temporary file
    text = markdown(report)
    assert "flashspeech@2" in text and "diffusion-heun@3 / flashspeech@2" in text


def test_targets_only_apply_to_the_paper_preset_on_gpu(run):
    _, report, _ = run
    rows = {t["name"]: t for t in report["targets"]}
    assert set(rows) == {"rtf_flashspeech_2step_batch1", "speedup_diffusion150_vs_flashspeech2", "score_1200_items_s"}
    assert not any(t["applicable"] for t in rows.values())
    assert rows["rtf_flashspeech_2step_batch1"]["value"] is not None
    assert rows["speedup_diffusion150_vs_flashspeech2"]["value"] is None  # no 150-step run here
    fake = json.loads(json.dumps(report))
    fake["config"].update(device="cuda", preset="paper")
    for s in fake["flashspeech"]["systems"]:
        if s["system"] == "flashspeech@2":
            s["rtf"] = 0.001
    applied = {t["name"]: t for t in targets(fake)}
    assert applied["rtf_flashspeech_2step_batch1"]["applicable"] and applied["rtf_flashspeech_2step_batch1"]["passed"]


def test_whisper_dims_match_openai_whisper():
    import whisper.tokenizer

    large = whisper_dims("large-v3")
    assert (large.n_mels, large.n_vocab, large.n_audio_ctx, large.n_text_ctx) == (128, 51866, 1500, 448)
    assert (large.n_audio_state, large.n_audio_head, large.n_audio_layer) == (1280, 20, 32)
    assert (large.n_text_state, large.n_text_head, large.n_text_layer) == (1280, 20, 32)
    assert large.n_vocab - 51765 - 1 == len(whisper.tokenizer.LANGUAGES)  # whisper's num_languages rule
    with pytest.raises(ValueError, match="unknown Whisper size"):
        whisper_dims("huge")


def test_conv_codec_frames_and_samples_are_exact():
    codec = ConvCodec(latent_dim=8, enc_width=4, dec_width=32)
    assert (codec.sample_rate, codec.hop_length, codec.frame_rate) == (16000, 200, 80.0)
    with torch.inference_mode():
        z = codec.encode(torch.zeros(1, 1234))
        assert z.shape == (1, 8, codec.num_frames(1234))
        assert codec.decode(z).shape == (1, codec.num_samples(z.shape[-1]))


def test_config_defaults_validate():
    SpeedConfig().validate()
    assert replace(SpeedConfig(), diffusion_repeats=0).timed_diffusion_repeats == 3
    SuiteSpeedConfig().validate()


@pytest.mark.parametrize("precision", ["autocast", "cast"])
def test_low_precision_paths_run_on_cpu(precision):
    """bf16 (autocast or cast weights) runs the same code on CPU; the mel codec stays float32 inside."""
    from bench.speed.generation import build_tts, time_system

    config = load_speed_config(
        "cpu-rtf", ["target_seconds=0.5", "warmup=0", "repeats=1", 'dtype="bfloat16"', f'precision="{precision}"']
    )
    timing = time_system(build_tts(config, "tiny"), config, steps=1, batch=2, repeats=1)
    assert timing.audio_s == 1.0 and timing.batch == 2 and timing.median_s > 0


@pytest.mark.gpu
def test_paper_preset_on_gpu(tmp_path):
    """The paper preset with the paper-sized conv codec, 1 s, batch 1, bf16 autocast, not compiled."""
    config = load_speed_config(
        "gpu-rtf",
        [
            "compile=false",
            "steps=[2]",
            'diffusion_preset=""',
            "batch_sizes=[1]",
            "warmup=1",
            "repeats=2",
            "target_seconds=1.0",
            'suites.whisper="off"',
            'suites.wavlm="off"',
            f"output_dir={json.dumps(str(tmp_path))}",
        ],
    )
    report, _ = run_speed(config, log=lambda _: None)
    (system,) = report["flashspeech"]["systems"]
    assert system["preset"] == "paper" and system["audio_s"] == 1.0 and system["peak_memory_gib"] > 0
    assert report["flashspeech"]["models"]["paper"]["codec"]["dec_width"] == 1024


@pytest.mark.gpu
def test_gpu_rtf_path_briefly(tmp_path):
    """The gpu-rtf settings (bf16 autocast, compiled LCM, conv codec) on the tiny preset for 1 s of audio."""
    config = load_speed_config(
        "gpu-rtf",
        [
            'preset="tiny"',
            'diffusion_preset="tiny-diffusion"',
            "batch_sizes=[1, 2]",
            "warmup=3",
            "repeats=2",
            "diffusion_repeats=1",
            "diffusion_steps=[4]",
            "target_seconds=1.0",
            'suites.whisper="tiny"',
            'suites.wavlm="tiny"',
            "suites.items=4",
            f"output_dir={json.dumps(str(tmp_path))}",
        ],
    )
    report, path = run_speed(config, log=lambda _: None)
    assert report["environment"]["gpu"] and path.name.startswith("gpu-rtf-") and path.is_file()
    assert len(report["flashspeech"]["systems"]) == 2 * 4 and len(report["flashspeech"]["speedups"]) == 2
    assert {s["audio_s_per_item"] for s in report["flashspeech"]["systems"]} == {1.0}


@pytest.mark.gpu
def test_no_host_device_sync_inside_the_sampler():
    """The consistency sampling loop on CUDA with device noise: any synchronising op raises."""
    from flashspeech.config import tiny
    from flashspeech.model import FlashSpeechModel
    from flashspeech.sampling import plan_sampling, sample

    model = FlashSpeechModel(tiny()).cuda().eval()
    cond = torch.randn(1, 80, model.cfg.hidden, device="cuda")
    tokens = torch.randn(1, model.cfg.query_tokens, model.cfg.hidden, device="cuda")
    mask = torch.ones(1, 80, dtype=torch.bool, device="cuda")
    plan = plan_sampling("consistency", steps=2)

    def denoise(x, sigma):
        return model.denoise(x, torch.full((1,), sigma, device="cuda"), cond, mask, tokens)

    with torch.inference_mode():
        denoise(torch.randn(1, model.cfg.latent_dim, 80, device="cuda"), 80.0)  # lazy init outside the check
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = sample(plan, denoise, lambda: torch.randn(1, model.cfg.latent_dim, 80, device="cuda"))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert out.shape == (1, model.cfg.latent_dim, 80)


def test_throughput_through_the_cli_writes_its_report_and_names_a_bad_case(tmp_path, capsys):
    import json

    from bench.cli import main
    from bench.speed.throughput import Case

    case = Case.parse("wer:ct2:model=offline:base,beam_size=5,compute_type=int8")
    assert case.options == (("model", "offline:base"), ("beam_size", 5), ("compute_type", "int8"))
    prefix = tmp_path / "tp"
    assert main(["throughput", "--case", "similarity:resemblyzer", "--batch", "16", "--out", str(prefix)]) == 0
    report = json.loads((tmp_path / "tp.json").read_text())
    [row] = report["rows"]
    assert row["items"] == 44 and row["batch"] == 16 and row["items_per_s"] > 0 and "wer_corpus" not in row
    assert "| similarity: resemblyzer | 16 |" in (tmp_path / "tp.md").read_text()
    with pytest.raises(SystemExit, match=r"throughput: case 'wer': expected suite:backend"):
        main(["throughput", "--case", "wer"])
    with pytest.raises(SystemExit, match=r"no throughput runner for suite 'prosody'"):
        main(["throughput", "--case", "prosody:pyworld"])
