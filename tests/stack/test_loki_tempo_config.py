"""Loki and Tempo configs: only keys their pinned versions accept, wired to each other.

Both parse their YAML strictly: an unknown key stops the process at start-up, and
Tempo 3 removed whole sections that most 2.x examples still carry. Neither binary
runs here, so the keys are checked against allowlists written from upstream's own
config reference at the pinned tags: Tempo's generated manifest
(docs/sources/tempo/configuration/manifest.md) and config structs
(cmd/tempo/app/config.go, modules/overrides/config.go) at v3.0.3, and Loki's
reference (docs/sources/shared/configuration.md, pkg/loki/loki.go) at v3.7.6.

A section mapped to None is accepted as a whole; a mapping lists its accepted keys.
Sections this sandbox doesn't use are listed at the top level only. A key missing
from a list fails the test: check it upstream at the pinned tag, then add it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support.compose import ROOT, STACK_COMPOSE, load_project, mounts, ports

LOKI_CONFIG = ROOT / "stack" / "loki" / "config.yaml"
TEMPO_CONFIG = ROOT / "stack" / "tempo" / "config.yaml"

Schema = Mapping[str, "Schema | None"]

# --- Tempo 3.0.3 -------------------------------------------------------------------

TEMPO_SERVER: Schema = dict.fromkeys(
    [
        "http_listen_network",
        "http_listen_address",
        "http_listen_port",
        "grpc_listen_network",
        "grpc_listen_address",
        "grpc_listen_port",
        "graceful_shutdown_timeout",
        "http_server_read_timeout",
        "http_server_write_timeout",
        "grpc_server_max_recv_msg_size",
        "grpc_server_max_send_msg_size",
        "log_format",
        "log_level",
        "http_path_prefix",
    ]
)

TEMPO: Schema = {
    "target": None,
    "auth_enabled": None,
    "multitenancy_enabled": None,
    "shutdown_delay": None,
    "stream_over_http_enabled": None,
    "http_api_prefix": None,
    "enable_go_runtime_metrics": None,
    "span_profiling": None,
    "memory": {"automemlimit_enabled": None, "automemlimit_ratio": None},
    "server": TEMPO_SERVER,
    "internal_server": None,
    "distributor": {
        "ring": None,
        "receivers": {
            "otlp": {"protocols": {"grpc": None, "http": None}},
            "jaeger": None,
            "zipkin": None,
        },
        "override_ring_key": None,
        "forwarders": None,
        "usage": None,
        "kafka_config": None,
        "retry_after_on_resource_exhausted": None,
        "max_attribute_bytes": None,
        "log_received_spans": None,
        "log_discarded_spans": None,
    },
    "live_store_client": None,
    "querier": None,
    "query_frontend": {
        "max_outstanding_per_tenant": None,
        "max_batch_size": None,
        "max_retries": None,
        "search": None,
        "trace_by_id": None,
        "metrics": None,
        "multi_tenant_queries_enabled": None,
        "response_consumers": None,
        "weights": None,
        "mcp_server": None,
        "query_end_cutoff": None,
    },
    "metrics_generator": {
        "ring": None,
        "processor": {"service_graphs": None, "span_metrics": None, "host_info": None},
        "registry": {
            "collection_interval": None,
            "stale_duration": None,
            "external_labels": None,
            "inject_tenant_id_as": None,
            "max_label_name_length": None,
            "max_label_value_length": None,
        },
        "storage": {
            "path": None,
            "wal": None,
            "remote_write_flush_deadline": None,
            "remote_write_add_org_id_header": None,
            "remote_write": None,
        },
        "metrics_ingestion_time_range_slack": None,
        "override_ring_key": None,
        "ring_mode": None,
        "codec": None,
        "limiter_type": None,
        "ingest_concurrency": None,
        "instance_id": None,
        "leave_consumer_group_on_shutdown": None,
    },
    "ingest": None,
    "block_builder": None,
    "storage": {
        "trace": {
            "pool": None,
            "wal": {"path": None, "ingestion_time_range_slack": None},
            "block": None,
            "search": None,
            "blocklist_poll": None,
            "backend": None,
            "local": {"path": None},
            "gcs": None,
            "s3": None,
            "azure": None,
            "cache": None,
            "background_cache": None,
            "memcached": None,
            "redis": None,
        }
    },
    "overrides": {
        "defaults": {
            "ingestion": None,
            "read": None,
            "compaction": None,
            "metrics_generator": {
                "ring_size": None,
                "processors": None,
                "max_active_series": None,
                "max_active_entities": None,
                "collection_interval": None,
                "disable_collection": None,
                "generate_native_histograms": None,
                "trace_id_label_name": None,
                "remote_write_headers": None,
                "forwarder": None,
                "processor": None,
                "ingestion_time_range_slack": None,
                "native_histogram_bucket_factor": None,
                "native_histogram_max_bucket_number": None,
                "native_histogram_min_reset_duration": None,
                "span_name_sanitization": None,
                "max_cardinality_per_label": None,
            },
            "forwarders": None,
            "global": None,
            "storage": None,
            "cost_attribution": None,
        },
        "per_tenant_override_config": None,
        "per_tenant_override_period": None,
        "user_configurable_overrides": None,
    },
    "memberlist": None,
    "usage_report": {"reporting_enabled": None, "backoff": None},
    "cache": None,
    "backend_scheduler": None,
    "backend_scheduler_client": None,
    "backend_worker": None,
    "live_store": None,
}

# Removed by Tempo 3.0 (its CHANGELOG and example/docker-compose/migrate-to-3), with
# what replaced them; any of these stops Tempo 3 at start-up or is ignored.
TEMPO_REMOVED = {
    "ingester": "the live-store and block-builder replace the ingester",
    "ingester_client": "removed with the ingester",
    "compactor": "backend_scheduler and backend_worker compact now",
    "metrics_generator_client": "kept one release for compatibility only; delete it",
    "metrics_generator.traces_storage": "removed with the local-blocks processor",
    "metrics_generator.processor.local_blocks": "the local-blocks processor is gone",
}
TEMPO_PROCESSORS = {"service-graphs", "span-metrics", "host-info"}

# --- Loki 3.7.6 --------------------------------------------------------------------

LOKI: Schema = {
    **dict.fromkeys(
        [
            "target",
            "auth_enabled",
            "ballast_bytes",
            "internal_server",
            "ui",
            "distributor",
            "querier",
            "query_engine",
            "query_scheduler",
            "frontend",
            "query_range",
            "ruler",
            "ruler_storage",
            "ingester_client",
            "pattern_ingester",
            "index_gateway",
            "bloom_build",
            "bloom_gateway",
            "storage_config",
            "chunk_store_config",
            "compactor_grpc_client",
            "frontend_worker",
            "table_manager",
            "memberlist",
            "kafka_config",
            "dataobj",
            "ingest_limits",
            "ingest_limits_frontend",
            "ingest_limits_frontend_client",
            "runtime_config",
            "operational_config",
            "tracing",
            "profiling",
            "tenant_limits_allow_publish",
            "shutdown_delay",
            "metrics_namespace",
        ]
    ),
    "server": dict.fromkeys(
        [
            "http_listen_network",
            "http_listen_address",
            "http_listen_port",
            "grpc_listen_network",
            "grpc_listen_address",
            "grpc_listen_port",
            "graceful_shutdown_timeout",
            "grpc_server_max_recv_msg_size",
            "grpc_server_max_send_msg_size",
            "grpc_server_max_concurrent_streams",
            "log_format",
            "log_level",
            "http_path_prefix",
        ]
    ),
    "common": {
        "path_prefix": None,
        "storage": {"filesystem": {"chunks_directory": None, "rules_directory": None}},
        "persist_tokens": None,
        "replication_factor": None,
        "ring": {"kvstore": {"store": None}},
        "instance_interface_names": None,
        "instance_addr": None,
        "compactor_address": None,
        "compactor_grpc_address": None,
        "scratch_path": None,
    },
    "schema_config": {"configs": None},
    "ingester": {
        "lifecycler": dict.fromkeys(
            [
                "ring",
                "num_tokens",
                "heartbeat_period",
                "heartbeat_timeout",
                "observe_period",
                "join_after",
                "min_ready_duration",
                "interface_names",
                "final_sleep",
                "tokens_file_path",
                "availability_zone",
                "unregister_on_shutdown",
                "readiness_check_ring_health",
                "address",
                "port",
                "id",
            ]
        ),
        **dict.fromkeys(
            [
                "concurrent_flushes",
                "flush_check_period",
                "chunk_idle_period",
                "chunk_retain_period",
                "chunk_block_size",
                "chunk_target_size",
                "chunk_encoding",
                "max_chunk_age",
                "wal",
            ]
        ),
    },
    "limits_config": dict.fromkeys(
        [
            "ingestion_rate_mb",
            "ingestion_burst_size_mb",
            "reject_old_samples",
            "reject_old_samples_max_age",
            "max_query_series",
            "max_query_length",
            "max_entries_limit_per_query",
            "volume_enabled",
            "retention_period",
            "allow_structured_metadata",
            "discover_service_name",
            "discover_log_levels",
        ]
    ),
    "compactor": dict.fromkeys(
        [
            "working_directory",
            "compaction_interval",
            "retention_enabled",
            "retention_delete_delay",
            "delete_request_store",
        ]
    ),
    "analytics": {"reporting_enabled": None, "usage_stats_url": None, "proxy_url": None},
}
LOKI_PERIOD_CONFIG = {"from", "store", "object_store", "schema", "index", "chunks", "row_shards"}


def unknown_keys(config: Any, schema: Schema, path: str = "") -> Iterator[str]:
    """Paths of `config` keys that `schema` doesn't list."""
    if not isinstance(config, dict):
        return
    for key, value in config.items():
        here = f"{path}.{key}" if path else str(key)
        if key not in schema:
            yield here
            continue
        nested = schema[key]
        if nested is not None:
            yield from unknown_keys(value, nested, here)


