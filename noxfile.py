"""Developer and CI sessions: `nox -s tests`, `nox -s lint`, `nox -s bench`, ...

Sessions need nothing on the machine but Python and nox. Every install goes through the committed lock
(`requirements/lock.txt`, pip constraints): one tested set of versions, torch and torchaudio as a matching
pair. `nox -s lock` re-resolves it without upgrading; `nox -s upgrade` re-resolves to the newest versions that
`pyproject.toml` allows, runs the tests in a fresh environment and rewrites the lock only when they pass.
Virtual environments are reused between runs (torch and its CUDA libraries are large); each session's install
step brings a reused environment back to the lock.
"""

from __future__ import annotations

import itertools
import re
import shutil
import tempfile
from pathlib import Path

import nox

nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent
LOCK = ROOT / "requirements" / "lock.txt"
UV = "uv==0.13.9"  # the resolver used by `lock` and `upgrade`; pinned like everything else


def _install(session: nox.Session, *targets: str) -> None:
    """pip-install `targets` under the lock's constraints, then fail on any broken dependency."""
    session.install("-c", str(LOCK), *targets)
    session.run("python", "-m", "pip", "check", silent=True)


# Resolver pins the lock needs beyond pyproject.toml, each with its reason.
RESOLVER_PINS = {
    # resemblyzer requires the `typing` backport; uv picks typing 3.10.0.0, which ships no file pip can install
    # on Python >= 3.5, so pip's install from the lock fails. 3.7.4.3 is what pip itself picks.
    "typing": "3.7.4.3",
}


def _compile(session: nox.Session, out: Path, *, upgrade: bool) -> None:
    """Resolve pyproject.toml (all extras, every platform, Python >= 3.10) into `out`.

    torchaudio is a C++ extension built against one torch release: when the resolver picks a torchaudio whose
    release differs from torch's (torchaudio 2.11.1 with torch 2.11.0 fails to load), it is re-resolved with
    torchaudio pinned to torch's release.
    """
    pins = out.with_name("resolver-pins.txt")
    args = ["python", "-m", "uv", "pip", "compile", "pyproject.toml", "--all-extras", "--universal"]
    args += ["--python-version", "3.10", "--no-header", "--annotation-style", "line", "--quiet"]
    args += ["--constraint", str(pins), "-o", str(out), *(["--upgrade"] if upgrade else [])]
    if not upgrade and LOCK.exists():
        shutil.copyfile(LOCK, out)  # uv keeps the versions already in `out` unless told to upgrade
    pins.write_text("".join(f"{name}=={version}\n" for name, version in RESOLVER_PINS.items()))
    session.run(*args)
    versions = _pins(out)
    torch, audio = versions["torch"].split("+")[0], versions["torchaudio"].split("+")[0]
    if torch != audio:
        session.log(f"resolver paired torchaudio {audio} with torch {torch}: pinning torchaudio=={torch}")
        pins.write_text(pins.read_text() + f"torchaudio=={torch}\n")
        session.run(*args)
    text = out.read_text().replace(f"-c {pins}", "RESOLVER_PINS / the torch-torchaudio pair rule (noxfile.py)")
    out.write_text(text if text.startswith("#") else _LOCK_HEADER + text)


_LOCK_HEADER = """\
# The one tested set of versions every nox session and CI install (as pip constraints).
# Written by `nox -s lock` (after a pyproject.toml change) or `nox -s upgrade` (newest versions, tests pass
# first); never edited by hand.
"""


