"""Settings: a TOML file, then the environment, validated by pydantic-settings.

Where a value comes from, highest priority first:

1. ``SYNCD_<SECTION>__<KEY>`` environment variables (``SYNCD_GATEWAY__PORT=9000``);
2. the three names the studio already uses: ``SUPABASE_URL``, ``SUPABASE_SERVICE_KEY`` and
   ``SUPABASE_JWT_SECRET``;
3. the TOML file: ``--config PATH``, else ``config/syncd.toml`` under the working directory, else
   ``/etc/syncd/syncd.toml``, else none;
4. the defaults below (``config/syncd.toml`` lists them all).

Unknown keys are errors, wherever they come from. Secrets are ``SecretStr``: they print as stars.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import socket
import tomllib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jwt
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from syncd.errors import ConfigError
from syncd.wire import MUTATION_BURST, MUTATION_RATE

ENV_PREFIX = "SYNCD_"
DEFAULT_CONFIG_PATHS = (Path("config/syncd.toml"), Path("/etc/syncd/syncd.toml"))
SEED_ENV = {
    "SUPABASE_URL": "url",
    "SUPABASE_SERVICE_KEY": "service_key",
    "SUPABASE_JWT_SECRET": "jwt_secret",
}
"""Environment names of the studio's seed, and the ``[supabase]`` key each one sets."""

LIBRARY_ENV = frozenset({"SYNCD_URL", "SYNCD_SERVICE_KEY"})
"""Variables of ``syncd.studio`` (where the daemon is, its service key), not settings of the daemon."""

Mode = Literal["supabase", "local"]
"""Which backend the daemon runs on."""


def _url(schemes: tuple[str, ...]) -> Any:
    """An annotation for a URL string whose scheme is one of ``schemes`` and that names a host."""

    def check(value: str) -> str:
        return checked_url(value, schemes).rstrip("/")

    return Annotated[str, AfterValidator(check)]


def checked_url(value: str, schemes: tuple[str, ...]) -> str:
    """``value``, if its scheme is one of ``schemes``, it names a host, and its port is a port."""
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"expected a URL like {schemes[0]}://host[:port], got {value!r}")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {value!r}") from exc
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _blanks_are_unset(cls, data: Any) -> Any:
        # An empty string in the TOML file or an empty env var means "not set".
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data


PositiveSeconds = Annotated[float, Field(gt=0)]


class DaemonSettings(_Section):
    """Where the daemon keeps its files and how it stops.

    Args:
        state_dir: folder of the outbox and of the embedded store (``$STATE_DIRECTORY`` under systemd).
        shutdown_timeout: seconds that a shutdown may spend writing pending edits.
        project_idle_timeout: seconds a project stays open after its last editor leaves.
        commit_window: seconds an outbox commit (one fsync) may wait after the start of the last one
            while several editors are writing, to take their edits with it; their acks come up to this
            much later. 0: every commit starts as soon as the last one ends.
        removal_delay: seconds the outbox may keep saved edits, so that the removals of saves that
            come together share one commit. 0: each save's removal is committed on its own.
        upload_reserve: bytes an upload must leave free on the state directory's file system, for
            the edits' journal and the embedded store; 0: none.
        edit_reserve: below this many free bytes on the state directory's file system, editors'
            edits wait unanswered until there is room, and services' are refused (a journal that
            cannot be written stops the daemon); 0: never.
    """

    state_dir: Path = Path(".syncd")
    shutdown_timeout: PositiveSeconds = 10.0
    project_idle_timeout: PositiveSeconds = 30.0
    commit_window: float = Field(default=0.005, ge=0, le=0.1)
    removal_delay: float = Field(default=1.0, ge=0, le=60)
    upload_reserve: int = Field(default=256 * 1024 * 1024, ge=0)
    edit_reserve: int = Field(default=16 * 1024 * 1024, ge=0)


