"""The external-command system: timeouts, exit statuses, process-group clean-up (also when the runner dies),
and the program's fingerprint in its description (and so in the generation cache key)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.cache import generation_key
from bench.systems import SystemConfig, SystemConfigError, build_systems
from bench.systems import external as external_module
from bench.systems import process as process_module
from bench.systems.external import UNFINGERPRINTED_NOTE, ExternalSystem, default_timeout_s
from flashspeech.foundation.audio import read_audio, write_wav
from suites.item import EvalItem

ROOT = Path(__file__).resolve().parents[3]

# Starts a sleeping child (same process group), writes "<own pid> <child pid>" to argv[2] (atomically), says
# something on stderr and sleeps; with argv[3] == "stubborn" it ignores SIGTERM (its child does not).
HANG = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from pathlib import Path
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    if sys.argv[3:] == ["stubborn"]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    part = Path(sys.argv[2] + ".part")
    part.write_text(f"{os.getpid()} {child.pid}")
    part.rename(sys.argv[2])
    print("loading the model", file=sys.stderr, flush=True)
    time.sleep(60)
    """
)

# Writes every wav (with timings, or its own error for "refused", none for "skipped"), complains on stderr,
# then ends as argv[2] says.
ENDS = textwrap.dedent(
    """
    import json, os, signal, sys
    import numpy as np, soundfile as sf
    for line in open(sys.argv[1]):
        r = json.loads(line)
        if r["id"] == "skipped":
            continue
        sf.write(r["output"], 0.1 * np.sin(np.arange(24000) / 4.0), 24000)
        side = {"error": "no phonemes for this text"} if r["id"] == "refused" else {"timings": {"model": 0.25}}
        json.dump(side, open(r["output"] + ".json", "w"))
    print("CUDA error: device-side assert", file=sys.stderr, flush=True)
    exec(sys.argv[2])
    """
)

# Writes each wav, leaves a sleeping child behind (its pid in argv[2]) and exits 0.
LEAVES_A_CHILD = textwrap.dedent(
    """
    import json, subprocess, sys
    import numpy as np, soundfile as sf
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open(sys.argv[2], "w").write(str(child.pid))
    for line in open(sys.argv[1]):
        sf.write(json.loads(line)["output"], 0.1 * np.sin(np.arange(16000) / 4.0), 16000)
    """
)

# A runner: builds an external system over HANG and generates one item (killed by the test meanwhile).
RUNNER = textwrap.dedent(
    """
    import sys
    from bench.systems.external import ExternalSystem
    from suites.item import EvalItem
    script, pids, prompt = sys.argv[1:4]
    system = ExternalSystem(["{python}", script, "{input}", pids], "hang", timeout_s=60)
    system.generate([EvalItem("a", "Hello there.", prompt, "s")], [0])
    """
)


def _item(tmp_path: Path, name: str = "a", text: str = "Hello there.") -> EvalItem:
    prompt = tmp_path / "prompt.wav"
    if not prompt.exists():
        write_wav(prompt, 0.1 * np.sin(np.arange(16000) / 5.0), 16000)
    return EvalItem(id=name, text=text, prompt_audio=str(prompt), speaker="s")


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for its (new) parent to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] == "Z"
    except (OSError, IndexError):
        return not Path(f"/proc/{pid}").exists()


