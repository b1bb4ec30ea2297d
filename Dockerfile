# The evgrid worker as a container: scale by running more of them (up to the partition count).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EVGRID_WEB_HOST=0.0.0.0 \
    EVGRID_DATA_DIR=/var/lib/evgrid

RUN useradd --create-home --uid 10001 evgrid \
    && mkdir -p /var/lib/evgrid && chown evgrid /var/lib/evgrid

WORKDIR /opt/evgrid
COPY pyproject.toml README.md ./
COPY evgrid ./evgrid
RUN pip install --no-cache-dir . && rm -rf /root/.cache

USER evgrid
VOLUME ["/var/lib/evgrid"]
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"EVGRID_WEB_PORT\", \"6066\")}/health')"
ENTRYPOINT ["evgrid"]
CMD ["worker"]
