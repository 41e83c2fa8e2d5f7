"""Processor entry point: `python app.py` (development) or `gunicorn -w 4 -b 0.0.0.0:5000 app:app`."""

from binpay_processor import create_app

app = create_app()

if __name__ == "__main__":
    settings = app.extensions["binpay"].settings
    app.run(host=settings.host, port=settings.port)
