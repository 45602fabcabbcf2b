"""Settings of the production stores: pool sizes, timeouts, URLs."""

from __future__ import annotations

import pytest

from config.settings import SettingsError, load_settings


def test_store_settings_from_the_environment() -> None:
    s = load_settings({"ESS_DATABASE_URL": "postgresql://db/ess", "ESS_REDIS_URL":
                       "redis://cache:6379/1", "ESS_DATABASE_POOL_MIN": "1",
                       "ESS_DATABASE_POOL_MAX": "30", "ESS_REDIS_POOL_MAX": "80",
                       "ESS_STORE_TIMEOUT": "0.5", "ESS_LOCK_TTL": "10"}, file=None)
    assert (s.database_pool_min, s.database_pool_max, s.redis_pool_max) == (1, 30, 80)
    assert (s.store_timeout, s.lock_ttl) == (0.5, 10.0)


@pytest.mark.parametrize(("env", "message"), [
    ({"ESS_DATABASE_POOL_MAX": "0"}, "ESS_DATABASE_POOL_MAX='0' is not valid: expected a "
                                     "number of connections"),
    ({"ESS_REDIS_URL": "http://cache"}, "ESS_REDIS_URL='http://cache' is not valid: "
                                        "expected redis://"),
    ({"ESS_STORE_TIMEOUT": "-1"}, "ESS_STORE_TIMEOUT='-1' is not valid: expected seconds"),
    ({"ESS_DATABASE_POOL_MIN": "5", "ESS_DATABASE_POOL_MAX": "2"},
     "ESS_DATABASE_POOL_MIN is larger than ESS_DATABASE_POOL_MAX"),
])
def test_bad_store_settings_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load_settings(env, file=None)
