# The hosted dashboard: `docker build -t flux-dashboard .`, then see deploy/README.md.
# Installs exactly what `make install` installs (requirements.txt), runs as a
# non-root user, and starts through the same startup check as `make serve`.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FLUX_ADDRESS=0.0.0.0 \
    FLUX_PORT=8501 \
    FLUX_CACHE_DIR=/data/cache \
    FLUX_AUDIT_FILE=/data/audit/audit.jsonl \
    FLUX_SECRETS_FILE=/run/secrets/flux/secrets.toml \
    FLUX_ACCESS_FILE=/run/secrets/flux/access.toml

RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 flux \
    && mkdir -p /data/cache /data/audit && chown -R flux:flux /data

WORKDIR /app
COPY requirements.txt .
RUN python -m pip install -r requirements.txt
COPY --chown=root:root app.py ./
COPY --chown=root:root pages ./pages
COPY --chown=root:root flux_dashboard ./flux_dashboard
COPY --chown=root:root static ./static
COPY --chown=root:root .streamlit/config.toml ./.streamlit/config.toml

USER flux
VOLUME ["/data"]
EXPOSE 8501
# When the public URL has a base path (https://host/soc), set FLUX_BASE_PATH=soc as well.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl --fail --silent \
        "http://127.0.0.1:${FLUX_PORT}${FLUX_BASE_PATH:+/$FLUX_BASE_PATH}/_stcore/health" || exit 1
CMD ["python", "-m", "flux_dashboard.serve"]
