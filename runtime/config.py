"""Settings of one `stead serve` process."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.retry import RetryPolicy


@dataclass(frozen=True)
class ServerConfig:
    target: str  # "module:attribute" naming the pysdk App
    data_dir: str = ".stead-data"
    host: str = "127.0.0.1"
    port: int = 8080
    admin_host: str = "127.0.0.1"  # the admin API listens on loopback unless told otherwise
    admin_port: int = 9070  # Restate's admin port; 0 disables the admin API
    durability: str = "sync"  # "sync": fsync per group commit; "wal": WAL written, not synced
    always_replay: bool = False  # drop every invocation after each durable point; resume by replay
    max_body_bytes: int = 32 * 1024 * 1024
    suspend_after_s: float = 5.0  # an invocation waiting longer than this is suspended (coroutine dropped)
    retention_s: float = 24 * 3600.0  # how long completed invocations are kept
    shutdown_timeout_s: float = 10.0
    log_level: str = "warning"
    signing_key: str = ""  # PEM file of the ed25519 key that signs requests to deployments
    max_deployment_message_bytes: int = 64 * 1024 * 1024  # larger messages from a deployment fail the attempt
    state_cache_keys: int = 10_000  # objects' and workflows' state kept in memory: at most this many keys
    state_cache_bytes: int = 32 * 1024 * 1024  # ... and about this many bytes of values
    log_format: str = "text"  # "text" or "json" (one JSON object per line)
    admin_token: str = ""  # when set, mutating admin requests need "Authorization: Bearer <token>"
    otlp_endpoint: str = ""  # OTLP/HTTP endpoint for traces (e.g. http://127.0.0.1:4318); "" = off
    # The invoker's retry policy for handlers that set none (Restate's default-retry-policy);
    # the test harness's disable_retries makes it one attempt, then fail.
    default_retry_policy: RetryPolicy = RetryPolicy()
