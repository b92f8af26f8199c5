"""FlashSpeech, implemented from scratch: latent consistency model, prosody generator, text frontend."""

from flashspeech.foundation.compat import check_torch_pair

__version__ = "0.1.0"

check_torch_pair()  # a mismatched torch / torchaudio install fails here, with both versions and the fix
