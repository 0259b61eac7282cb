"""Prefect flows and the `reenact` CLI."""

import os

# Offline platform: nothing phones home (ARCHITECTURE.md, rules). Set before Prefect reads settings.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
# A flow run without a server starts a temporary one; on 2 busy cores it took over Prefect's 20 s default
# and the run failed before it began.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
