-- Run once by the postgres image when its data volume is new. `evgrid sql` grants the
-- read-only role SELECT on every table and view it makes (its migrations); this makes the role
-- and Grafana's login in it. Change the password for anything but a laptop.
CREATE ROLE evgrid_readonly NOLOGIN;
CREATE ROLE grafana LOGIN PASSWORD 'grafana' IN ROLE evgrid_readonly;
