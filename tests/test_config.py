"""Tests of syncd/config.py: sources, priorities, validation and masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import describe_settings, load_settings
from syncd.errors import ConfigError
from tests.support.env import scrub_environ


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run every test in an empty folder with no syncd or Supabase variables set."""
    scrub_environ(monkeypatch)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_without_any_file() -> None:
    """With no file and no variables, the daemon runs on the local backend with the documented defaults."""
    s = load_settings()
    assert s.mode == "local"
    assert s.gateway.port == 8765
    assert s.debounce.quiet == 1.5
    assert s.debounce.max_wait == 5.0
    assert s.engine.history_size == 10_000
    assert s.allow_anonymous is True


def test_shipped_file_holds_every_key_with_its_default() -> None:
    """config/syncd.toml names every setting, and each value equals the built-in default."""
    import tomllib

    shipped = Path(__file__).parent.parent / "config" / "syncd.toml"
    data = tomllib.loads(shipped.read_text())
    defaults = load_settings()
    from_file = load_settings(shipped)
    assert from_file == defaults
    for section, model in type(defaults).model_fields.items():
        keys = set(type(getattr(defaults, section)).model_fields)
        secrets = {"service_key", "jwt_secret", "password"}
        assert set(data[section]) == keys - secrets, section
        assert model is not None


def test_toml_then_env_then_seed_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """SYNCD_ variables beat the seed's names, which beat the file."""
    cfg = write(
        tmp_path / "a.toml",
        '[gateway]\nport = 9000\n[supabase]\nurl = "http://file.example"\nresync_interval = 5\n',
    )
    monkeypatch.setenv("SUPABASE_SERVICE_KEY", "sb_secret_service")
    s = load_settings(cfg)
    assert s.gateway.port == 9000
    assert s.supabase.url == "http://file.example"
    monkeypatch.setenv("SYNCD_GATEWAY__PORT", "9100")
    monkeypatch.setenv("SUPABASE_URL", "https://seed.example")
    s = load_settings(cfg)
    assert s.gateway.port == 9100
    assert s.supabase.url == "https://seed.example"
    assert s.supabase.resync_interval == 5
    assert s.mode == "supabase"
    assert s.allow_anonymous is False
    monkeypatch.setenv("SYNCD_SUPABASE__URL", "https://env.example")
    assert load_settings(cfg).supabase.url == "https://env.example"


def test_default_file_is_found_in_config_folder(tmp_path: Path) -> None:
    """Without --config, config/syncd.toml under the working directory is read."""
    (tmp_path / "config").mkdir()
    write(tmp_path / "config" / "syncd.toml", "[gateway]\nport = 9200\n")
    assert load_settings().gateway.port == 9200


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[gateway]\nprot = 1\n", "gateway.prot: unknown key"),
        ("[gatway]\nport = 1\n", "gatway: unknown key"),
        ('[gateway]\nport = "many"\n', "gateway.port: Input should be a valid integer"),
        ("[gateway]\nport = 70000\n", "gateway.port: Input should be less than or equal to 65535"),
        ('[supabase]\nurl = "not a url"\n', "supabase.url: Value error, expected a URL"),
        ('[mqtt]\nurl = "http://broker:1883"\n', "mqtt.url: Value error, expected a URL like mqtt://"),
        ('[mqtt]\nurl = "mqtt://broker:port"\n', "mqtt.url: Value error, bad port"),
        ("[debounce]\nquiet = 3\nmax_wait = 2\n", "debounce: Value error, max_wait must not be shorter"),
        ('[log]\nformat = "xml"\n', "log.format: Input should be 'plain' or 'json'"),
    ],
)
def test_bad_file_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    """A wrong file gives a ConfigError whose message names the key and what is wrong."""
    cfg = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg)
    assert key in str(caught.value)


def test_a_bad_command_line_option_is_named_as_one(tmp_path: Path) -> None:
    """A wrong value from an option (``--port``) is marked as coming from the command line, which beats
    the file and the environment; the file's own keys are not."""
    cfg = write(tmp_path / "c.toml", "[debounce]\nquiet = -1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg, gateway={"port": 99999})
    assert str(caught.value).splitlines() == [
        f"invalid configuration (in {cfg}, the environment or the command line):",
        "  gateway.port (command line): Input should be less than or equal to 65535",
        "  debounce.quiet: Input should be greater than 0",
    ]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "0:0:0:0:0:0:0:0"])
