"""Any TTS program as a system, through a file contract: to benchmark other systems' official code.

Each batch runs the program once under a timeout (`bench.systems.process.run_command`: its own process group,
stopped on a timeout, an interrupted wait, its exit, and with the benchmark process). A non-zero exit fails the
whole batch. `version_command` and `fingerprint_files` identify the program in `describe()`, so a changed program
misses the generation cache. POSIX only (process groups).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.systems.base import (
    FLASHSPEECH_SOURCE,
    SYSTEMS_SOURCE,
    Generated,
    System,
    SystemConfig,
    SystemConfigError,
    error_text,
    register_system,
)
from bench.systems.engines import fingerprint_command
from bench.systems.process import CommandRun, killed_by, run_command
from flashspeech.foundation.audio import read_audio, write_wav
from flashspeech.foundation.hashing import fingerprint, sha256_file
from flashspeech.timing import share_batch_timings
from suites.item import TASKS, TTS, EvalItem

FIXED_VOICE_NOTE = "fixed voice: ignores the prompt, so similarity to the prompt does not measure voice cloning"
UNFINGERPRINTED_NOTE = (
    "no version_command or fingerprint_files: a changed program is not detected; its cached outputs are reused"
)
DEFAULT_TIMEOUT_BASE_S = 300.0  # start-up allowance of the default timeout: interpreter, imports, model load
DEFAULT_TIMEOUT_PER_CHAR_S = 0.5  # per character of the batch's text
VERSION_TIMEOUT_S = 60.0  # for version_command, run once when the system is built
VERSION_CHARS = 200  # of version_command's output kept verbatim in describe()


def default_timeout_s(texts: Sequence[str]) -> float:
    """The batch timeout when `timeout_s` is unset: 300 s of start-up (interpreter, imports, model load) plus
    0.5 s per character of the batch's text. Speech runs at about 15 characters a second, so this leaves room
    for a real-time factor near 7: it stops a hung program, not a slow one."""
    return DEFAULT_TIMEOUT_BASE_S + DEFAULT_TIMEOUT_PER_CHAR_S * sum(len(text) for text in texts)


def _sidecar(path: Path) -> dict[str, Any]:
    """A request's `<output>.json`, or {} when it is missing or not a JSON object."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _is_argv(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(a, str) for a in value)


def _version_argv(argv: Sequence[str]) -> list[str]:
    """`argv` with {python} substituted; KeyError/IndexError/ValueError for any other placeholder."""
    return [a.format(python=sys.executable) for a in argv]


@dataclass
class ExternalOptions:
    """The command (argv with {input}, {output_dir} and {python}), the rate its wavs are resampled to, whether it
    clones the prompt's voice (`prompted = false`: a fixed-voice system that ignores the prompt), the batch
    timeout in seconds (None: `default_timeout_s`), what identifies the program: `version_command` (argv,
    {python} substituted; its output is recorded) and `fingerprint_files` (files or directories, hashed), and the
    tasks it does (`tts`, `vc`: it then gets the test sets of those tasks)."""

    command: list[str] = field(default_factory=list)
    sample_rate: int = 16_000
    prompted: bool = True
    timeout_s: float | None = None
    version_command: list[str] = field(default_factory=list)
    fingerprint_files: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=lambda: [TTS])

    def validate(self, where: str) -> None:
        if not _is_argv(self.command):
            raise SystemConfigError(f"{where}.command: an external system needs a command (a list of strings)")
        if not isinstance(self.prompted, bool):
            raise SystemConfigError(f"{where}.prompted: must be true or false, got {self.prompted!r}")
        timeout = self.timeout_s
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf
        ):
            raise SystemConfigError(f"{where}.timeout_s: must be a number of seconds > 0, got {timeout!r}")
        self._validate_version_command(f"{where}.version_command")
        files = self.fingerprint_files
        if not isinstance(files, list) or not all(isinstance(p, str) and p for p in files):
            raise SystemConfigError(f"{where}.fingerprint_files: must be a list of paths, got {files!r}")
        if not isinstance(self.tasks, list) or not self.tasks or any(t not in TASKS for t in self.tasks):
            known = ", ".join(TASKS)
            raise SystemConfigError(f"{where}.tasks: expected a non-empty list of {known}, got {self.tasks!r}")

    def _validate_version_command(self, where: str) -> None:
        if self.version_command == []:
            return
        if not _is_argv(self.version_command):
            raise SystemConfigError(f"{where}: must be a list of strings (argv), got {self.version_command!r}")
        try:
            _version_argv(self.version_command)
        except (KeyError, IndexError, ValueError) as exc:
            raise SystemConfigError(f"{where}: only {{python}} is substituted, got {error_text(exc)}") from exc


