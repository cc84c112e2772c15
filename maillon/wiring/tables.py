"""Every component's tables: importing this module completes ``Base.metadata`` (used by the
migrations environment and by key rotation, which walks the sealed columns it holds)."""

from __future__ import annotations

import appservice.models  # noqa: F401
import coordination_bot.models  # noqa: F401
import dossier_api.domain.mail.models
import dossier_api.domain.models  # noqa: F401
from maillon.shared.store import Base

METADATA = Base.metadata
