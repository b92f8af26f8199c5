"""The speech foundation every other layer stands on, importing nothing else of the project.

Audio I/O and resampling (`audio`), atomic file writes (`files`), hashing and the one JSON fingerprint
(`hashing`), local model assets with sha256 checks (`assets`), the torch/torchaudio install check
(`compat`), machine facts (`environment`), F0 extraction (`f0`), and the offline Whisper / UniSpeech weight
lookups and converters that both training and scoring load (`whisper`, `ct2_convert`, `unispeech`).
"""
