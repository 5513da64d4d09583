"""Job progress pushed to the client: Server-Sent Events, and the long poll's wait.

Both poll the Job row (a primary-key read of four columns every JOB_EVENTS_POLL_SECONDS) rather than subscribe
to Redis: the row is the one truth of a job's state, every writer (worker, canceller, the in-process eager mode
with no Redis at all) already updates it, and a poll cannot miss a message the way a subscriber that connects
late can. At 0.5 s a hundred open streams cost 200 indexed reads a second.

Each open stream or wait holds a web worker thread for its whole duration, so both are bounded (a stream lasts
JOB_EVENTS_MAX_SECONDS, then the client reconnects; a wait at most MAX_WAIT_SECONDS). Serve with gunicorn's
gthread workers (`--worker-class gthread --threads N`): a sync worker would be one stream, and killed by
gunicorn's --timeout while it streams.
"""

import json
import time

from django.conf import settings
from rest_framework.fields import DateTimeField

from imagestudio.jobs.models import ACTIVE_STATUSES
from imagestudio.jobs.selectors import job_state

MAX_WAIT_SECONDS = 30
RECONNECT_MILLISECONDS = 2000
_STAMP = DateTimeField()


def state_id(updated_at):
    """A job state's id, as the payload's `updated_at` writes it: an event's id, a long poll's `since`."""
    return _STAMP.to_representation(updated_at)


def parse_state_id(text):
    """The `updated_at` an event id names, or None for text that is not one (a Last-Event-ID of another server)."""
    try:
        return _STAMP.to_internal_value(text)
    except Exception:  # DRF's ValidationError: any text a client sends
        return None


def wait_for_change(job_id, *, since, seconds):
    """Return once the job's state is no longer `since` (its updated_at), it is finished or gone, or after
    `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        state = job_state(job_id=job_id)
        if state is None or state["updated_at"] != since or state["status"] not in ACTIVE_STATUSES:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(settings.JOB_EVENTS_POLL_SECONDS, left))


def _message(event, data, state_at):
    return f"id: {state_id(state_at)}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def job_event_stream(job_id, *, last_seen, final_payload):
    """The SSE body: a `progress` event ({status, progress, message}) for every state not seen yet (the first one
    unless `last_seen`, the Last-Event-ID, is the current state), `: heartbeat` comments while nothing changes, and
    a final `done` event (data: `final_payload()`, the Job) once the job has finished, then the end. The stream
    also ends after JOB_EVENTS_MAX_SECONDS; the EventSource then reconnects with Last-Event-ID."""
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
    started = beat = time.monotonic()
    while True:
        state = job_state(job_id=job_id)
        if state is None:  # deleted with its dataset: reconnecting will answer 404, which ends an EventSource
            return
        if state["status"] not in ACTIVE_STATUSES:
            payload = final_payload()
            if payload is not None:
                yield _message("done", payload, state["updated_at"])
            return
        now = time.monotonic()
        if state["updated_at"] != last_seen:
            last_seen, beat = state["updated_at"], now
            yield _message("progress", {key: state[key] for key in ("status", "progress", "message")}, last_seen)
        elif now - beat >= settings.JOB_EVENTS_HEARTBEAT_SECONDS:
            beat = now
            yield ": heartbeat\n\n"
        if now - started >= settings.JOB_EVENTS_MAX_SECONDS:
            return
        time.sleep(settings.JOB_EVENTS_POLL_SECONDS)