def _pins(lock: Path) -> dict[str, str]:
    """name -> version of the lock's unconditional `name==version` lines (marker-qualified ones are skipped)."""
    pins = {}
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)\s*(#.*)?$", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite on CPU; GPU-marked tests skip cleanly without a GPU."""
    _install(session, "-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    _install(session, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """The embedded benchmark on CPU (or a config/flags given after `--`), e.g. `nox -s bench -- --gate DIR`.
    Installs the [asr-base] and [mos] extras: the smoke config scores WER with Whisper base, MOS with DistillMOS;
    with `--device cuda` also [ct2-cuda] (the CUDA 12 cuBLAS that CTranslate2 loads on a GPU)."""
    args = list(session.posargs)
    device = next((b for a, b in itertools.pairwise(args) if a == "--device"), "")
    device = next((a.split("=", 1)[1] for a in args if a.startswith("--device=")), device)
    _install(session, "-e", ".[asr-base,mos,ct2-cuda]" if device.startswith("cuda") else ".[asr-base,mos]")
    if "--config" not in args:
        args = ["--config", "smoke", *args]
    session.run("flashspeech-bench", "run", *args)


@nox.session
def perf(session: nox.Session) -> None:
    """pytest-benchmark micro-benchmarks, saved under .benchmarks/; from the second run on, compared with the
    previous saved run and failing on a median slowdown over 25 %."""
    from pathlib import Path

    _install(session, "-e", ".[test]")
    args = ["tests/perf", "--benchmark-enable", "--benchmark-only", "--benchmark-autosave"]
    if any(Path(".benchmarks").glob("*/*.json")):
        args += ["--benchmark-compare", "--benchmark-compare-fail=median:25%"]
    else:
        session.log("no saved benchmark run yet: this run becomes the baseline")
    session.run("pytest", *args, "--benchmark-columns=min,median,iqr,rounds", *session.posargs)


@nox.session
def speed(session: nox.Session) -> None:
    """The GPU-speed benchmark, e.g. `nox -s speed -- --config gpu-rtf` (default cpu-rtf); writes
    results/speed/<config>-<device>.json and prints its tables."""
    _install(session, "-e", ".")
    args = list(session.posargs)
    if "--config" not in args:
        args = ["--config", "cpu-rtf", *args]
    session.run("flashspeech-bench", "speed", *args)


@nox.session
def history(session: nox.Session) -> None:
    """Trend report of a config's runs across commits from an MLflow store, e.g. `nox -s history --
    --tracking-uri http://mlflow:5000 --config smoke --out outputs/history` (see .ci/regression)."""
    _install(session, "-e", ".")
    session.run("flashspeech-bench", "history", *session.posargs)


@nox.session
def throughput(session: nox.Session) -> None:
    """Scoring throughput of the suites' real backends on the committed clips, items/s per backend and batch size,
    e.g. `nox -s throughput -- --batch 1 8 16 --out docs/measurements/scoring-throughput-cpu` (a benchmark: run it
    on a quiet machine; `--device cuda` on a GPU)."""
    _install(session, "-e", ".[asr-base,mos]")
    session.run("flashspeech-bench", "throughput", *session.posargs)


@nox.session
def scaling(session: nox.Session) -> None:
    """Scoring throughput against the number of Ray actors, e.g. `nox -s scaling -- --model whisper:base
    --actors 1 2 --out docs/measurements/ray-scaling-whisper-base-cpu` (a benchmark: run it on a quiet machine)."""
    _install(session, "-e", ".[ray]")
    session.run("flashspeech-bench", "scaling", *session.posargs)


@nox.session
def train(session: nox.Session) -> None:
    """Train from a recipe (default: the shipped tiny FlashSpeech, from the diffusion baseline's weights;
    resumes), e.g. `nox -s train -- --config tiny-diffusion`, `nox -s train -- --config tiny-paper` (the
    paper's three stages from scratch), `nox -s train -- --config tiny-paper --stage consistency --steps 500`."""
    _install(session, "-e", ".")
    args = list(session.posargs)
    if "--config" not in args:
        args = ["--config", "tiny", *args]
    session.run("flashspeech-bench", "train", *args)


@nox.session(venv_backend="none")
def lock(session: nox.Session) -> None:
    """Re-resolve requirements/lock.txt after a pyproject.toml change, keeping every version it can."""
    session.run("python", "-m", "pip", "install", "--quiet", UV)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lock.txt"
        _compile(session, out, upgrade=False)
        shutil.copyfile(out, LOCK)
    session.log(f"wrote {LOCK.relative_to(ROOT)}: run `nox -s tests` before committing it")


@nox.session(reuse_venv=False)
def upgrade(session: nox.Session) -> None:
    """Resolve the newest allowed versions, run the tests on them in a fresh environment, and rewrite
    requirements/lock.txt only when they pass (the old lock is kept otherwise)."""
    session.install(UV)
    out = Path(session.create_tmp()) / "lock-candidate.txt"
    _compile(session, out, upgrade=True)
    old, new = _pins(LOCK), _pins(out)
    changed = sorted(k for k in new.keys() | old.keys() if old.get(k) != new.get(k))
    session.log("changes: " + (", ".join(f"{k} {old.get(k, '-')} -> {new.get(k, '-')}" for k in changed) or "none"))
    session.install("-c", str(out), "-e", ".[test]", "ruff")
    session.run("python", "-m", "pip", "check")
    session.run("ruff", "check", ".")
    session.run("pytest", *session.posargs)  # a failure stops the session here: the lock stays as it was
    shutil.copyfile(out, LOCK)
    session.log(f"tests passed: {LOCK.relative_to(ROOT)} rewritten ({len(changed)} versions changed)")
