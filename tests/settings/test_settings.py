from pathlib import Path

import pytest

from evgrid.core.types import Tunables
from evgrid.openadr.signals import Levels
from evgrid.settings import (
    PROCESSES,
    GatewaySettings,
    KafkaSettings,
    SqlSettings,
    TopicNames,
    VenSettings,
    WorkerSettings,
)


def test_documented_defaults() -> None:
    s = WorkerSettings.from_env({})
    assert s.topics.meter_values == "ocpp.meter_values"
    assert s.topics.deadletter == "evgrid.deadletter"
    assert s.stale_after_s == 120 and s.dead_band_kw == 1 and s.compliance_grace_s == 60
    assert s.web_host == "127.0.0.1" and s.store == "rocksdb://"
    assert s.tunables() == Tunables()


def test_env_overrides_and_topic_names() -> None:
    s = WorkerSettings.from_env(
        {
            "EVGRID_BROKER": "10.1.2.3:9093",
            "EVGRID_PARTITIONS": "8",
            "EVGRID_DEAD_BAND_KW": "2.5",
            "EVGRID_DATA_DIR": "/srv/evgrid",
            "EVGRID_TOPIC_METER_VALUES": "site-a.meter_values",
        }
    )
    assert s.broker_url == "kafka://10.1.2.3:9093"
    assert s.bootstrap_servers == "10.1.2.3:9093"
    assert s.partitions == 8 and s.dead_band_kw == 2.5
    assert s.data_dir == Path("/srv/evgrid")
    assert s.topics.meter_values == "site-a.meter_values"
    assert s.tunables().dead_band_kw == 2.5


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(SystemExit) as info:
        WorkerSettings.from_env({"EVGRID_PARTITIONS": "zero"})
    assert "EVGRID_PARTITIONS" in str(info.value)


def test_to_env_round_trips() -> None:
    s = WorkerSettings(partitions=3, api_token="t0k").with_topic_prefix("t1")
    assert WorkerSettings.from_env(s.to_env()) == s


