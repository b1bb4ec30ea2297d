"""Settings, one class per process, each read from `EVGRID_*` environment variables.

`KafkaSettings` is what every process reads (broker, security, app id, topic names);
`WorkerSettings`, `GatewaySettings`, `VenSettings` and `SqlSettings` add what their own
process reads, and nothing else. docs/configuration.md and each command's `--help` are
generated from these classes.
"""

from evgrid.settings.base import (
    ENV_PREFIX,
    ConsumerGroupSettings,
    KafkaSettings,
    TopicNames,
    WebHost,
)
from evgrid.settings.gateway import GatewaySettings
from evgrid.settings.openadr import VenSettings
from evgrid.settings.sql import SqlSettings
from evgrid.settings.worker import InternalTopics, WorkerSettings

#: Every settings class, in the order docs/configuration.md lists them.
PROCESSES: tuple[type[KafkaSettings], ...] = (
    WorkerSettings, GatewaySettings, VenSettings, SqlSettings, KafkaSettings)

__all__ = [
    "ENV_PREFIX", "PROCESSES", "ConsumerGroupSettings", "GatewaySettings", "InternalTopics",
    "KafkaSettings", "SqlSettings", "TopicNames", "VenSettings", "WebHost", "WorkerSettings",
]
