"""Systems under test, behind one interface (`bench.systems.base`), each kind registered by its module.

- `flashspeech`: the bundled model (or its diffusion baseline) at each configured step count;
- `flashspeech_vc`: the bundled model as a voice converter, at each configured noise level;
- `ground_truth`, `codec_resynthesis`: the recorded targets, and the targets through the codec;
- `source_passthrough`: a voice-conversion item's source, unconverted (the floor);
- `external`: any program, through a file contract (`bench.systems.external`), for TTS or voice conversion.
"""

from bench.systems import external, flashspeech, references, voice_conversion  # noqa: F401 - each registers its kind
from bench.systems.base import (
    SYSTEMS,
    Generated,
    System,
    SystemConfig,
    SystemConfigError,
    build_systems,
    check_unique_names,
)

__all__ = ["SYSTEMS", "Generated", "System", "SystemConfig", "SystemConfigError", "build_systems", "check_unique_names"]