class GatewaySettings(_Section):
    """The daemon's port (editors' WebSocket, HTTP API) and its limits.

    Args:
        public_url: how clients reach this port, for the URLs of stored files in local mode
            (``https://studio.example.com``); unset: ``http://HOST:PORT``.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    max_frame_bytes: int = Field(default=1024 * 1024, ge=1024)
    send_queue_frames: int = Field(default=1000, ge=1)
    send_queue_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    mutation_rate: float = Field(default=MUTATION_RATE, gt=0)
    mutation_burst: int = Field(default=MUTATION_BURST, ge=1)
    hello_timeout: PositiveSeconds = 10.0
    # Seconds a connection may go without a request (none yet, or half of one, or none since the last)
    # before it is closed; an editor's WebSocket is a request in progress and is not affected.
    idle_timeout: PositiveSeconds = 75.0
    # The frame's own object is level 1; the JSON decoder recurses per level, hence the ceiling.
    max_json_depth: int = Field(default=32, ge=4, le=256)
    public_url: _url(("https", "http")) | None = None  # type: ignore[valid-type]
    # A slow editor's snapshots: past this many bytes within resend_window it is closed with 1008.
    resend_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    resend_window: PositiveSeconds = 60.0

    @property
    def listens_everywhere(self) -> bool:
        """Whether ``host`` is every address (``0.0.0.0``, ``::``), which no client can dial."""
        ip = _ip(self.host)
        return ip is not None and ip.is_unspecified

    def dial_url(self, port: int) -> str:
        """``http://host:port`` as a client on this machine dials it.

        An IPv6 address goes in brackets (``http://::1:8765`` is no URL), and every address stands
        for the loopback one of its family, which is among them.
        """
        ip = _ip(self.host)
        if ip is None:
            return f"http://{self.host}:{port}"
        if ip.is_unspecified:
            ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
        return f"http://[{ip}]:{port}" if ip.version == 6 else f"http://{ip}:{port}"

    def files_url(self, port: int) -> str:
        """Where stored files are fetched from, for the URLs a local-mode upload is given."""
        return (self.public_url or self.dial_url(port)).rstrip("/")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address; None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class AuthSettings(_Section):
    """How editors' tokens are checked.

    Args:
        jwks_url: a JWKS endpoint for RS256/ES256 tokens; unset, the Supabase project's own
            (:func:`syncd.auth.editor_jwks_url`). HS256 tokens use ``supabase.jwt_secret``.
        allow_anonymous: whether editors without a token may open projects whose ``user_id`` is NULL;
            unset means on in local mode and off in Supabase mode.
    """

    jwks_url: _url(("https", "http")) | None = None  # type: ignore[valid-type]
    allow_anonymous: bool | None = None
    audience: str | None = "authenticated"


class DebounceSettings(_Section):
    """Write pending edits ``quiet`` s after the last edit, at most ``max_wait`` s after the first."""

    quiet: PositiveSeconds = 1.5
    max_wait: PositiveSeconds = 5.0

    @model_validator(mode="after")
    def _cap_not_below_quiet(self) -> DebounceSettings:
        if self.max_wait < self.quiet:
            raise ValueError("max_wait must not be shorter than quiet")
        return self


class EngineSettings(_Section):
    """Live state kept per project."""

    history_size: int = Field(default=10_000, ge=0)
    history_bytes: int = Field(default=4 * 1024 * 1024, ge=0)
    presence_interval: float = Field(default=0.5, ge=0)
    presence_limit: int = Field(default=100, ge=1)


class WriterSettings(_Section):
    """Retries of failed writes: exponential backoff with jitter between the two delays (seconds)."""

    retry_initial_delay: PositiveSeconds = 0.5
    retry_max_delay: PositiveSeconds = 30.0
    request_timeout: PositiveSeconds = 10.0


def service_key_problem(text: str) -> str | None:
    """Why ``text`` cannot be a service key, or None when it may be one.

    An anon or publishable key would pass a first read, then fail under RLS (and ``syncd_apply`` is
    the service role's only); a typo would fail later with a less clear error. The key itself is
    never part of the answer.
    """
    if text.startswith("sb_secret_"):
        return None  # Supabase's newer secret keys are not JWTs; the start-up probe checks them
    if text.startswith("sb_publishable_"):
        return (
            "SUPABASE_SERVICE_KEY is a publishable key; syncd needs a secret key (sb_secret_…) "
            "or the legacy service_role key"
        )
    try:
        claims = jwt.decode(text, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "SUPABASE_SERVICE_KEY is neither a JWT nor a secret key (sb_secret_…)"
    if claims.get("role") != "service_role":
        return f"SUPABASE_SERVICE_KEY has role {claims.get('role')!r}, not 'service_role'"
    return None


def _service_key(key: SecretStr | None) -> SecretStr | None:
    if key is not None and (problem := service_key_problem(key.get_secret_value())) is not None:
        raise ValueError(problem)
    return key


class SupabaseSettings(_Section):
    """The Supabase project; with ``url`` and ``service_key`` set, syncd runs in Supabase mode."""

    url: _url(("https", "http")) | None = None  # type: ignore[valid-type]
    service_key: Annotated[SecretStr | None, AfterValidator(_service_key)] = None
    jwt_secret: SecretStr | None = None
    resync_interval: PositiveSeconds = 30.0

    @model_validator(mode="after")
    def _url_and_key_together(self) -> SupabaseSettings:
        if (self.url is None) != (self.service_key is None):
            missing = "url (SUPABASE_URL)"
            if self.service_key is None:
                missing = "service_key (SUPABASE_SERVICE_KEY)"
            raise ValueError(f"{missing} is required when the other of url/service_key is set")
        return self


class MqttSettings(_Section):
    """The MQTT bridge; off while ``url`` is unset."""

    url: _url(("mqtt", "mqtts")) | None = None  # type: ignore[valid-type]
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    topic_prefix: str = "omegaframe/v1"
    qos: Literal[0, 1, 2] = 1
    backlog: int = Field(default=10_000, ge=1)
    client_id: str | None = None
    max_event_bytes: int = Field(default=64 * 1024, ge=1024)

    @model_validator(mode="after")
    def _no_credentials_in_url(self) -> MqttSettings:
        # In the URL they would be printed wherever the URL is, and be no secret to rotate on its own.
        parts = urlsplit(self.url or "")
        if parts.username is not None or parts.password is not None:
            raise ValueError("url must not contain credentials: set mqtt.username and SYNCD_MQTT__PASSWORD")
        return self


def _list_or_commas(value: Any) -> Any:
    """A list from an environment variable: JSON (``["a","b"]``) or comma-separated (``a,b``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError('not a JSON list; write a,b or ["a","b"]') from None
    return [part.strip() for part in text.split(",") if part.strip()]


def _nats_urls(value: tuple[str, ...]) -> tuple[str, ...]:
    for url in value:
        checked_url(url, ("nats", "tls"))
    if not value:
        raise ValueError("name at least one NATS server")
    return value


_NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
"""A name usable as a JetStream stream or bucket name and as one token of a NATS subject."""


class ClusterSettings(_Section):
    """Cluster mode on NATS JetStream (docs/scaling.md); off by default.

    Args:
        enabled: run as one of several instances sharing projects through NATS.
        nats_urls: the NATS servers to connect to (any of them; the client fails over).
        instance_id: this instance's name in leases and subjects; unset: ``<hostname>-<pid>-<random>``.
        lease_ttl: seconds a project's owner may go without renewing before another may take over.
        renew_interval: seconds between renewals of each held lease (well under ``lease_ttl``).
        lease_bucket: the JetStream key-value bucket of ownership leases.
        journal_stream: the JetStream stream of acknowledged, not yet saved mutations.
        subject_prefix: the first token of every subject syncd uses (``<prefix>.journal.<project>``).
        replicas: how many NATS nodes hold the lease bucket and the journal (3 survives one lost node).
    """

    enabled: bool = False
    nats_urls: Annotated[
        tuple[str, ...], NoDecode, BeforeValidator(_list_or_commas), AfterValidator(_nats_urls)
    ] = ("nats://127.0.0.1:4222",)
    instance_id: Annotated[str, Field(pattern=_NAME_PATTERN, max_length=64)] | None = None
    lease_ttl: PositiveSeconds = 5.0
    renew_interval: PositiveSeconds = 1.0
    lease_bucket: Annotated[str, Field(pattern=_NAME_PATTERN)] = "syncd_leases"
    journal_stream: Annotated[str, Field(pattern=_NAME_PATTERN)] = "SYNCD_JOURNAL"
    subject_prefix: Annotated[str, Field(pattern=_NAME_PATTERN)] = "syncd"
    replicas: int = Field(default=3, ge=1, le=5)

    @model_validator(mode="after")
    def _renew_well_within_ttl(self) -> ClusterSettings:
        if self.renew_interval * 2 > self.lease_ttl:
            raise ValueError("renew_interval must be at most half of lease_ttl")
        return self

    def resolved_instance_id(self) -> str:
        """``instance_id``, or a name made of the host name, the process id and a random part."""
        if self.instance_id is not None:
            return self.instance_id
        host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:32] or "host"
        return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class LogSettings(_Section):
    """Log lines on stderr: plain (for journald) or JSON."""

    format: Literal["plain", "json"] = "plain"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


_toml_path: ContextVar[Path | None] = ContextVar("syncd_toml_path", default=None)


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file chosen by :func:`load_settings`."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        path = _toml_path.get()
        if path is None:
            return {}
        try:
            with path.open("rb") as f:
                return tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc


class _SeedEnvSource(PydanticBaseSettingsSource):
    """Reads ``SUPABASE_URL``, ``SUPABASE_SERVICE_KEY`` and ``SUPABASE_JWT_SECRET``."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError

    def __call__(self) -> dict[str, Any]:
        found = {key: os.environ[name] for name, key in SEED_ENV.items() if os.environ.get(name)}
        return {"supabase": found} if found else {}


class SyncdSettings(BaseSettings):
    """Every setting of the daemon, one section per part."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    daemon: DaemonSettings = DaemonSettings()
    gateway: GatewaySettings = GatewaySettings()
    auth: AuthSettings = AuthSettings()
    debounce: DebounceSettings = DebounceSettings()
    engine: EngineSettings = EngineSettings()
    writer: WriterSettings = WriterSettings()
    supabase: SupabaseSettings = SupabaseSettings()
    mqtt: MqttSettings = MqttSettings()
    log: LogSettings = LogSettings()
    cluster: ClusterSettings = ClusterSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SeedEnvSource(settings_cls), _TomlSource(settings_cls))

    @model_validator(mode="after")
    def _cluster_shares_a_database(self) -> SyncdSettings:
        # Each instance would save to its own embedded store, and an instance taking a project over
        # would show its own stale copy: edits saved elsewhere would be out of sight.
        if self.cluster.enabled and self.mode == "local":
            raise ValueError(
                "cluster.enabled needs Supabase mode (SUPABASE_URL and SUPABASE_SERVICE_KEY): the "
                "instances must share one database, and the embedded store belongs to one instance"
            )
        return self

    @model_validator(mode="after")
    def _files_have_an_address(self) -> SyncdSettings:
        # A local-mode upload's URL is stored in the database (a clip's file_url) and opened by other
        # machines' browsers: "every address" names none of them, so it must be said which.
        g = self.gateway
        if self.mode == "local" and g.public_url is None and g.listens_everywhere:
            raise ValueError(
                f"gateway.host {g.host} listens on every address, and the URLs of files "
                "stored in local mode need the one clients reach this port at: set gateway.public_url "
                f"(for example http://{socket.gethostname()}:{g.port or 8765}), or listen on one address"
            )
        return self

    @property
    def mode(self) -> Mode:
        """``supabase`` when a Supabase project is configured, else ``local``."""
        return "supabase" if self.supabase.url is not None else "local"

    @property
    def allow_anonymous(self) -> bool:
        """Whether token-less editors may open anonymous projects."""
        if self.auth.allow_anonymous is not None:
            return self.auth.allow_anonymous
        return self.mode == "local"


def find_config_file(explicit: Path | None) -> Path | None:
    """Return the TOML file to read: ``explicit`` (which must exist), else the first default that exists."""
    if explicit is not None:
        if explicit.is_dir():
            raise ConfigError(f"{explicit}: a directory, not a config file")
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: no such config file")
        return explicit
    return next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)


