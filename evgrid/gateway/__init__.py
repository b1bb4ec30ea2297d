"""The OCPP edge: `evgrid gateway`, a central-system endpoint for OCPP 1.6J and 2.0.1."""