@dataclass(frozen=True)
class Fingerprint:
    """What identifies an external program: version_command's output and the sha256 of fingerprint_files."""

    version: str | None = None
    files: str | None = None


def _version(argv: Sequence[str], where: str) -> str:
    """What `argv` prints (stdout, else stderr), stripped; past VERSION_CHARS it is clipped and the whole
    output's sha256 appended. SystemConfigError naming `where` when it cannot start, fails or prints nothing."""
    try:
        argv = _version_argv(argv)
    except (KeyError, IndexError, ValueError) as exc:
        raise SystemConfigError(f"{where}: only {{python}} is substituted, got {error_text(exc)}") from exc
    with tempfile.TemporaryDirectory(prefix="fsb-version-") as tmp:
        try:
            run = run_command(argv, VERSION_TIMEOUT_S, Path(tmp))
        except (OSError, subprocess.SubprocessError) as exc:
            raise SystemConfigError(f"{where}: could not start {argv[0]!r}: {error_text(exc)}") from exc
        if run.returncode is None:
            raise SystemConfigError(f"{where}: timed out after {VERSION_TIMEOUT_S:.0f} s; {run.tail()}")
        if run.returncode != 0:
            raise SystemConfigError(f"{where}: exited {run.returncode}{killed_by(run.returncode)}; {run.tail()}")
        text = run.stdout.read_text("utf-8", "replace").strip() or run.stderr.read_text("utf-8", "replace").strip()
    if not text:
        raise SystemConfigError(f"{where}: printed nothing, so it cannot tell one version of the program from another")
    if len(text) <= VERSION_CHARS:
        return text
    return f"{text[:VERSION_CHARS]}... (sha256 {fingerprint(text, 16)} of all {len(text)} characters)"


def _files_digest(paths: Sequence[str], where: str) -> str:
    """sha256 over `paths` (relative to the working directory): each path as given, and the name relative to it
    and sha256 of each file it holds (a directory: recursively, sorted, `__pycache__` skipped). SystemConfigError
    naming `where` and the path when it does not exist or is a directory without files."""
    listing = []
    for given in paths:
        root = Path(given)
        if root.is_file():
            files = [root]
        elif root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.relative_to(root).parts)
            if not files:
                raise SystemConfigError(f"{where}: {given!r} is a directory without files")
        else:
            raise SystemConfigError(f"{where}: {given!r} does not exist (relative to {Path.cwd()})")
        listing.extend([given, p.relative_to(root).as_posix(), sha256_file(p)] for p in files)
    return fingerprint(listing)


def program_fingerprint(opts: ExternalOptions, where: str) -> Fingerprint | None:
    """The program's identity from its options (`where` names the entry in errors). An engine program of
    `bench.systems.engines` without a version_command states its own (`--fingerprint`). None: nothing identifies
    the program."""
    if opts.version_command:
        version: str | None = _version(opts.version_command, f"{where}.version_command")
    elif (engine := fingerprint_command(opts.command)) is not None:
        version = _version(engine, f"{where}.command (the engine's --fingerprint)")
    else:
        version = None
    files = _files_digest(opts.fingerprint_files, f"{where}.fingerprint_files") if opts.fingerprint_files else None
    return None if version is None and files is None else Fingerprint(version, files)


