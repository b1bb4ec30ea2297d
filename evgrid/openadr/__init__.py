"""The OpenADR edge: `evgrid openadr`, an OpenADR 2.0b VEN beside the worker.

The utility's events become DR signals on `grid.demand_response`; the zones' measured load goes
back as reports. Decisions (which zones, how much, when to opt out) are pure functions in
`mapping`, `signals` and `tracker`; `client` and `ven` only talk to the VTN and to Kafka.
"""

