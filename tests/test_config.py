"""Settings are read once from the environment; bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.config import Settings
from receiver.errors import ConfigError


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.database_url.startswith("sqlite:///")
    assert (s.host, s.port, s.max_body) == ("127.0.0.1", 8080, 1024 * 1024)
    assert s.api_base == "https://api.mypurecloud.com"
    assert s.login_base == "https://login.mypurecloud.com"


def test_region_selects_hosts() -> None:
    s = Settings.from_env({"GENESYSCLOUD_REGION": "eu-central-1"})
    assert s.api_base == "https://api.mypurecloud.de"
    assert s.login_base == "https://login.mypurecloud.de"


def test_api_url_override_derives_login_like_the_sdks() -> None:
    s = Settings.from_env({"GENESYSCLOUD_API_URL": "https://api.example.test/"})
    assert s.api_base == "https://api.example.test"
    assert s.login_base == "https://login.example.test"
    s = Settings.from_env({"GENESYSCLOUD_API_URL": "http://127.0.0.1:8081", "GENESYSCLOUD_LOGIN_URL": "http://x:1"})
    assert s.login_base == "http://x:1"


def test_unknown_region_is_refused() -> None:
    with pytest.raises(ConfigError, match="GENESYSCLOUD_REGION"):
        Settings.from_env({"GENESYSCLOUD_REGION": "mars-1"})


def test_secrets_are_comma_separated_for_rotation_and_hidden_from_repr() -> None:
    s = Settings.from_env({"RECEIVER_SECRET_HCP_TERRAFORM": "new-one, old-one",
                           "GENESYSCLOUD_OAUTHCLIENT_SECRET": "client-secret-value"})
    assert s.secrets_for("hcp-terraform") == ("new-one", "old-one")
    assert s.secrets_for("github") == ()
    assert "new-one" not in repr(s) and "client-secret-value" not in repr(s)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="RECEIVER_SECRET_GITHUB"):
        Settings.from_env({"RECEIVER_SECRET_GITHUB": " , "})


def test_file_variant_reads_mounted_secrets(tmp_path: Path) -> None:
    f = tmp_path / "secret"
    f.write_text("from-a-file\n")
    s = Settings.from_env({"RECEIVER_SECRET_GITLAB_FILE": str(f)})
    assert s.secrets_for("gitlab") == ("from-a-file",)
    with pytest.raises(ConfigError, match="RECEIVER_SECRET_GITLAB_FILE"):
        Settings.from_env({"RECEIVER_SECRET_GITLAB_FILE": str(tmp_path / "nope")})


def test_allow_unsigned_must_name_known_sources() -> None:
    assert Settings.from_env({"RECEIVER_ALLOW_UNSIGNED": "github,standard"}).allow_unsigned == {"github", "standard"}
    with pytest.raises(ConfigError, match="jenkins"):
        Settings.from_env({"RECEIVER_ALLOW_UNSIGNED": "jenkins"})


@pytest.mark.parametrize(("name", "value"), [("RECEIVER_PORT", "eighty"), ("RECEIVER_MAX_BODY", "-1"),
                                             ("RECEIVER_DRY_RUN", "maybe"), ("RECEIVER_LEASE_SECONDS", "x")])
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_dry_run_flag() -> None:
    assert Settings.from_env({"RECEIVER_DRY_RUN": "1"}).dry_run is True
    assert Settings.from_env({"RECEIVER_DRY_RUN": "false"}).dry_run is False
