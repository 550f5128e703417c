# The code location's image: the project with its pinned dependencies, serving the Dagster definitions
# over gRPC on port 4000 (docs/production.md). Run workers start from the same image (the code
# server launches them, or Kubernetes does with the K8sRunLauncher), so it also carries
# deploy/dagster.yaml as the instance's settings; give it DAGSTER_POSTGRES_URL, the Coalesce token and
# the destination's credentials as environment variables or secrets, never in the image.
FROM python:3.11-slim

WORKDIR /opt/coalesce-dagster
COPY pyproject.toml constraints.txt README.md LICENSE ./
# The node assets' snapshot comes along when CI wrote it before the build (`dg utils
# refresh-defs-state`, into coalesce_dagster/dg_defs/.local_defs_state/); without one the image
# serves the metadata assets only until the daily environments sync writes one (docs/node-assets.md).
COPY coalesce_dagster ./coalesce_dagster
# Installed in place, so the package finds its committed .dlt/config.toml as it does in a checkout.
RUN pip install --no-cache-dir -c constraints.txt -e .
COPY .dlt/config.toml ./.dlt/config.toml
COPY deploy ./deploy

ENV DAGSTER_HOME=/opt/dagster/home \
    DAGSTER_CODE_SERVER_HOST=0.0.0.0 \
    DAGSTER_CODE_SERVER_PORT=4000 \
    COALESCE_DAGSTER_PIPELINES_DIR=/tmp/coalesce_dagster_pipelines \
    RUNTIME__DLTHUB_TELEMETRY=false
RUN mkdir -p "$DAGSTER_HOME" && cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-m", "coalesce_dagster.definitions", "--location-name", "coalesce"]
