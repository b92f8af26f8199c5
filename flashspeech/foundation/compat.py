"""Installation checks that turn a broken torch / torchaudio pairing into one clear error.

torchaudio is a C++ extension compiled against one torch release. A registry can serve a torchaudio whose
release has no matching torch (torchaudio 2.11.1 next to torch 2.11.0): `import torchaudio` then dies deep in
the dynamic loader with `undefined symbol: ...`. `check_torch_pair()` compares the installed distributions'
versions without importing either; `import_torchaudio()` imports it and rewrites a loader failure.
"""

from __future__ import annotations

import re
from importlib import metadata
from types import ModuleType

FIX = "reinstall from the project's lock: `pip install -c requirements/lock.txt -e .` (or `nox -s tests`)"


class TorchPairError(ImportError):
    """torch and torchaudio are installed in versions that cannot work together."""


def _release(version: str) -> tuple[int, ...]:
    """(major, minor, micro) of a version string; local tags (+cpu, +cu128) and pre-releases are ignored."""
    parts = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
    if parts is None:
        raise ValueError(f"unparseable version {version!r}")
    return tuple(int(p or 0) for p in parts.groups())


def installed_versions() -> tuple[str | None, str | None]:
    """The installed (torch, torchaudio) distribution versions; None for one that is not installed."""
    found = []
    for name in ("torch", "torchaudio"):
        try:
            found.append(metadata.version(name))
        except metadata.PackageNotFoundError:
            found.append(None)
    return found[0], found[1]


def pair_problem(torch_version: str | None, torchaudio_version: str | None) -> str | None:
    """Why these two versions cannot work together, or None when they can (or either is absent).

    Since torch 2.1 every torchaudio release is built for the torch release with the same number."""
    if torch_version is None or torchaudio_version is None:
        return None
    torch_release, audio_release = _release(torch_version), _release(torchaudio_version)
    if torch_release < (2, 1) or torch_release == audio_release:
        return None
    return (
        f"torchaudio {torchaudio_version} is built for torch {'.'.join(map(str, audio_release))}, but torch "
        f"{torch_version} is installed: loading torchaudio would fail with an undefined symbol. Fix: {FIX}"
    )


def check_torch_pair() -> None:
    """Raise `TorchPairError` naming both versions and the fix when the installed pair cannot work."""
    problem = pair_problem(*installed_versions())
    if problem:
        raise TorchPairError(problem)


def import_torchaudio() -> ModuleType:
    """`import torchaudio`, with a loader failure (undefined symbol, missing library) reported as one clear
    `TorchPairError` that names both installed versions and the fix."""
    check_torch_pair()
    try:
        import torchaudio
    except (ImportError, OSError) as exc:
        torch_version, audio_version = installed_versions()
        raise TorchPairError(
            f"torchaudio {audio_version} failed to load with torch {torch_version} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). Fix: {FIX}"
        ) from exc
    return torchaudio
