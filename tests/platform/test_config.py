"""Configuration: defaults, environment, tutti.toml, and one clear line when something is wrong."""

import subprocess
import sys

import pytest

from tutti.platform.config import ConfigError, Settings, get_settings, reset_settings


@pytest.fixture(autouse=True)
def _fresh_settings():
    reset_settings()
    yield
    reset_settings()


def test_no_configuration_means_sqlite_in_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("TUTTI_QUEUE_URL", raising=False)
    monkeypatch.delenv("TUTTI_SECRET_KEY", raising=False)
    monkeypatch.setenv("TUTTI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TUTTI_CONFIG", str(tmp_path / "absent.toml"))
    settings = get_settings()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/tutti.db"
    assert settings.embedded_queue
    secret = settings.resolved_secret_key()
    assert len(secret) > 40 and settings.resolved_secret_key() == secret  # generated once, then kept


def test_toml_file_and_environment(tmp_path, monkeypatch):
    toml = tmp_path / "tutti.toml"
    toml.write_text('database_url = "postgres://u@db/tutti"\nport = 9000\nqueue_url = "redis://127.0.0.1:6379/0"\n')
    monkeypatch.setenv("TUTTI_CONFIG", str(toml))
    monkeypatch.setenv("TUTTI_PORT", "9100")  # the environment wins over the file
    settings = get_settings()
    assert settings.database_url == "postgresql+psycopg://u@db/tutti"
    assert settings.port == 9100 and not settings.embedded_queue


@pytest.mark.parametrize(
    "name, value, named",
    [
        ("TUTTI_DATABASE_URL", "mysql://x", "TUTTI_DATABASE_URL"),
        ("TUTTI_PORT", "eighty", "TUTTI_PORT"),
        ("TUTTI_QUEUE_URL", "amqp://x", "TUTTI_QUEUE_URL"),
        ("TUTTI_LOG_LEVEL", "LOUD", "TUTTI_LOG_LEVEL"),
    ],
)
def test_wrong_configuration_is_one_line_naming_the_setting(monkeypatch, name, value, named):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=named):
        get_settings()


def test_cli_reports_wrong_configuration_in_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TUTTI_DATA_DIR": str(tmp_path), "TUTTI_PORT": "eighty", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "tutti.cli", "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("tutti: configuration error: TUTTI_PORT")


def test_unknown_setting_in_toml_is_named(tmp_path, monkeypatch):
    toml = tmp_path / "tutti.toml"
    toml.write_text('databse_url = "sqlite:///x.db"\n')
    monkeypatch.setenv("TUTTI_CONFIG", str(toml))
    with pytest.raises(ConfigError, match="databse_url"):
        get_settings()


def test_settings_object_is_plain(tmp_path):
    settings = Settings(data_dir=tmp_path, base_url="https://shop.example")
    assert settings.secure_cookies