def all_paths(config: Any, path: str = "") -> Iterator[str]:
    if isinstance(config, dict):
        for key, value in config.items():
            here = f"{path}.{key}" if path else str(key)
            yield here
            yield from all_paths(value, here)


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path}: expected a mapping"
    return document


def test_unknown_keys_are_reported() -> None:
    """The checker itself: a 2.x leftover and a typo are both found."""
    config = {"ingester": {"max_block_duration": "5m"}, "server": {"http_listen_prot": 3200}}
    assert sorted(unknown_keys(config, TEMPO)) == ["ingester", "server.http_listen_prot"]


def test_tempo_config_has_no_key_removed_in_tempo_3() -> None:
    paths = set(all_paths(load(TEMPO_CONFIG)))
    for removed, why in TEMPO_REMOVED.items():
        assert removed not in paths, f"{removed}: {why}"


def test_tempo_config_uses_only_keys_of_tempo_3_0_3() -> None:
    unknown = list(unknown_keys(load(TEMPO_CONFIG), TEMPO))
    assert not unknown, f"keys Tempo 3.0.3 doesn't accept: {unknown}"


def test_tempo_overrides_are_scoped_and_enable_span_metrics() -> None:
    config = load(TEMPO_CONFIG)
    overrides = config["overrides"]
    assert set(overrides) <= {"defaults", "per_tenant_override_config"}, (
        "flat (legacy) overrides are refused by Tempo 3; nest them under overrides.defaults"
    )
    processors = overrides["defaults"]["metrics_generator"]["processors"]
    # The service graph is Alloy's (stack/alloy/config.alloy): one source of its series.
    assert set(processors) == {"span-metrics"}
    assert set(processors) <= TEMPO_PROCESSORS, "local-blocks was removed in Tempo 3"


