"""Developer and CI sessions: `nox -s tests`, `nox -s lint`.

Sessions need nothing on the machine but Python and nox. Virtual environments are reused between runs
(torch and its CUDA libraries are large), and reinstalled when `pyproject.toml` changes.
"""

from __future__ import annotations

import nox

nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite on CPU; GPU-marked tests skip cleanly without a GPU."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """The embedded benchmark on CPU (or a config/flags given after `--`), e.g. `nox -s bench -- --gate DIR`."""
    session.install("-e", ".")
    args = list(session.posargs)
    if "--config" not in args:
        args = ["--config", "smoke", *args]
    session.run("flashspeech-bench", "run", *args)


@nox.session
def perf(session: nox.Session) -> None:
    """pytest-benchmark micro-benchmarks, saved under .benchmarks/; from the second run on, compared with the
    previous saved run and failing on a median slowdown over 25 %."""
    from pathlib import Path

    session.install("-e", ".[test]")
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
    session.install("-e", ".")
    args = list(session.posargs)
    if "--config" not in args:
        args = ["--config", "cpu-rtf", *args]
    session.run("flashspeech-bench", "speed", *args)


@nox.session
def train(session: nox.Session) -> None:
    """Train from a recipe (default: the shipped tiny FlashSpeech, from the diffusion baseline's weights;
    resumes), e.g. `nox -s train -- --config tiny-diffusion`, `nox -s train -- --config tiny-paper` (the
    paper's three stages from scratch), `nox -s train -- --config tiny-paper --stage consistency --steps 500`."""
    session.install("-e", ".")
    args = list(session.posargs)
    if "--config" not in args:
        args = ["--config", "tiny", *args]
    session.run("flashspeech-bench", "train", *args)
