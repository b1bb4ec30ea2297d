"""`evgrid sql`: evgrid's outputs in a real PostgreSQL, under the seed's view names."""