def test_tempo_receivers_listen_beyond_localhost() -> None:
    """Since Tempo 2.7 the receivers default to localhost: Alloy, another container,
    could not reach them."""
    protocols = load(TEMPO_CONFIG)["distributor"]["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"


def test_tempo_generator_writes_to_prometheus_with_exemplars() -> None:
    generator = load(TEMPO_CONFIG)["metrics_generator"]
    (remote_write,) = generator["storage"]["remote_write"]
    assert remote_write["url"] == "http://prometheus:9090/api/v1/write"
    assert remote_write["send_exemplars"] is True
    prometheus = load_project(STACK_COMPOSE).services["prometheus"]
    assert "--web.enable-remote-write-receiver" in prometheus.spec["command"]


def test_tempo_streams_over_http_on_its_published_port() -> None:
    config = load(TEMPO_CONFIG)
    assert config["stream_over_http_enabled"] is True
    tempo = load_project(STACK_COMPOSE).services["tempo"]
    assert [p.container_port for p in ports(tempo)] == [str(config["server"]["http_listen_port"])]


def test_loki_config_uses_only_keys_of_loki_3_7_6() -> None:
    config = load(LOKI_CONFIG)
    unknown = list(unknown_keys(config, LOKI))
    for index, period in enumerate(config["schema_config"]["configs"]):
        unknown += [f"schema_config.configs[{index}].{k}" for k in set(period) - LOKI_PERIOD_CONFIG]
    assert not unknown, f"keys Loki 3.7.6 doesn't accept: {unknown}"


def test_loki_is_single_binary_on_tsdb_v13() -> None:
    config = load(LOKI_CONFIG)
    assert config["auth_enabled"] is False
    assert config["common"]["replication_factor"] == 1
    assert config["common"]["ring"]["kvstore"]["store"] == "inmemory"
    (period,) = config["schema_config"]["configs"]
    assert (period["store"], period["object_store"], period["schema"]) == (
        "tsdb",
        "filesystem",
        "v13",
    )
    assert period["index"]["period"] == "24h"


def test_loki_config_shortens_the_ready_delay_to_at_most_5_seconds() -> None:
    """/ready says 503 for min_ready_duration (15 s by default) after start: the stack's
    start-up waits on it through the healthcheck. That the real Loki does turn ready and
    healthy on this config is tests/nativestack/live/test_native_stack.py's to show."""
    value = load(LOKI_CONFIG)["ingester"]["lifecycler"]["min_ready_duration"]
    assert value.endswith("s") and not value.endswith("ms") and int(value[:-1]) <= 5, value


def test_loki_listens_on_its_published_port_and_stores_in_its_volume() -> None:
    config = load(LOKI_CONFIG)
    loki = load_project(STACK_COMPOSE).services["loki"]
    assert [p.container_port for p in ports(loki)] == [str(config["server"]["http_listen_port"])]
    volumes = [m.target for m in mounts(loki) if not m.bind]
    assert config["common"]["path_prefix"] in volumes
    for directory in config["common"]["storage"]["filesystem"].values():
        assert directory.startswith(config["common"]["path_prefix"] + "/")


def test_tempo_stores_in_its_volume() -> None:
    config = load(TEMPO_CONFIG)
    tempo = load_project(STACK_COMPOSE).services["tempo"]
    (volume,) = [m.target for m in mounts(tempo) if not m.bind]
    for path in (
        config["storage"]["trace"]["wal"]["path"],
        config["storage"]["trace"]["local"]["path"],
        config["metrics_generator"]["storage"]["path"],
    ):
        assert path.startswith(volume + "/"), f"{path} is outside the {volume} volume"