def _wait_dead(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not _dead(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()]


def _end(pids: list[int]) -> None:
    """Clean up processes this test started (through a command) that are still alive."""
    for pid in pids:
        if not _dead(pid):
            os.kill(pid, signal.SIGKILL)


def _build(**options) -> ExternalSystem:
    entry = {"kind": "external", "name": "tts", "command": ["tts", "{input}"], **options}
    (system,) = build_systems([SystemConfig.from_dict(entry, "systems.0")], "cpu")
    return system


# --- timeouts and the process group ------------------------------------------------------------------------


@pytest.mark.parametrize("stubborn", [False, True], ids=["exits-on-sigterm", "ignores-sigterm"])
def test_a_hanging_command_times_out_and_its_process_group_dies(tmp_path, monkeypatch, stubborn):
    monkeypatch.setattr(process_module, "KILL_GRACE_S", 1.0)
    script, pid_file = _script(tmp_path, "hang.py", HANG), tmp_path / "pids"
    command = ["{python}", str(script), "{input}", str(pid_file), *(["stubborn"] if stubborn else [])]
    system = ExternalSystem(command, "hang", timeout_s=1)
    start = time.monotonic()
    out = system.generate([_item(tmp_path, "a"), _item(tmp_path, "b")], [0, 0])
    elapsed = time.monotonic() - start
    pids = _pids(pid_file)
    try:
        # the timeout; a command ignoring SIGTERM gets SIGKILL after the grace (1 s here)
        assert (2.0 <= elapsed < 3.5) if stubborn else (1.0 <= elapsed < 1.8), elapsed
        for generated in out:
            assert generated.audio is None
            assert generated.error == "command timed out after 1.0 s (timeout_s); stderr tail: 'loading the model'"
        assert all(_wait_dead(pid, 0.5) for pid in pids), pids
    finally:
        _end(pids)


def test_an_interrupted_wait_kills_the_process_group(tmp_path):
    script, pid_file = _script(tmp_path, "hang.py", HANG), tmp_path / "pids"
    system = ExternalSystem(["{python}", str(script), "{input}", str(pid_file)], "hang", timeout_s=30)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            system.generate([_item(tmp_path)], [0])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    pids = _pids(pid_file)
    try:
        assert all(_wait_dead(pid, 0.5) for pid in pids), pids
    finally:
        _end(pids)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_command_dies_with_a_killed_runner(tmp_path, sig):
    script, pid_file = _script(tmp_path, "hang.py", HANG), tmp_path / "pids"
    runner_script = _script(tmp_path, "runner.py", RUNNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(runner_script), str(script), str(pid_file), _item(tmp_path).prompt_audio]
    runner = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists():
            assert runner.poll() is None, runner.communicate()[1]
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        pids = _pids(pid_file)
        runner.send_signal(sig)  # SIGTERM's default action, like SIGKILL, runs no `finally`
        runner.wait(5)
        assert _wait_dead(pids[0], 3.0), "the command outlived its runner"
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        _end(pids)  # the command's own child is not covered (documented): it is reparented and lives on


def test_leftover_background_processes_are_killed_after_a_normal_exit(tmp_path):
    script, pid_file = _script(tmp_path, "leaves.py", LEAVES_A_CHILD), tmp_path / "pid"
    system = ExternalSystem(["{python}", str(script), "{input}", str(pid_file)], "leaves")
    (generated,) = system.generate([_item(tmp_path)], [0])
    pids = _pids(pid_file)
    try:
        assert generated.error is None and len(generated.audio) == 16000
        assert _wait_dead(pids[0], 0.5)
    finally:
        _end(pids)


def test_the_default_timeout_scales_with_the_batch_text(tmp_path, monkeypatch):
    base, per_char = external_module.DEFAULT_TIMEOUT_BASE_S, external_module.DEFAULT_TIMEOUT_PER_CHAR_S
    assert default_timeout_s([]) == base
    assert default_timeout_s(["a" * 40, "b" * 60]) == pytest.approx(base + 100 * per_char)
    assert default_timeout_s(["a" * 400]) > default_timeout_s(["a" * 40]) > base
    system = ExternalSystem(["tts", "{input}"], "tts")
    assert system.timeout_for([_item(tmp_path, text="x" * 30)]) == (
        pytest.approx(base + 30 * per_char),
        "the default timeout_s for 30 characters",
    )
    assert ExternalSystem(["tts"], "tts", timeout_s=7).timeout_for([_item(tmp_path)]) == (7.0, "timeout_s")

    # unset, it is applied (not "wait forever"): here 0.5 s + 0.01 s x 50 characters
    monkeypatch.setattr(external_module, "DEFAULT_TIMEOUT_BASE_S", 0.5)
    monkeypatch.setattr(external_module, "DEFAULT_TIMEOUT_PER_CHAR_S", 0.01)
    script, pid_file = _script(tmp_path, "hang.py", HANG), tmp_path / "pids"
    hanging = ExternalSystem(["{python}", str(script), "{input}", str(pid_file)], "hang")
    (generated,) = hanging.generate([_item(tmp_path, text="y" * 50)], [0])
    try:
        assert generated.error.startswith("command timed out after 1.0 s (the default timeout_s for 50 characters)")
    finally:
        _end(_pids(pid_file))


# --- exit statuses and sidecars ----------------------------------------------------------------------------


def _ends(tmp_path: Path, how: str) -> list:
    script = _script(tmp_path, "ends.py", ENDS)
    system = ExternalSystem(["{python}", str(script), "{input}", how], "ends")
    items = [_item(tmp_path, name) for name in ("ok", "refused", "skipped")]
    return system.generate(items, [0, 0, 0])


def test_a_command_that_exits_0_gives_its_audio_and_each_request_its_own_error(tmp_path):
    ok, refused, skipped = _ends(tmp_path, "sys.exit(0)")
    assert ok.error is None and ok.sample_rate == 16000 and len(ok.audio) == 16000  # 1 s at 24 kHz, resampled
    assert ok.timings == {"model": 0.25}
    assert refused.audio is None and refused.error == "no phonemes for this text"  # its wav notwithstanding
    assert skipped.audio is None and "(the command exited 0; stderr tail: 'CUDA error" in skipped.error


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ("sys.exit(1)", "command exited 1"),
        ("os.kill(os.getpid(), signal.SIGKILL)", "command exited -9 (killed by SIGKILL)"),
    ],
)
def test_a_failed_exit_fails_the_batch_though_every_wav_was_written(tmp_path, how, status):
    ok, refused, skipped = _ends(tmp_path, how)
    for generated in (ok, skipped):
        assert generated.audio is None
        assert generated.error == f"{status}; stderr tail: 'CUDA error: device-side assert'"
    assert refused.error == "no phonemes for this text"


