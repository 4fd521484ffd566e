"""Configuration: defaults, environment overrides, production refusals."""

from __future__ import annotations

import pytest

from app import create_app
from config import ConfigError, load_settings, validate
from config.settings import DEV_PLACEHOLDERS

PRODUCTION_ENV = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql+psycopg://bank@db/cobrand",
    "REDIS_URL": "redis://cache:6379/0",
    "SECRET_KEY": "s" * 48,
    "DATA_ENCRYPTION_KEY": "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=",
    "PII_INDEX_KEY": "aW5kZXhpbmRleGluZGV4aW5kZXhpbmRleGluZGV4aW4=",
    "WECHAT_APP_ID": "wxprod0000000oa01",
    "WECHAT_APP_SECRET": "prod-secret",
    "WECHAT_TOKEN": "prodtoken",
    "WECHAT_AES_KEY": "Z" * 43,
    "WECHAT_ORIGINAL_ID": "gh_prod0000001",
    "MINIAPP_APP_ID": "wxprod0000000mp01",
    "MINIAPP_APP_SECRET": "prod-mp-secret",
    "WECHAT_TXN_TEMPLATE_ID": "prod-template",
    "TXN_FEED_SECRET": "prod-feed-secret",
    "SMS_GATEWAY_URL": "https://sms.bank.internal/send",
    "REGION_IP_RANGES_FILE": "/etc/cobrand/regions.csv",
    "HOME_REGIONS": '["zhejiang"]',
    "PUBLIC_BASE_URL": "https://card.bank.example",
}


def test_defaults_run_with_nothing_set():
    settings = load_settings(environ={})
    assert settings["APP_ENV"] == "development"
    assert settings["REDIS_URL"] == ""
    assert settings["WECHAT_API_BASE"] == "https://api.weixin.qq.com"
    validate(settings)


def test_environment_overrides_are_typed():
    settings = load_settings(environ={
        "CALLBACK_MAX_BYTES": "1024", "JOBS_EAGER": "true", "WECHAT_HTTP_TIMEOUT": "1.5",
        "WECHAT_KEYWORD_REPLIES": '{"hi": "hello"}', "WECHAT_API_BASE": "http://127.0.0.1:9",
    })
    assert settings["CALLBACK_MAX_BYTES"] == 1024
    assert settings["JOBS_EAGER"] is True
    assert settings["WECHAT_HTTP_TIMEOUT"] == 1.5
    assert settings["WECHAT_KEYWORD_REPLIES"] == {"hi": "hello"}
    assert settings["WECHAT_API_BASE"] == "http://127.0.0.1:9"


def test_profile_defaults_and_unknown_profile():
    assert load_settings("test", environ={})["JOBS_EAGER"] is True
    assert load_settings("production", environ={})["AUTO_MIGRATE"] is False
    with pytest.raises(ValueError, match="unknown APP_ENV"):
        load_settings(environ={"APP_ENV": "staging"})


def test_complete_production_settings_pass():
    validate(load_settings(environ=PRODUCTION_ENV))


@pytest.mark.parametrize("key", sorted(set(PRODUCTION_ENV) - {
    "APP_ENV", "REGION_IP_RANGES_FILE", "HOME_REGIONS", "PUBLIC_BASE_URL"}))
def test_production_names_the_missing_setting(key):
    environ = {**PRODUCTION_ENV, key: ""}
    with pytest.raises(ConfigError, match=key):
        validate(load_settings(environ=environ))


def test_production_lists_every_problem_at_once_and_exits_without_a_traceback():
    with pytest.raises(ConfigError) as refused:
        validate(load_settings(environ={"APP_ENV": "production"}))
    problems = refused.value.problems
    for key in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SMS_GATEWAY_URL", "PUBLIC_BASE_URL",
                *DEV_PLACEHOLDERS):
        assert any(key in problem for problem in problems), key
    assert isinstance(refused.value, SystemExit)  # the process ends with the list, no traceback
    assert str(refused.value).count("\n  - ") == len(problems)


