"""Entry point: `python app.py` (dev server) or `gunicorn -k gthread --threads 32 -b 0.0.0.0:8090 app:app`."""

import os

from sandbox_gateway import create_app

app = create_app()

if __name__ == "__main__":
    # Threaded: hanging requests (magic 54/57) must not block the others.
    app.run(
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8090")),
        threaded=True,
        debug=False,
        use_reloader=False,
    )
