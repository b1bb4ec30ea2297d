# The evgrid image: one image, every role — `worker` (default), `gateway`, `openadr`, `sql`,
# `simulate`. Scale workers by running more of them, up to the partition count.
# BASE: any image with Python 3.11, pip and useradd (tests build it on a Debian rootfs).
ARG BASE=python:3.11-slim
FROM ${BASE}

# MALLOC_ARENA_MAX=2: glibc otherwise keeps up to 8 arenas per core of freed memory that a
# worker's many threads (RocksDB, aiokafka) never give back; two keep RSS near what is live.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    EVGRID_WEB_HOST=0.0.0.0 \
    EVGRID_DATA_DIR=/var/lib/evgrid

RUN useradd --create-home --uid 10001 --user-group evgrid \
    && mkdir -p /var/lib/evgrid && chown 10001:10001 /var/lib/evgrid

WORKDIR /opt/evgrid
COPY pyproject.toml README.md ./
COPY evgrid ./evgrid
RUN pip install --no-cache-dir . && rm -rf /root/.cache

USER 10001:10001
VOLUME ["/var/lib/evgrid"]
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('EVGRID_WEB_PORT', '6066') + '/health', timeout=2)"]
ENTRYPOINT ["evgrid"]
CMD ["worker"]
