"""Where NeuroInsight finds its data, models and history.

Each setting resolves as: explicit argument (CLI flag) -> environment variable
-> default. Only this module reads ``os.environ``; library functions receive
explicit paths.

=================  ======================  ==========================================
setting            environment variable    default
=================  ======================  ==========================================
``home``           ``NEUROINSIGHT_HOME``   ``~/.neuroinsight`` (history, caches)
``data_dir``       ``NEUROINSIGHT_DATA``   ``../shared/data/brats18`` beside the repo
``models_dir``     ``NEUROINSIGHT_MODELS`` ``models/`` in the repo
=================  ======================  ==========================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "brats18"
DEFAULT_MODELS_DIR = REPO_ROOT / "models"
DEFAULT_HOME = Path.home() / ".neuroinsight"
#: Inference dtype policy (app, CLI, scoring): as accurate as float32 on the shipped models and
#: faster on every CPU measured, with or without native bfloat16 (model card, bench/RESULTS.md).
DEFAULT_PRECISION = "mixed_bfloat16"


@dataclass(frozen=True)
class Settings:
    """Resolved paths used by the app and the CLI."""

    home: Path
    data_dir: Path
    models_dir: Path

    @property
    def db_path(self) -> Path:
        """The SQLite history file."""
        return self.home / "history.sqlite"

    @property
    def cache_dir(self) -> Path:
        """Preprocessed-array cache used by training and batch evaluation."""
        return self.home / "cache"


def _pick(explicit: str | Path | None, env_name: str, default: Path) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    value = os.environ.get(env_name)
    return Path(value).expanduser() if value else default


def resolve_settings(
    *,
    home: str | Path | None = None,
    data_dir: str | Path | None = None,
    models_dir: str | Path | None = None,
) -> Settings:
    """Resolve settings from arguments, then environment variables, then defaults."""
    return Settings(
        home=_pick(home, "NEUROINSIGHT_HOME", DEFAULT_HOME),
        data_dir=_pick(data_dir, "NEUROINSIGHT_DATA", DEFAULT_DATA_DIR),
        models_dir=_pick(models_dir, "NEUROINSIGHT_MODELS", DEFAULT_MODELS_DIR),
    )