def test_kafka_security_settings(tmp_path: Path) -> None:
    assert WorkerSettings.from_env({}).kafka_client_kwargs() == {}
    assert WorkerSettings.from_env({}).faust_credentials() is None
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed here")
    env = {
        "EVGRID_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
        "EVGRID_BROKER_SASL_USERNAME": "evgrid",
        "EVGRID_BROKER_SASL_PASSWORD": "pw",
        "EVGRID_BROKER_SASL_MECHANISM": "SCRAM-SHA-256",
    }
    s = WorkerSettings.from_env(env)  # no CA file: the system's trust store
    kw = s.kafka_client_kwargs()
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-256"
    assert kw["sasl_plain_username"] == "evgrid" and kw["ssl_context"] is not None
    assert s.faust_credentials().mechanism.value == "SCRAM-SHA-256"
    assert WorkerSettings.from_env(s.to_env()) == s  # workers get it through the environment


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"EVGRID_BROKER_SECURITY_PROTOCOL": "SASL_SSL"}, "EVGRID_BROKER_SASL_USERNAME"),
        ({"EVGRID_BROKER_SECURITY_PROTOCOL": "TLS"}, "EVGRID_BROKER_SECURITY_PROTOCOL"),
        ({"EVGRID_BROKER_SSL_CAFILE": "{ca}"}, "EVGRID_BROKER_SECURITY_PROTOCOL=SSL"),
        ({"EVGRID_BROKER_SECURITY_PROTOCOL": "SSL", "EVGRID_BROKER_SSL_CERTFILE": "{ca}"},
         "EVGRID_BROKER_SSL_KEYFILE"),
        ({"EVGRID_BROKER_SECURITY_PROTOCOL": "SSL", "EVGRID_BROKER_SSL_CAFILE": "/nope.pem"},
         "no such file"),
    ],
)
def test_kafka_security_misconfiguration_says_what_to_set(
    env: dict[str, str], says: str, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(SystemExit, match=says):
        WorkerSettings.from_env({k: v.format(ca=ca) for k, v in env.items()})


def test_model_copy_validates_security() -> None:
    """A copy may not build what the constructor would refuse."""
    sasl = WorkerSettings(broker_security_protocol="SASL_PLAINTEXT", broker_sasl_username="u",
                    broker_sasl_password="p")
    with pytest.raises(ValueError, match="EVGRID_BROKER_SASL_PASSWORD"):
        sasl.model_copy(update={"broker_sasl_password": None})
    with pytest.raises(ValueError, match="no such file"):
        WorkerSettings(broker_security_protocol="SSL").model_copy(
            update={"broker_ssl_cafile": Path("/nonexistent/ca.pem")})
    with pytest.raises(ValueError):
        WorkerSettings().model_copy(update={"partitions": 0})
    moved = sasl.model_copy(update={"broker_sasl_password": "q"}).with_topic_prefix("x")
    assert moved.broker_sasl_password == "q" and moved.topics.meter_values == "x.ocpp.meter_values"
    assert WorkerSettings().model_copy() == WorkerSettings()


def test_each_process_reads_only_its_own_variables() -> None:
    env = {"EVGRID_GATEWAY_PORT": "9100", "EVGRID_STALE_AFTER_S": "30",
           "EVGRID_SQL_BATCH_MAX": "7", "EVGRID_OPENADR_WEB_PORT": "7000",
           "EVGRID_BROKER": "10.0.0.1:9092"}
    worker, gateway = WorkerSettings.from_env(env), GatewaySettings.from_env(env)
    ven, sink = VenSettings.from_env(env), SqlSettings.from_env(env)
    assert worker.stale_after_s == 30 and not hasattr(worker, "gateway_port")
    assert gateway.gateway_port == 9100 and not hasattr(gateway, "stale_after_s")
    assert ven.openadr_web_port == 7000 and not hasattr(ven, "sql_batch_max")
    assert sink.sql_batch_max == 7 and not hasattr(sink, "openadr_web_port")
    assert {s.bootstrap_servers for s in (worker, gateway, ven, sink)} == {"10.0.0.1:9092"}
    assert set(KafkaSettings.model_fields) < set(VenSettings.model_fields)
    # A field belongs to one process, or to all that share a base class.
    owners: dict[str, set[str]] = {}
    for cls in PROCESSES:
        for name in cls.model_fields:
            owners.setdefault(name, set()).add(cls.__name__)
    assert owners["stale_after_s"] == {"WorkerSettings"}
    assert owners["gateway_port"] == {"GatewaySettings"}
    assert owners["web_host"] == {"WorkerSettings", "VenSettings", "SqlSettings"}


@pytest.mark.parametrize("cls", PROCESSES)
def test_every_class_round_trips_through_the_environment(cls: type[KafkaSettings]) -> None:
    s = cls(partitions=3, app_id="a1").with_topic_prefix("t1")
    assert type(s) is cls and s.topics.commands == "t1.ocpp.commands.set_charging_profile"
    assert cls.from_env(s.to_env()) == s
    with pytest.raises(SystemExit, match="EVGRID_REPLICATION_FACTOR"):
        cls.from_env({"EVGRID_REPLICATION_FACTOR": "none"})


def test_derive_shares_broker_topics_and_app_id() -> None:
    worker = WorkerSettings(app_id="w1", broker="h:1", web_port=1234).with_topic_prefix("p")
    gateway = worker.derive(GatewaySettings, gateway_port=9101)
    assert (gateway.app_id, gateway.broker, gateway.topics) == ("w1", "h:1", worker.topics)
    assert gateway.gateway_port == 9101
    with pytest.raises(ValueError, match="EVGRID_GATEWAY_PASSWORDS_FILE"):
        worker.derive(GatewaySettings, gateway_security_profile=1)


def test_internal_topics_derive_from_the_app_id_and_are_not_settable() -> None:
    s = WorkerSettings(app_id="site-a")
    i = s.internal_topics
    assert i.station_rows == "site-a-station-rows"
    assert i.meter_repartition == "site-a-meter-values-repartition"
    assert i.assignment == "site-a-assignment"
    assert WorkerSettings().internal_topics.station_rows == "evgrid-station-rows"
    assert s.with_topic_prefix("x").internal_topics == i  # the app id isolates them
    with pytest.raises(ValueError):
        TopicNames(station_rows="mine")  # type: ignore[call-arg]
    env = WorkerSettings.from_env({"EVGRID_TOPIC_STATION_ROWS": "mine"})
    assert "mine" not in set(env.topics.model_dump().values())


def test_tunables_defaults_are_the_settings_defaults() -> None:
    """Each core default is stated once, in `Tunables`; the settings take it from there."""
    fields = WorkerSettings.model_fields
    for name in Tunables.__dataclass_fields__:
        assert fields[name].default == getattr(Tunables(), name), name
    assert WorkerSettings().tunables() == Tunables()
    ven, levels = VenSettings(), Levels()
    assert (ven.openadr_simple_level1_pct, ven.openadr_simple_level2_pct,
            ven.openadr_simple_level3_pct) == (levels.level1_pct, levels.level2_pct,
                                               levels.level3_pct)


def test_help_lists_each_process_variables_and_marks_advanced() -> None:
    worker = WorkerSettings.help_epilog()
    assert "EVGRID_STALE_AFTER_S [120.0]" in worker
    assert "EVGRID_CHECKPOINT_INTERVAL_S [30.0] (advanced)" in worker
    assert "EVGRID_GATEWAY_PORT" not in worker and "EVGRID_TOPIC_STATION_STATUS" not in worker
    gateway = GatewaySettings.help_epilog()
    assert "EVGRID_GATEWAY_PORT [9000]" in gateway and "EVGRID_STALE_AFTER_S" not in gateway
    assert "EVGRID_TOPIC_STATION_STATUS [ocpp.station_status]" in gateway
    assert "EVGRID_TOPIC_SITES" not in gateway
