"""Entry point: `flask --app app ...` and `python app.py` both find the portal here."""

from portal import create_app
from portal.extensions import socketio

app = create_app()

if __name__ == "__main__":
    # The recorder starts with the server: it first marks what a crash left as incomplete.
    app.extensions["recording"].start()
    # Werkzeug with simple-websocket serves pages and Socket.IO in threads, one process.
    socketio.run(app, host=app.config["HOST"], port=app.config["PORT"],
                 allow_unsafe_werkzeug=True)
