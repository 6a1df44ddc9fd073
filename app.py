"""Entry point: `flask --app app ...` and `python app.py` both find the portal here."""

from portal import create_app

app = create_app()

if __name__ == "__main__":
    app.run(host=app.config["HOST"], port=app.config["PORT"], threaded=True)