def _write_requests(tmpdir: Path, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Each item's prompt clip (and a vc item's source) as a 16 kHz wav, and the request file `requests.jsonl` naming
    them; the requests."""
    requests = []
    for k, (item, seed) in enumerate(zip(items, seeds, strict=True)):
        prompt = write_wav(tmpdir / f"prompt-{k}.wav", item.load_prompt(16_000), 16_000)
        request = {
            "id": item.id,
            "text": item.text,
            "prompt_audio": str(prompt),
            "prompt_text": item.prompt_text,
            "seed": seed,
            "output": str(tmpdir / "out" / f"{k}.wav"),
        }
        source = item.load_source(16_000)
        if source is not None:  # a voice-conversion request (a TTS request is unchanged)
            wav = write_wav(tmpdir / f"source-{k}.wav", source, 16_000)
            request.update(task=item.task, source_audio=str(wav), source_speaker=item.source_speaker)
        requests.append(request)
    (tmpdir / "out").mkdir()
    (tmpdir / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in requests), encoding="utf-8")
    return requests


@register_system
class ExternalSystem(System):
    """Any TTS program, run as a command over a batch of items.

    Contract: the command (argv; `{input}`, `{output_dir}` and `{python}`, the interpreter running the benchmark,
    are substituted) reads the JSONL file `{input}`, one request per line: {"id", "text", "prompt_audio" (a 16 kHz
    mono wav of the prompt clip), "prompt_text" (or null), "seed", "output" (the wav path to write)}; a
    voice-conversion request (an item of a `vc` test set, for a system with "vc" in `tasks`) adds {"task": "vc",
    "source_audio" (a 16 kHz mono wav of the utterance to convert, whose words are "text"), "source_speaker"}, and
    asks for the source's words in the voice of "prompt_audio". It writes one wav per request at `output` (any rate;
    resampled to `sample_rate`), and may write `<output>.json` with {"timings": {stage: seconds}}, or {"error":
    message} for a request it could not answer (that request then fails with this message, wav or not; a sidecar
    that is not a JSON object is ignored). It exits 0: a non-zero exit status, or running past the timeout, fails
    every request of the batch (but those with their own error message), wavs or not, with the status or the timeout
    and the end of its stderr. A request whose wav is missing or unreadable is a failed item; without per-item
    timings, the command's wall time is shared among its items in proportion to their audio length. The command runs
    in its own process group with stdin closed; see `run_command` for how it is stopped.

    Identity: `describe()` carries a "fingerprint" ({"version": version_command's output, "files": sha256 of
    fingerprint_files}) when either is set, or when the command runs an engine of `bench.systems.engines`
    (which states its own). Without one, a changed program keeps its cached outputs: `provenance_note()` says
    so, and the description has no fingerprint key.

    A fixed-voice system (`prompted=False`, e.g. `bench.systems.engines`) still receives the prompts but
    ignores them: describe() says so with a note (speaker similarity to the prompt measures nothing about
    it) and each result's meta carries "prompted": False. Prompted systems' descriptions are unchanged.
    """

    kind = "external"
    Options = ExternalOptions
    threads_affect_audio = False  # the program computes the audio, not this process's torch

    def code_paths(self) -> list[Path]:
        """What of ours touches its audio: this adapter and the audio reading / resampling it applies (the
        program itself is identified by its `fingerprint`)."""
        return [Path(__file__).resolve(), SYSTEMS_SOURCE / "base.py", FLASHSPEECH_SOURCE / "foundation" / "audio.py"]

    @classmethod
    def build(cls, config: SystemConfig, device: str) -> list[System]:
        """One system; runs version_command and hashes fingerprint_files now (SystemConfigError when they fail)."""
        opts: ExternalOptions = config.options
        name = config.name or Path(shlex.split(opts.command[0])[0]).name
        stamp = program_fingerprint(opts, f"systems.{name}")
        return [cls(opts.command, name, opts.sample_rate, opts.prompted, opts.timeout_s, stamp, frozenset(opts.tasks))]

    def __init__(
        self,
        command: Sequence[str],
        name: str,
        sample_rate: int = 16_000,
        prompted: bool = True,
        timeout_s: float | None = None,
        fingerprint: Fingerprint | None = None,
        tasks: frozenset[str] = frozenset({TTS}),
    ):
        self.command, self.name, self.sample_rate, self.prompted = list(command), name, sample_rate, prompted
        self.timeout_s, self.fingerprint, self.tasks = timeout_s, fingerprint, tasks

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"kind": self.kind, "command": self.command, "sample_rate": self.sample_rate}
        if not self.prompted:  # only then: prompted systems keep their description (and generation cache keys)
            described.update(prompted=False, note=FIXED_VOICE_NOTE)
        if self.fingerprint is not None:  # likewise: unfingerprinted systems keep their cache keys
            described["fingerprint"] = dataclasses.asdict(self.fingerprint)
        if self.tasks != {TTS}:  # likewise: TTS systems keep their cache keys
            described["tasks"] = sorted(self.tasks)
        return described

    def provenance_note(self) -> str | None:
        return None if self.fingerprint is not None else UNFINGERPRINTED_NOTE

    def timeout_for(self, items: Sequence[EvalItem]) -> tuple[float, str]:
        """The batch's timeout in seconds, and where it comes from (for the error message)."""
        if self.timeout_s is not None:
            return float(self.timeout_s), "timeout_s"
        chars = sum(len(item.text) for item in items)
        return default_timeout_s([item.text for item in items]), f"the default timeout_s for {chars} characters"

    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:
        with tempfile.TemporaryDirectory(prefix="fsb-external-") as tmp:
            tmpdir = Path(tmp)
            requests = _write_requests(tmpdir, items, seeds)
            values = {"input": tmpdir / "requests.jsonl", "output_dir": tmpdir / "out", "python": sys.executable}
            argv = [a.format(**values) for a in self.command]
            limit, source = self.timeout_for(items)
            try:
                run = run_command(argv, limit, tmpdir)
            except (OSError, subprocess.SubprocessError) as exc:
                failure, wall, tail = f"the command did not start: {error_text(exc)}", 0.0, ""
            else:
                failure, wall, tail = _batch_failure(run, limit, source), run.wall_s, run.tail()
            out = [self._result(r, failure, tail) for r in requests]
        if not self.prompted:
            for g in out:
                g.meta["prompted"] = False
        missing = [g for g in out if g.audio is not None and not g.timings]
        if missing:
            shares = share_batch_timings({"total": wall}, [len(g.audio) / self.sample_rate for g in missing])
            for g, share in zip(missing, shares, strict=True):
                g.timings = share
                g.meta["timing"] = "command wall time shared by audio length"
        return out

    def _result(self, request: dict[str, Any], failure: str | None, tail: str) -> Generated:
        """One request's outcome: its own error message, else the batch's failure, else its wav and timings."""
        info = _sidecar(Path(request["output"] + ".json"))
        own_error = info.get("error")
        if isinstance(own_error, str) and own_error.strip():
            return Generated(None, self.sample_rate, own_error)
        if failure is not None:
            return Generated(None, self.sample_rate, failure)
        try:
            audio = read_audio(request["output"], self.sample_rate).samples
        except Exception as exc:
            return Generated(None, self.sample_rate, f"{error_text(exc)} (the command exited 0; {tail})")
        timings = info.get("timings")
        return Generated(audio, self.sample_rate, timings=timings if isinstance(timings, dict) and timings else {})


def _batch_failure(run: CommandRun, limit: float, source: str) -> str | None:
    """Why every request of the batch fails (None: the command exited 0 in time)."""
    if run.returncode is None:
        return f"command timed out after {limit:.1f} s ({source}); {run.tail()}"
    if run.returncode != 0:
        return f"command exited {run.returncode}{killed_by(run.returncode)}; {run.tail()}"
    return None