def test_local_mode_listening_everywhere_needs_a_public_url(host: str) -> None:
    """A local-mode upload's URL is stored (a clip's ``file_url``) and opened by other machines:
    ``http://0.0.0.0:8765/...`` opens nothing, so the daemon does not start on a guess."""
    with pytest.raises(ConfigError) as caught:
        load_settings(gateway={"host": host})
    assert f"gateway.host {host} listens on every address" in str(caught.value)
    assert "set gateway.public_url" in str(caught.value)
    given = load_settings(gateway={"host": host, "public_url": "http://studio.lan:8765/"})
    assert given.gateway.files_url(8765) == "http://studio.lan:8765"


def test_supabase_mode_may_listen_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files are Supabase Storage's there: no URL is made from the daemon's address."""
    monkeypatch.setenv("SUPABASE_URL", "https://x.supabase.co")
    monkeypatch.setenv("SUPABASE_SERVICE_KEY", "sb_secret_service")
    assert load_settings(gateway={"host": "0.0.0.0"}).gateway.listens_everywhere


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9000"),
        ("localhost", "http://localhost:9000"),
        ("::1", "http://[::1]:9000"),
        ("fe80:0:0:0:0:0:0:1", "http://[fe80::1]:9000"),
        ("0.0.0.0", "http://127.0.0.1:9000"),
        ("::", "http://[::1]:9000"),
    ],
)
def test_the_address_a_client_here_dials(host: str, url: str) -> None:
    """An IPv6 address in brackets (``http://::1:9000`` is no URL); every address as its loopback one."""
    settings = load_settings(gateway={"host": host, "public_url": "https://studio.example.com"})
    assert settings.gateway.dial_url(9000) == url
    assert settings.gateway.files_url(9000) == "https://studio.example.com"


def test_url_without_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """SUPABASE_URL without SUPABASE_SERVICE_KEY is refused rather than silently running locally."""
    monkeypatch.setenv("SUPABASE_URL", "https://x.supabase.co")
    with pytest.raises(ConfigError, match=r"service_key \(SUPABASE_SERVICE_KEY\) is required"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("SYNCD_GATEWAY__PROT", "unknown key gateway.prot"),
        ("SYNCD_NOPE__X", "no section 'nope'"),
    ],
)
def test_unknown_env_names_are_errors(monkeypatch: pytest.MonkeyPatch, name: str, message: str) -> None:
    """A misspelt SYNCD_ variable is an error, not silently ignored."""
    monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_not_toml(tmp_path: Path) -> None:
    """A file that is not TOML is named in the error."""
    cfg = write(tmp_path / "x.toml", "[gateway\n")
    with pytest.raises(ConfigError, match=r"x\.toml: not valid TOML"):
        load_settings(cfg)


def test_missing_explicit_file(tmp_path: Path) -> None:
    """An explicit --config path that does not exist is an error."""
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "missing.toml")


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The effective settings print every secret as stars."""
    monkeypatch.setenv("SUPABASE_URL", "https://x.supabase.co")
    monkeypatch.setenv("SUPABASE_SERVICE_KEY", "sb_secret_very-secret")
    monkeypatch.setenv("SUPABASE_JWT_SECRET", "jwt-very-secret")
    monkeypatch.setenv("SYNCD_MQTT__PASSWORD", "mqtt-very-secret")
    s = load_settings()
    text = "\n".join(describe_settings(s)) + repr(s) + str(s)
    assert "very-secret" not in text
    assert 'supabase.service_key = "**********"' in text
    assert s.supabase.service_key is not None
    assert s.supabase.service_key.get_secret_value() == "sb_secret_very-secret"


def test_wrong_secret_type_does_not_echo_value(tmp_path: Path) -> None:
    """A validation error never repeats the value it refused."""
    cfg = write(tmp_path / "x.toml", '[gateway]\nport = "sk-very-secret"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg)
    assert "very-secret" not in str(caught.value)


def test_cluster_mode_is_off_by_default_with_documented_values() -> None:
    """[cluster] is off unless enabled; its defaults are a 5 s lease renewed every second, three replicas."""
    c = load_settings().cluster
    assert c.enabled is False
    assert (c.lease_ttl, c.renew_interval, c.replicas) == (5.0, 1.0, 3)
    assert c.nats_urls == ("nats://127.0.0.1:4222",)
    assert (c.lease_bucket, c.journal_stream, c.subject_prefix) == ("syncd_leases", "SYNCD_JOURNAL", "syncd")


def test_cluster_mode_on_the_embedded_store_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each instance would save to its own store: one taking a project over would show a stale copy."""
    monkeypatch.setenv("SYNCD_CLUSTER__ENABLED", "true")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "cluster.enabled needs Supabase mode (SUPABASE_URL and SUPABASE_SERVICE_KEY)" in str(caught.value)
    monkeypatch.setenv("SUPABASE_URL", "https://x.supabase.co")
    monkeypatch.setenv("SUPABASE_SERVICE_KEY", "sb_secret_service")
    assert load_settings().cluster.enabled is True


