from pathlib import Path

import pytest

from evgrid.core.types import Tunables
from evgrid.settings import Settings


def test_documented_defaults() -> None:
    s = Settings.from_env({})
    assert s.topics.meter_values == "ocpp.meter_values"
    assert s.topics.deadletter == "evgrid.deadletter"
    assert s.stale_after_s == 120 and s.dead_band_kw == 1 and s.compliance_grace_s == 60
    assert s.web_host == "127.0.0.1" and s.store == "rocksdb://"
    assert s.tunables() == Tunables()


def test_env_overrides_and_topic_names() -> None:
    s = Settings.from_env(
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
        Settings.from_env({"EVGRID_PARTITIONS": "zero"})
    assert "EVGRID_PARTITIONS" in str(info.value)


def test_to_env_round_trips() -> None:
    s = Settings(partitions=3, api_token="t0k").with_topic_prefix("t1")
    assert Settings.from_env(s.to_env()) == s


def test_kafka_security_settings(tmp_path: Path) -> None:
    assert Settings.from_env({}).kafka_client_kwargs() == {}
    assert Settings.from_env({}).faust_credentials() is None
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed here")
    env = {
        "EVGRID_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
        "EVGRID_BROKER_SASL_USERNAME": "evgrid",
        "EVGRID_BROKER_SASL_PASSWORD": "pw",
        "EVGRID_BROKER_SASL_MECHANISM": "SCRAM-SHA-256",
    }
    s = Settings.from_env(env)  # no CA file: the system's trust store
    kw = s.kafka_client_kwargs()
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-256"
    assert kw["sasl_plain_username"] == "evgrid" and kw["ssl_context"] is not None
    assert s.faust_credentials().mechanism.value == "SCRAM-SHA-256"
    assert Settings.from_env(s.to_env()) == s  # workers get it through the environment


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
        Settings.from_env({k: v.format(ca=ca) for k, v in env.items()})


def test_model_copy_validates_security() -> None:
    """A copy may not build what the constructor would refuse."""
    sasl = Settings(broker_security_protocol="SASL_PLAINTEXT", broker_sasl_username="u",
                    broker_sasl_password="p")
    with pytest.raises(ValueError, match="EVGRID_BROKER_SASL_PASSWORD"):
        sasl.model_copy(update={"broker_sasl_password": None})
    with pytest.raises(ValueError, match="no such file"):
        Settings(broker_security_protocol="SSL").model_copy(
            update={"broker_ssl_cafile": Path("/nonexistent/ca.pem")})
    with pytest.raises(ValueError):
        Settings().model_copy(update={"partitions": 0})
    moved = sasl.model_copy(update={"broker_sasl_password": "q"}).with_topic_prefix("x")
    assert moved.broker_sasl_password == "q" and moved.topics.meter_values == "x.ocpp.meter_values"
    assert Settings().model_copy() == Settings()