def test_a_command_that_cannot_start_fails_its_items(tmp_path):
    out = ExternalSystem([str(tmp_path / "no-such-tts"), "{input}"], "x").generate([_item(tmp_path)] * 2, [0, 1])
    assert [g.audio for g in out] == [None, None]
    assert all(g.error.startswith("the command did not start: FileNotFoundError") for g in out)


# Answers each request with its source (a TTS request: its prompt) after noting what it got: it converts nothing.
COPY_SOURCE = textwrap.dedent(
    """
    import json, os, shutil, sys
    for line in open(sys.argv[1]):
        r = json.loads(line)
        source = r.get("source_audio") or r["prompt_audio"]
        with open(sys.argv[2], "a") as log:
            log.write(json.dumps({**r, "source_found": os.path.isfile(source)}) + "\\n")
        shutil.copyfile(source, r["output"])
    """
)


def test_a_voice_conversion_program_gets_the_source_and_says_it_converts(tmp_path):
    """The vc request adds the task, the source clip (16 kHz wav) and its speaker; the output is the program's."""
    source = write_wav(tmp_path / "source.wav", 0.2 * np.sin(np.arange(24000) / 7.0), 24000)
    vc = replace(_item(tmp_path), task="vc", source_audio=str(source), source_speaker="other")
    script, log = _script(tmp_path, "copy.py", COPY_SOURCE), tmp_path / "requests.jsonl"
    (system,) = build_systems(
        [SystemConfig.from_dict({"kind": "external", "command": ["{python}", str(script), "{input}", str(log)],
                                 "tasks": ["vc"]}, "systems.0")], "cpu",
    )  # fmt: skip
    assert system.tasks == {"vc"} and system.describe()["tasks"] == ["vc"]
    [out] = system.generate([vc], [3])
    [request] = [json.loads(line) for line in log.read_text().splitlines()]
    assert request["task"] == "vc" and request["source_speaker"] == "other" and request["source_found"]
    assert request["text"] == "Hello there." and request["seed"] == 3
    assert out.error is None and np.allclose(out.audio, read_audio(source, 16_000).samples, atol=1e-4)
    # a TTS request has no vc fields, and a TTS program's description is unchanged
    assert _build().tasks == {"tts"} and "tasks" not in _build().describe()
    ExternalSystem(["{python}", str(script), "{input}", str(tmp_path / "tts.jsonl")], "x").generate(
        [_item(tmp_path)], [0]
    )
    [tts_request] = [json.loads(line) for line in (tmp_path / "tts.jsonl").read_text().splitlines()]
    assert not {"task", "source_audio", "source_speaker"} & set(tts_request)


