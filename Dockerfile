# Quota Gap API. Build: docker build -t quotagap .
# Run:   docker run -p 8000:8000 -v qg-data:/srv/data quotagap            (embedded SQLite)
#        docker run -p 8000:8000 -e QG_DATABASE_URL=postgresql+psycopg://user:pw@db/quotagap quotagap
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    QG_HOST=0.0.0.0 \
    QG_PORT=8000 \
    QG_DATABASE_URL=sqlite:////srv/data/quotagap.db

WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY analytics ./analytics
COPY connectors ./connectors
COPY migrations ./migrations
RUN pip install . && useradd --system --home /srv quotagap && mkdir -p /srv/data \
    && chown quotagap /srv/data
USER quotagap
VOLUME ["/srv/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)" || exit 1
# serve migrates the database to head before it starts listening.
ENTRYPOINT ["quotagap"]
CMD ["serve"]
