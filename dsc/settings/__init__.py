"""Layered settings: command line > environment (``DSC_...``, nested with ``__``) > TOML file > defaults.

The TOML file is ``--config FILE`` or else ``./dsc.toml`` when present. Each command reads its own
section (``[subset]``, ``[augment]``, ...), defined in ``sections.py``. ``resolve_settings``
(``resolve.py``) also reports where every value came from, which ``dsc config show`` prints and every
output records.
"""

from dsc.settings.resolve import DEFAULT_CONFIG, ResolvedSettings, did_you_mean, resolve_settings
from dsc.settings.sections import (
    SD_DEFAULT,
    AugmentSettings,
    BaselineSettings,
    DscSettings,
    InvertSettings,
    ModelSettings,
    PretrainSettings,
    ProbeSettings,
    ReportSettings,
    Section,
    SubsetSettings,
    TrainSettings,
)

__all__ = ["DEFAULT_CONFIG", "SD_DEFAULT", "AugmentSettings", "BaselineSettings", "DscSettings", "InvertSettings",
           "ModelSettings", "PretrainSettings", "ProbeSettings", "ReportSettings", "ResolvedSettings", "Section",
           "SubsetSettings", "TrainSettings", "did_you_mean", "resolve_settings"]