# --- options and the program's fingerprint -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout_s": 0}, r"systems\.0\.timeout_s: must be a number of seconds > 0, got 0"),
        ({"timeout_s": -5.0}, r"systems\.0\.timeout_s: must be a number"),
        ({"timeout_s": "60"}, r"systems\.0\.timeout_s: expected a number, got '60'"),
        ({"timeout_s": True}, r"systems\.0\.timeout_s: expected a number, got True"),
        ({"timeout_s": float("inf")}, r"systems\.0\.timeout_s: must be a number"),
        ({"version_command": "tts --version"}, r"systems\.0\.version_command: expected a list, got 'tts --version'"),
        ({"version_command": ["tts", "{input}"]}, r"systems\.0\.version_command: only \{python\} is substituted"),
        ({"fingerprint_files": "model.onnx"}, r"systems\.0\.fingerprint_files: expected a list, got 'model\.onnx'"),
        ({"fingerprint_files": [""]}, r"systems\.0\.fingerprint_files: must be a list of paths"),
        ({"tasks": ["vc", "asr"]}, r"systems\.0\.tasks: expected a non-empty list of tts, vc, got \['vc', 'asr'\]"),
        ({"tasks": []}, r"systems\.0\.tasks: expected a non-empty list"),
    ],
)
def test_bad_options_name_the_key(options, message):
    with pytest.raises(SystemConfigError, match=message):
        SystemConfig.from_dict({"kind": "external", "command": ["tts", "{input}"], **options}, "systems.0")


def test_an_unfingerprinted_program_keeps_its_description_and_says_so():
    system = _build(timeout_s=90)
    assert system.timeout_s == 90
    assert system.describe() == {"kind": "external", "command": ["tts", "{input}"], "sample_rate": 16_000}
    assert system.provenance_note() == UNFINGERPRINTED_NOTE and "not detected" in UNFINGERPRINTED_NOTE
    (ground_truth,) = build_systems([SystemConfig.from_dict({"kind": "ground_truth"})], "cpu")
    assert ground_truth.provenance_note() is None  # the base class's answer


def test_version_command_output_changes_the_description_and_cache_key(tmp_path):
    version = tmp_path / "VERSION"
    script = _script(tmp_path, "version.py", "import sys; print(open(sys.argv[1]).read())")
    options = {"version_command": ["{python}", str(script), str(version)]}
    item = _item(tmp_path)
    version.write_text("tts 1.0\n")
    first = _build(**options)
    assert first.describe()["fingerprint"] == {"version": "tts 1.0", "files": None}
    assert first.provenance_note() is None
    assert _build(**options).describe() == first.describe()  # deterministic
    version.write_text("tts 1.1\n")
    second = _build(**options)
    assert second.describe()["fingerprint"]["version"] == "tts 1.1"
    assert generation_key(second.describe(), item, 0) != generation_key(first.describe(), item, 0)
    # a long output is clipped, and a difference past the clip still shows (its digest)
    version.write_text("x" * 300 + "1")
    long_1 = _build(**options).describe()["fingerprint"]["version"]
    version.write_text("x" * 300 + "2")
    long_2 = _build(**options).describe()["fingerprint"]["version"]
    assert long_1.startswith("x" * 200 + "... (sha256 ") and long_1 != long_2