def load_settings(config: Path | None = None, **overrides: Any) -> SyncdSettings:
    """Read and validate the settings.

    Args:
        config: the ``--config`` path, or None to look in the default places.
        **overrides: sections to override, as from command-line options (``daemon={"state_dir": ...}``).

    Raises:
        ConfigError: a file that cannot be read, or a key that is unknown or wrong; the message names it.
    """
    path = find_config_file(config)
    _check_env_names(os.environ)
    token = _toml_path.set(path)
    try:
        return SyncdSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, overrides)) from None
    finally:
        _toml_path.reset(token)


def _check_env_names(environ: Mapping[str, str]) -> None:
    """Refuse ``SYNCD_*`` variables that name no setting: a typo must not be ignored silently."""
    sections = SyncdSettings.model_fields
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX) or name.upper() in LIBRARY_ENV:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in sections:
            known = ", ".join(sections)
            raise ConfigError(f"environment variable {name}: no section {section!r} (known: {known})")
        model = sections[section].annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        if key and key not in model.model_fields:
            raise ConfigError(f"environment variable {name}: unknown key {section}.{key}")


def _describe(exc: ValidationError, path: Path | None, overrides: Mapping[str, Any]) -> str:
    """One line per problem, each naming the key as ``section.key``; never the value of a secret.

    A key given on the command line is marked so: that value beat the file's and the environment's.
    """
    sources = [str(path)] if path else []
    sources.append("the environment")
    if overrides:
        sources.append("the command line")
    where = sources[0] if len(sources) == 1 else f"{', '.join(sources[:-1])} or {sources[-1]}"
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(part) for part in err["loc"]) or "settings"
        section, _, name = key.partition(".")
        if name in overrides.get(section, {}):
            key += " (command line)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{key}: {message}")
    return f"invalid configuration (in {where}):\n  " + "\n  ".join(lines)


