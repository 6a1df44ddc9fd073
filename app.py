"""Entry point: `flask --app app ...`, `gunicorn app:app` and `python app.py` find the portal
here. `python app.py` serves it with gunicorn's threaded worker (portal/serve.py)."""

from portal import create_app

app = create_app()

if __name__ == "__main__":
    from portal.serve import serve

    serve(app)
