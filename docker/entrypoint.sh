#!/usr/bin/env bash
# Container entrypoint. First argument picks the role:
#   web      collectstatic, then gunicorn (extra arguments go to gunicorn); migrations are the `migrate` role's
#   worker   celery worker (extra arguments go to celery)
#   beat     the periodic tasks' scheduler (CELERY_BEAT_SCHEDULE): exactly one per deployment
#   migrate  apply migrations and exit
#   other    run it as a command, e.g. `python manage.py createsuperuser` or `bash`
set -euo pipefail

cd /app

wait_for_db() {
    local limit="${DB_WAIT_SECONDS:-60}"
    # 0 skips the wait, e.g. for one-off commands that do not need the database.
    if [[ "${limit}" == "0" ]]; then
        return 0
    fi
    local deadline=$((SECONDS + limit))
    local output
    while true; do
        # PGCONNECT_TIMEOUT bounds one try when the host drops packets instead of refusing.
        if output="$(PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}" python manage.py shell -c \
            "from django.db import connection; connection.ensure_connection()" 2>&1)"; then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            echo "entrypoint: database not reachable after ${limit}s (DB_WAIT_SECONDS); last error:" >&2
            # The last error tells a down database apart from bad settings (e.g. no SECRET_KEY).
            echo "${output}" | tail -n 20 >&2
            exit 1
        fi
        sleep 1
    done
}

role="${1:-web}"
if (($# > 0)); then
    shift
fi

wait_for_db

case "${role}" in
    web)
        python manage.py collectstatic --noinput
        # Threads: an open job event stream or long poll holds one for its duration (see api/job_events.py).
        exec gunicorn imagestudio.wsgi:application \
            --bind "0.0.0.0:${PORT:-8000}" \
            --workers "${WEB_CONCURRENCY:-2}" \
            --worker-class gthread \
            --threads "${WEB_THREADS:-8}" \
            --timeout 120 \
            "$@"
        ;;
    worker)
        # Concurrency 1 by default: each task may hold a CLIP model in memory. Scale with more
        # containers (docker compose up --scale worker=N) rather than more processes per container.
        exec celery -A imagestudio worker \
            --loglevel="${LOG_LEVEL:-INFO}" \
            -Q "${CELERY_QUEUES:-default,embeddings,training}" \
            --concurrency "${WORKER_CONCURRENCY:-1}" \
            "$@"
        ;;
    beat)
        exec celery -A imagestudio beat --loglevel="${LOG_LEVEL:-INFO}" \
            --schedule "${CELERY_BEAT_SCHEDULE_FILE:-/tmp/celerybeat-schedule}" "$@"
        ;;
    migrate)
        exec python manage.py migrate --noinput "$@"
        ;;
    *)
        exec "${role}" "$@"
        ;;
esac
