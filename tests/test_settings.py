"""Settings: defaults, environment over file, and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import SettingsError, load_settings


def test_defaults_need_nothing(tmp_path: Path) -> None:
    s = load_settings({}, file=None) if not Path("ess.toml").exists() else None
    assert s is not None
    assert (s.host, s.port, s.session_idle, s.default_lang) == ("127.0.0.1", 8080, 1800, "th")
    assert s.sqlite_path == Path("var/ess.db")


def test_environment_overrides_file(tmp_path: Path) -> None:
    conf = tmp_path / "ess.toml"
    conf.write_text('port = 9000\nhost = "0.0.0.0"\nsession_idle = "10m"\n')
    s = load_settings({"ESS_CONFIG": str(conf), "ESS_PORT": "9100",
                       "ESS_LINE_CHANNEL_SECRET": "x"})
    assert (s.port, s.host, s.session_idle) == (9100, "0.0.0.0", 600)
    assert s.extra == {"ESS_LINE_CHANNEL_SECRET": "x"}


@pytest.mark.parametrize(("env", "message"), [
    ({"ESS_PORT": "eighty"}, "ESS_PORT='eighty' is not valid: expected a port number"),
    ({"ESS_PORT": "70000"}, "ESS_PORT='70000' is not valid"),
    ({"ESS_SESSION_IDLE": "forever"}, "ESS_SESSION_IDLE='forever' is not valid: expected a "
                                      "duration"),
    ({"ESS_DEMO_MODE": "perhaps"}, "ESS_DEMO_MODE='perhaps' is not valid: expected true or"),
    ({"ESS_DATABASE_URL": "mysql://x"}, "ESS_DATABASE_URL='mysql://x' is not valid"),
    ({"ESS_LOG_FORMAT": "xml"}, "expected json or console"),
    ({"ESS_CONFIG": "/nonexistent/ess.toml"}, "ESS_CONFIG: /nonexistent/ess.toml does not exist"),
    ({"ESS_ANALYTICS_PACE": "-1"}, "ESS_ANALYTICS_PACE='-1' is not valid: expected a "
                                   "duration up to 60s"),
    ({"ESS_ANALYTICS_PACE": "2h"}, "ESS_ANALYTICS_PACE='2h' is not valid"),
    ({"ESS_ANALYTICS_FRESH": "soon"}, "ESS_ANALYTICS_FRESH='soon' is not valid: expected a "
                                      "duration up to 10m"),
    ({"ESS_ANALYTICS_FRESH": "1d"}, "ESS_ANALYTICS_FRESH='1d' is not valid"),
])
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=None) as info:
        load_settings(env)
    assert message in str(info.value)


def test_analytics_guards_take_a_duration_or_zero() -> None:
    assert (load_settings({}).analytics_fresh, load_settings({}).analytics_pace) == (30, 2)
    s = load_settings({"ESS_ANALYTICS_FRESH": "1m", "ESS_ANALYTICS_PACE": "0"})
    assert (s.analytics_fresh, s.analytics_pace) == (60, 0)
    for zero in ("0m", "00", "0.0s", " 0 "):
        assert load_settings({"ESS_ANALYTICS_FRESH": zero}).analytics_fresh == 0, zero


def test_bad_file(tmp_path: Path) -> None:
    conf = tmp_path / "ess.toml"
    conf.write_text("port = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings({"ESS_CONFIG": str(conf)})
    conf.write_text("colour = 'blue'\n")
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings({"ESS_CONFIG": str(conf)})
