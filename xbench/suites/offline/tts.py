"""Speech synthesis from three engines, each returning float32 mono audio at 16 kHz.

* espeak-ng through ``espeakng-loader``'s bundled library (ctypes). libespeak-ng keeps state between
  utterances (its noise generator, pitch flutter phase), so the same call twice gives different
  samples. Every utterance is therefore synthesised in a forked child of a process whose library was
  initialised but never used, with a fixed random seed: identical inputs give identical audio.
* flite: one ``flite`` command per utterance.
* festival: one ``festival -b`` process per voice and batch of utterances (festival is deterministic).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from xbench.suites.offline.audio import SAMPLE_RATE, resample
from xbench.suites.offline.sources import FESTIVAL_VOICES


class SynthesisError(RuntimeError):
    """A TTS engine failed or is missing."""


_ESPEAK_RATE, _ESPEAK_PITCH = 1, 3  # espeak_PARAMETER values
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """espeak-ng from ``espeakng-loader``; :meth:`say` is deterministic (see the module docstring)."""

    def __init__(self) -> None:
        import espeakng_loader

        self._chunks: list[np.ndarray] = []
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        self.rate = lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)  # 2: synchronous
        if self.rate <= 0:
            raise SynthesisError("espeak-ng failed to initialise")
        self._callback = _CALLBACK(self._collect)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)
        self.lib = lib

    def _collect(self, wav: object, n: int, _events: object) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def _child(self, voice: str, text: str, rate: int, pitch: int, seed: int, fd: int) -> None:
        lib = self.lib
        lib.espeak_ng_SetRandSeed(seed)
        if lib.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
            os._exit(3)
        lib.espeak_SetParameter(_ESPEAK_RATE, int(rate), 0)
        lib.espeak_SetParameter(_ESPEAK_PITCH, int(pitch), 0)
        data = text.encode("utf-8")
        if lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 0, None, None) != 0:
            os._exit(4)
        lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        with os.fdopen(fd, "wb") as out:
            out.write(pcm.astype("<i2").tobytes())
        os._exit(0)

    def say(self, voice: str, text: str, rate: int = 170, pitch: int = 50, seed: int = 0) -> np.ndarray:
        """Speak ``text`` with ``voice`` (e.g. ``"fr+m3"``), ``rate`` in words/min, ``pitch`` 0-100."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns
            try:
                os.close(read_fd)
                self._child(voice, text, rate, pitch, seed, write_fd)
            finally:
                os._exit(5)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as inp:
            data = inp.read()
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            reason = {3: "unknown voice"}.get(code, f"exit code {code}")
            raise SynthesisError(f"espeak-ng failed on voice {voice!r}, text {text!r}: {reason}")
        pcm = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        return resample(pcm, self.rate, SAMPLE_RATE)


def _read_wav(path: str | Path) -> np.ndarray:
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(data.mean(axis=1), sr, SAMPLE_RATE)


def flite_say(voice: str, text: str, stretch: float = 1.0) -> np.ndarray:
    """Speak ``text`` with flite voice ``voice``; ``stretch`` > 1 speaks slower."""
    if shutil.which("flite") is None:
        raise SynthesisError("flite is not installed (apt-get install flite)")
    with tempfile.TemporaryDirectory(prefix="xbench-flite-") as tmp:
        out = Path(tmp) / "out.wav"
        cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.2f}", "-t", text, "-o", str(out)]
        proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
        if proc.returncode != 0 or not out.is_file():
            raise SynthesisError(f"flite {voice} failed on {text!r}: {proc.stderr.decode(errors='replace')[-300:]}")
        return _read_wav(out)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def festival_batch(voice: str, items: list[tuple[str, float]]) -> list[np.ndarray]:
    """Speak each ``(text, duration_stretch)`` with festival voice ``voice``, in one festival process."""
    if shutil.which("festival") is None:
        raise SynthesisError("festival is not installed (apt-get install festival festvox-...)")
    encoding = FESTIVAL_VOICES[voice][2]
    with tempfile.TemporaryDirectory(prefix="xbench-festival-") as tmp:
        lines = [f"(voice_{voice})"]
        for i, (text, stretch) in enumerate(items):
            lines.append(f"(Parameter.set 'Duration_Stretch {stretch:.2f})")
            lines.append(f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) \"{tmp}/{i}.wav\" 'riff)")
        script = Path(tmp) / "script.scm"
        script.write_bytes(("\n".join(lines) + "\n").encode(encoding))
        proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, timeout=600, check=False)
        out = []
        for i, (text, _) in enumerate(items):
            path = Path(tmp) / f"{i}.wav"
            if not path.is_file():
                err = proc.stderr.decode(errors="replace")[-300:]
                raise SynthesisError(f"festival {voice} failed on {text!r}: {err}")
            out.append(_read_wav(path))
        return out