def test_fingerprint_files_hash_names_and_contents(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths are the working directory's
    Path("model.bin").write_bytes(b"weights v1")
    for name, text in (("src/infer.py", "print(1)"), ("src/sub/util.py", "x = 1")):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text)
    options = {"fingerprint_files": ["model.bin", "src"]}
    item = _item(tmp_path)

    def files() -> str:
        described = _build(**options).describe()
        assert described["fingerprint"]["version"] is None
        return described["fingerprint"]["files"]

    first = files()
    assert len(first) == 64 and files() == first
    first_key = generation_key(_build(**options).describe(), item, 0)
    Path("src/__pycache__").mkdir()
    Path("src/__pycache__/infer.cpython-311.pyc").write_bytes(b"\0")
    assert files() == first  # what a run writes into __pycache__ changes nothing
    seen = {first}
    for change in (
        lambda: Path("src/sub/util.py").write_text("x = 2"),  # a nested file's content
        lambda: Path("src/infer.py").rename("src/main.py"),  # a name, same contents
        lambda: Path("model.bin").write_bytes(b"weights v2"),  # a listed file
    ):
        change()
        now = files()
        assert now not in seen
        seen.add(now)
    assert generation_key(_build(**options).describe(), item, 0) != first_key


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing file", r"systems\.tts\.fingerprint_files: '.*missing\.bin' does not exist"),
        ("empty directory", r"systems\.tts\.fingerprint_files: '.*empty' is a directory without files"),
        ("failing version", r"systems\.tts\.version_command: exited 3; stderr tail: 'no licence'"),
        ("silent version", r"systems\.tts\.version_command: printed nothing"),
        ("missing program", r"systems\.tts\.version_command: could not start '.*no-such-program'"),
        ("slow version", r"systems\.tts\.version_command: timed out after 1 s"),
    ],
)
def test_fingerprint_failures_name_the_key(tmp_path, monkeypatch, case, message):
    monkeypatch.setattr(external_module, "VERSION_TIMEOUT_S", 1.0)
    (tmp_path / "empty").mkdir()
    code = {
        "failing version": "import sys; print('no licence', file=sys.stderr); sys.exit(3)",
        "silent version": "pass",
        "slow version": "import time; time.sleep(30)",
    }
    options = {
        "missing file": {"fingerprint_files": [str(tmp_path / "missing.bin")]},
        "empty directory": {"fingerprint_files": [str(tmp_path / "empty")]},
        "missing program": {"version_command": [str(tmp_path / "no-such-program"), "--version"]},
    }.get(case) or {"version_command": ["{python}", "-c", code[case]]}
    with pytest.raises(SystemConfigError, match=message):
        _build(**options)


BROKEN = """
import json, sys, time
import numpy as np, soundfile as sf
mode = sys.argv[2]
for line in open(sys.argv[1]):
    r = json.loads(line)
    sf.write(r["output"], np.zeros(16000, dtype="float32") + 0.1, 16000)
if mode == "hang":
    time.sleep(60)
sys.stderr.write("model crashed after writing\\n")
sys.exit(1)
"""


def test_hanging_and_failing_programs_through_the_cli(tmp_path, capsys):
    """`flashspeech-bench run` with a program that hangs (timeout_s = 2) and one that exits 1 after writing every
    wav: the run finishes in about the timeout, both batches' items are failed generations with the reason, the
    failures are counted in the results, and nothing else is lost."""
    from bench.cli import main
    from bench.results import Results

    script = tmp_path / "broken.py"
    script.write_text(BROKEN)
    config = tmp_path / "broken.toml"
    config.write_text(
        f"""
name = "broken"
seeds = [0]
mlflow = false
reports = false

[[testsets]]
name = "real"
max_items = 2

[[systems]]
kind = "external"
name = "hangs"
batch_size = 2
timeout_s = 2
command = ["{{python}}", "{script}", "{{input}}", "hang"]

[[systems]]
kind = "external"
name = "exits-1"
batch_size = 2
command = ["{{python}}", "{script}", "{{input}}", "fail"]

[[systems]]
kind = "ground_truth"

[suites.defects]
"""
    )
    start = time.monotonic()
    assert main(["run", "--config", str(config), "--output-dir", str(tmp_path / "out"), "--quiet"]) == 0
    assert time.monotonic() - start < 40
    out = capsys.readouterr().out
    items = Results.load(tmp_path / "out").items.set_index("system")
    hung, failed, truth = (items.loc[f"real:{name}"] for name in ("hangs", "exits-1", "ground_truth"))
    assert (hung["status"] == "failed").all() and hung["error"].str.contains("timed out after 2.0 s").all()
    assert (failed["status"] == "failed").all() and failed["error"].str.contains("exited 1").all()
    assert failed["error"].str.contains("model crashed after writing").all()
    assert (truth["status"] == "ok").all()
    assert "4 failed generation(s)" in out
