"""The load test's one settings object: defaults that may come from the environment.

Only what is awkward on a command line lives here (the admin token should not sit in shell
history); every field can be overridden by a CLI flag. Env prefix `RECSCHED_LOADTEST_`.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class LoadtestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECSCHED_LOADTEST_", extra="ignore")

    url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL of the OIP v2 endpoint (port 8000)."
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for PUT /admin/config (sweep)."
    )
