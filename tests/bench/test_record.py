"""The typed run record: keys render labels, the record round-trips through metadata, and runs written before the
record read back with the same facts."""

from __future__ import annotations

import json

from bench.record import Device, Provenance, RunRecord, SystemKey, evaluator_digest, package_versions

FS2 = SystemKey("smoke", "flashspeech@2", "flashspeech", series="flashspeech", family="consistency", steps=2, nfe=2)
GT = SystemKey("smoke", "ground_truth", "ground_truth", series="ground_truth")


def test_a_key_renders_its_label_and_round_trips():
    assert FS2.label == "smoke:flashspeech@2" and GT.label == "smoke:ground_truth"
    assert SystemKey("", "flashspeech@1", "flashspeech").label == "flashspeech@1"  # recorded without a test set
    assert SystemKey.from_dict(json.loads(json.dumps(FS2.to_dict()))) == FS2
    assert SystemKey.from_dict({**FS2.to_dict(), "steps": 2.0}).steps == 2  # read back from CSV-ish floats
    assert GT.curve == "ground_truth" and SystemKey("t", "x", "external").curve == "x"


def test_the_record_round_trips_through_metadata_and_finds_systems_by_fields():
    record = RunRecord(
        config="smoke",
        device=Device("cuda:1", model="NVIDIA H100 80GB HBM3", torch="2.11"),
        provenance=Provenance(commit="abc1234def", branch="main", lock_sha256="0f" * 8, packages={"torch": "2.11"}),
        systems={FS2.label: FS2, GT.label: GT},
    )
    metadata = {"record": record.metadata(), "systems": {k.label: {"key": k.to_dict()} for k in (FS2, GT)}}
    back = RunRecord.of(json.loads(json.dumps(metadata)))
    assert back == record
    assert back.device.identity == "cuda:NVIDIA H100 80GB HBM3" and back.device.is_gpu
    assert back.device.label == "cuda:1 (NVIDIA H100 80GB HBM3)" and back.device.slug == "nvidia-h100-80gb-hbm3"
    assert back.find("smoke", "flashspeech", 2) == FS2 and back.find("smoke", "flashspeech", 4) is None
    assert back.find("smoke", "ground_truth") == GT and back.find("other", "ground_truth") is None
    assert back.steps("smoke", "flashspeech") == [2] and back.testsets == ["smoke"]
    assert back.provenance.short_commit == "abc1234def" and back.provenance.code_version is None


def test_a_run_written_before_the_record_reads_back_with_the_same_facts():
    """Results directories and MLflow baselines of older commits stay readable (and comparable)."""
    evaluators = {"wer": {"digest": "aa"}, "rtf": {"digest": "bb"}}
    legacy = {
        "run": {
            "name": "smoke",
            "git_commit": "0123456789abcdef",
            "branch": "main",
            "lock_sha256": "ff" * 8,
            "timing_context": {"host": "ci-1", "cpu": "AMD EPYC 7B13", "git_commit": "0123456789abcdef"},
        },
        "environment": {"device": "cpu", "cpu": "x86_64", "torch": "2.11.0", "torch_threads": 2},
        "packages": {"torch": "2.11.0"},
        "evaluators": evaluators,
        "systems": {
            "smoke:flashspeech@2": {
                "kind": "flashspeech",
                "name": "flashspeech@2",
                "testset": "smoke",
                **FS2.to_dict(),
            },
            "smoke:ground_truth": {"kind": "ground_truth", "steps": None, "name": "ground_truth", "testset": "smoke"},
        },
    }
    record = RunRecord.of(legacy)
    assert record.config == "smoke"
    assert record.device.identity == "cpu:AMD EPYC 7B13"  # the CPU's model, not platform.processor()
    assert record.device.host == "ci-1" and record.device.threads == 2
    assert record.provenance.commit == "0123456789abcdef" and record.provenance.lock_sha256 == "ff" * 8
    assert record.provenance.evaluator == evaluator_digest(evaluators)
    assert record.key("smoke:flashspeech@2") == FS2
    assert record.key("smoke:ground_truth") == SystemKey("smoke", "ground_truth", "ground_truth")
    assert RunRecord.of({}).device.identity is None  # nothing recorded: comparable with nothing


def test_the_current_device_and_packages():
    device = Device.current("cpu")
    assert device.kind == "cpu" and not device.is_gpu and device.threads and device.torch
    assert device.slug == "cpu"
    assert device.torch.startswith(package_versions()["torch"])  # torch.__version__ adds the build tag (+cu130)
    assert package_versions(("no-such-package-fsb",)) == {"no-such-package-fsb": None}
