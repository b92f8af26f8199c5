"""Systems under test, behind one interface (`bench.systems.base`), each kind registered by its module.

- `flashspeech`: the bundled model (or its diffusion baseline) at each configured step count;
- `ground_truth`, `codec_resynthesis`: the recorded targets, and the targets through the codec;
- `external`: any program, through a file contract (`bench.systems.external`).
"""

from bench.systems import external, flashspeech, references  # noqa: F401 - each module registers its kind
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
