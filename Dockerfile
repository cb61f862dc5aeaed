# One image for every process of the stack: the `pointsview` console script (docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md /src/
COPY projections /src/projections
COPY runtime /src/runtime
COPY consumers /src/consumers
COPY service /src/service
COPY cli /src/cli
COPY devtools /src/devtools
COPY config /src/config
RUN pip install /src && rm -rf /src

WORKDIR /app
COPY config ./config
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pointsview
USER pointsview

ENV LOYALTY_CONFIG=/app/config/loyalty.yaml \
    POINTSVIEW_LOG_FORMAT=json
EXPOSE 8000 9100
ENTRYPOINT ["pointsview"]
CMD ["--help"]