@pytest.mark.parametrize("key", sorted(DEV_PLACEHOLDERS))
def test_production_refuses_each_dev_placeholder(key):
    environ = {**PRODUCTION_ENV, key: DEV_PLACEHOLDERS[key]}
    with pytest.raises(ConfigError, match=f"placeholder in {key}"):
        validate(load_settings(environ=environ))


def test_production_refuses_sqlite_and_short_secret():
    with pytest.raises(ConfigError, match="PostgreSQL"):
        validate(load_settings(environ={**PRODUCTION_ENV, "DATABASE_URL": "sqlite:///x.db"}))
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        validate(load_settings(environ={**PRODUCTION_ENV, "SECRET_KEY": "short"}))


def test_production_refuses_the_sample_region_table():
    with pytest.raises(ConfigError, match="sample REGION_IP_RANGES_FILE"):
        validate(load_settings(environ={
            **PRODUCTION_ENV, "REGION_IP_RANGES_FILE": "config/regions_sample.csv"}))
    with pytest.raises(ConfigError, match="local-dev"):
        validate(load_settings(environ={**PRODUCTION_ENV, "HOME_REGIONS": '["local-dev"]'}))


def test_production_requires_an_https_public_base_url():
    for value in ("", "http://card.bank.example"):
        with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
            validate(load_settings(environ={**PRODUCTION_ENV, "PUBLIC_BASE_URL": value}))


def test_production_refuses_console_cookies_without_https_flags_all_at_once():
    environ = {**PRODUCTION_ENV, "SESSION_COOKIE_SECURE": "false",
               "SESSION_COOKIE_HTTPONLY": "false", "SESSION_COOKIE_SAMESITE": "None",
               "PUBLIC_BASE_URL": "http://card.bank.example"}
    with pytest.raises(ConfigError) as refused:
        validate(load_settings(environ=environ))
    problems = "\n".join(refused.value.problems)
    for key in ("SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE",
                "PUBLIC_BASE_URL"):
        assert key in problems, key
    for samesite in ("Lax", "Strict"):
        validate(load_settings(environ={**PRODUCTION_ENV, "SESSION_COOKIE_SAMESITE": samesite}))
    assert load_settings(environ=PRODUCTION_ENV)["SESSION_COOKIE_SECURE"] is True  # the profile's


def test_production_refuses_cheap_staff_password_hashing():
    cheap = '{"time_cost": 1, "memory_cost": 8192, "parallelism": 1}'
    with pytest.raises(ConfigError, match="STAFF_PASSWORD_HASH"):
        validate(load_settings(environ={**PRODUCTION_ENV, "STAFF_PASSWORD_HASH": cheap}))


def test_malformed_aes_key_is_refused_everywhere():
    with pytest.raises(ConfigError, match="WECHAT_AES_KEY"):
        validate(load_settings(environ={"WECHAT_AES_KEY": "too-short"}))


def test_create_app_refuses_production_placeholders(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(ConfigError, match="production requires DATABASE_URL"):
        create_app({"DATABASE_URL": "", "REDIS_URL": ""})


def test_dev_secrets_are_generated_once_per_instance(tmp_path):
    from config.dev_secrets import load_or_create

    first = load_or_create(str(tmp_path))
    assert load_or_create(str(tmp_path)) == first
    assert len(first["SECRET_KEY"]) > 40
    assert (tmp_path / "dev-secrets.json").stat().st_mode & 0o077 == 0


def test_dev_secrets_file_gains_keys_added_later(tmp_path):
    import json

    from config.dev_secrets import load_or_create

    (tmp_path / "dev-secrets.json").write_text(json.dumps({"SECRET_KEY": "kept"}))
    values = load_or_create(str(tmp_path))
    assert values["SECRET_KEY"] == "kept"
    assert values["PII_INDEX_KEY"] and values["DATA_ENCRYPTION_KEY"]
    assert load_or_create(str(tmp_path)) == values
