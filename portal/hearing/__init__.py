"""Hearings: calls of many parties through the Janus media server (VideoRoom), which the portal
drives over Janus's WebSocket API; browsers never speak to Janus. See docs/operations.md
("Hearings: the Janus media server") and ../shared/DESIGN.md."""
