"""Benchmarks: figures printed beside a raw aiokafka baseline, never asserted speeds."""
