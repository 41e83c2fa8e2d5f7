"""gunicorn reads ./gunicorn.conf.py by default: its own log lines become JSON like the app's."""

# The app writes one access line per request itself, so gunicorn's access log stays quiet.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "sandbox_gateway.logs.json_formatter"}},
    "filters": {"context": {"()": "sandbox_gateway.logs.ContextFilter", "secrets": []}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["context"],
            "stream": "ext://sys.stdout",
        }
    },
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": ["console"], "propagate": False},
    },
}
