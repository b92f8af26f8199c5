"""A small ctypes binding to espeak-ng, loaded from the `espeakng-loader` wheel (no system package).

One engine per process (espeak-ng keeps global state), guarded by a lock. `synthesize` returns the audio
and the synthesizer's own phoneme events with their sample positions: the corpus takes its phoneme
durations from them, and the text frontend takes its phoneme sequence from the same events, so both
speak one inventory.

Determinism: espeak-ng's audio depends on everything the engine synthesized before in the process
(waveform phase and random state carry over; re-initialising does not reset them), while its phoneme
sequence does not. The frontend needs only phonemes, so it uses the in-process engine. Audio that must
be reproducible goes through `IsolatedSynthesizer`: a clean "zygote" process forks a fresh child per
utterance, which seeds espeak-ng's random generator and synthesizes from pristine state.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import pickle
import threading
from dataclasses import dataclass

import numpy as np

PAUSE = "_"

# espeak_EVENT_TYPE values and flags from speak_lib.h
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_CHARS_UTF8 = 1
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or refused a request."""


class _EventId(ctypes.Union):
    _fields_ = (("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8))


class _Event(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    )


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class VoiceSettings:
    """An espeak-ng voice ("en-us+f3") and its prosody parameters (rate in words/min, pitch 0-99)."""

    name: str = "en-us"
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50
    word_gap: int = 0  # extra pause between words, units of 10 ms


@dataclass(frozen=True)
class Synthesis:
    """Audio (float32 in [-1, 1]) and phonemes with their start sample, in order."""

    samples: np.ndarray
    sample_rate: int
    phonemes: tuple[str, ...]
    starts: tuple[int, ...]


class Espeak:
    """The process-wide espeak-ng engine. Use `Espeak.get()`."""

    _instance: Espeak | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - declared dependency
            raise EspeakError("espeakng-loader is not installed (pip install espeakng-loader)") from exc
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Info.restype = ctypes.c_char_p
        data = espeakng_loader.get_data_path().encode()
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {rate})")
        self.sample_rate = int(rate)
        self.version = self._lib.espeak_Info(None).decode()
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[str, int]] = []
        self._callback = _Callback(self._on_audio)  # keep a reference: espeak holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> Espeak:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _on_audio(self, wav, n, events) -> int:  # type: ignore[no-untyped-def]
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                name = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                self._events.append((name or PAUSE, int(ev.sample)))
            i += 1
        return 0

    def synthesize(self, text: str, voice: VoiceSettings = VoiceSettings(), seed: int | None = None) -> Synthesis:
        """Speak `text`; consecutive pauses are merged into one `PAUSE` phoneme.

        The audio depends on this process's synthesis history; see `IsolatedSynthesizer`.
        """
        raw = text.encode("utf-8")
        with self._lock:
            if seed is not None:
                self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
            if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise EspeakError(f"espeak-ng has no voice {voice.name!r}")
            for key, value in (
                ("rate", voice.rate),
                ("pitch", voice.pitch),
                ("range", voice.pitch_range),
                ("wordgap", voice.word_gap),
            ):
                self._lib.espeak_SetParameter(_PARAM[key], int(value), 0)
            self._chunks, self._events = [], []
            err = self._lib.espeak_Synth(raw, len(raw) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            if err != 0:
                raise EspeakError(f"espeak_Synth failed with code {err} for text {text!r}")
            chunks, events = self._chunks, self._events
            self._chunks, self._events = [], []
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        phonemes: list[str] = []
        starts: list[int] = []
        for name, start in events:
            if name == PAUSE and phonemes and phonemes[-1] == PAUSE:
                continue
            phonemes.append(name)
            starts.append(start)
        return Synthesis(
            samples=audio.astype(np.float32) / 32768.0,
            sample_rate=self.sample_rate,
            phonemes=tuple(phonemes),
            starts=tuple(starts),
        )


def _zygote_main(conn) -> None:  # type: ignore[no-untyped-def]
    """Serve (text, voice, seed) requests, each in a freshly forked child of this pristine process."""
    Espeak.get()  # load and initialise once; never synthesize here
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: synthesize from the zygote's pristine state, send, exit
            os.close(read_fd)
            try:
                text, voice, seed = request
                result: object = Espeak.get().synthesize(text, voice, seed=seed)
            except BaseException as exc:
                result = EspeakError(f"{type(exc).__name__}: {exc}")
            with os.fdopen(write_fd, "wb") as fh:
                pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as fh:
            payload = fh.read()
        os.waitpid(pid, 0)
        try:
            conn.send(pickle.loads(payload))
        except Exception as exc:  # child died before writing
            conn.send(EspeakError(f"synthesis child failed: {exc}"))


class IsolatedSynthesizer:
    """Reproducible espeak-ng synthesis: the same (text, voice, seed) gives the same samples, always.

    Use as a context manager; it owns one zygote process (POSIX only: it forks).
    """

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(target=_zygote_main, args=(child_conn,), daemon=True)
        self._proc.start()
        child_conn.close()

    def synthesize(self, text: str, voice: VoiceSettings, seed: int) -> Synthesis:
        self._conn.send((text, voice, int(seed)))
        result = self._conn.recv()
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(None)
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
        self._conn.close()

    def __enter__(self) -> IsolatedSynthesizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
