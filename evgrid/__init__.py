"""evgrid: demand-response control for EV charging fleets over Apache Kafka."""

__version__ = "0.1.0"
