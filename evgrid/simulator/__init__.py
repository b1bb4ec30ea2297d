"""A deterministic simulated fleet of charging stations, for the demo, tests and benchmarks."""