def describe_settings(settings: SyncdSettings, path: Path | None = None) -> Iterator[str]:
    """Yield ``section.key = value`` lines of the effective settings, secrets masked.

    Args:
        settings: the settings.
        path: the config file they were read from (:func:`find_config_file`), None for none.
    """
    from syncd.auth import editor_jwks_url

    yield f"# config file: {path if path is not None else '(none: defaults and the environment)'}"
    yield f"# mode: {settings.mode}"
    # Unset keys whose value in effect follows from others: shown, so that no one has to work it out.
    derived = {"auth.jwks_url": editor_jwks_url(settings), "auth.allow_anonymous": settings.allow_anonymous}
    for section in SyncdSettings.model_fields:
        values = getattr(settings, section)
        for key in type(values).model_fields:
            value = getattr(values, key)
            line = f"{section}.{key} = {_show(value)}"
            if value is None and derived.get(f"{section}.{key}") is not None:
                line += f"  # in effect: {_show(derived[f'{section}.{key}'])}"
            yield line


def url_password(url: str | None) -> str | None:
    """The password in a URL's ``user:password@`` part, if any: a secret like the named ones."""
    try:
        return urlsplit(url).password if url and "://" in url else None
    except ValueError:  # not a URL after all (an unclosed "[" in its host part)
        return None


def _show(value: Any) -> str:
    if isinstance(value, SecretStr):
        return '"**********"'
    if isinstance(value, str) and (password := url_password(value)):
        value = value.replace(f":{password}@", ":**********@", 1)
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return f'"{value}"'