def test_cluster_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Server lists come from the environment as JSON; an explicit instance id is kept as given."""
    monkeypatch.setenv("SUPABASE_URL", "https://x.supabase.co")
    monkeypatch.setenv("SUPABASE_SERVICE_KEY", "sb_secret_service")
    monkeypatch.setenv("SYNCD_CLUSTER__ENABLED", "true")
    monkeypatch.setenv("SYNCD_CLUSTER__NATS_URLS", '["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]')
    monkeypatch.setenv("SYNCD_CLUSTER__INSTANCE_ID", "edge-1")
    c = load_settings().cluster
    assert c.enabled is True
    assert c.nats_urls == ("nats://10.0.0.1:4222", "nats://10.0.0.2:4222")
    assert c.resolved_instance_id() == "edge-1"
    assert 'cluster.nats_urls = ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]' in list(
        describe_settings(load_settings())
    )


@pytest.mark.parametrize(
    ("value", "urls"),
    [
        ("nats://10.0.0.1:4222", ("nats://10.0.0.1:4222",)),
        ("nats://a:4222, tls://b:4222,", ("nats://a:4222", "tls://b:4222")),
        (' ["nats://a:4222"]', ("nats://a:4222",)),
    ],
)
def test_a_server_list_from_the_environment_may_be_comma_separated(
    monkeypatch: pytest.MonkeyPatch, value: str, urls: tuple[str, ...]
) -> None:
    """One URL, or several with commas, work as well as JSON; a broken JSON list is named."""
    monkeypatch.setenv("SYNCD_CLUSTER__NATS_URLS", value)
    assert load_settings().cluster.nats_urls == urls


def test_a_broken_json_server_list_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value that starts like JSON but is not is an error naming the key, not a traceback."""
    monkeypatch.setenv("SYNCD_CLUSTER__NATS_URLS", '["nats://a:4222"')
    with pytest.raises(ConfigError, match=r"cluster\.nats_urls: Value error, not a JSON list"):
        load_settings()


def test_generated_instance_ids_differ_and_fit_a_subject() -> None:
    """Without instance_id each call makes a fresh name usable as one NATS subject token."""
    c = load_settings().cluster
    first, second = c.resolved_instance_id(), c.resolved_instance_id()
    assert first != second
    assert all(ch.isalnum() or ch in "-_" for ch in first)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[cluster]\nnats_urls = ["http://x:4222"]\n',
            "cluster.nats_urls: Value error, expected a URL like nats://",
        ),
        (
            '[cluster]\nnats_urls = ["nats://a:4222", "nats://b:port"]\n',
            "cluster.nats_urls: Value error, bad port in 'nats://b:port'",
        ),
        (
            '[cluster]\nnats_urls = ["nats://a:99999"]\n',
            "cluster.nats_urls: Value error, bad port in 'nats://a:99999'",
        ),
        ("[cluster]\nnats_urls = []\n", "cluster.nats_urls: Value error, name at least one NATS server"),
        ("[cluster]\nlease_ttl = 2.0\nrenew_interval = 1.5\n", "renew_interval must be at most half"),
        ('[cluster]\ninstance_id = "a.b"\n', "cluster.instance_id: String should match pattern"),
        ('[cluster]\nlease_bucket = "x y"\n', "cluster.lease_bucket: String should match pattern"),
        ("[cluster]\nreplicas = 0\n", "cluster.replicas: Input should be greater than or equal to 1"),
    ],
)
def test_bad_cluster_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    """Each wrong [cluster] key is refused with its name."""
    with pytest.raises(ConfigError, match="invalid configuration") as caught:
        load_settings(write(tmp_path / "c.toml", text))
    assert message in str(caught.value)


def test_check_config_shows_what_an_unset_auth_key_means_in_each_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = list(describe_settings(load_settings()))
    assert "auth.allow_anonymous = (unset)  # in effect: true" in local
    assert "auth.jwks_url = (unset)" in local
    monkeypatch.setenv("SUPABASE_URL", "https://x.supabase.co/")
    monkeypatch.setenv("SUPABASE_SERVICE_KEY", "sb_secret_service")
    remote = list(describe_settings(load_settings()))
    assert "auth.allow_anonymous = (unset)  # in effect: false" in remote
    assert (
        'auth.jwks_url = (unset)  # in effect: "https://x.supabase.co/auth/v1/.well-known/jwks.json"'
        in remote
    )
    monkeypatch.setenv("SYNCD_AUTH__JWKS_URL", "https://keys.example/jwks.json")
    assert 'auth.jwks_url = "https://keys.example/jwks.json"' in list(describe_settings(load_settings()))
