// The appointment page's live waiting room (#waiting-room): its own host socket, the waiting
// guests, Admit / Deny.
import {publishHooks} from "./hooks.js";
import {noticeKnocks, renderWaiting, wireWaiting} from "./lobby.js";
import {format, readStrings} from "./text.js";

const panel = document.getElementById("waiting-room");
if (panel) { start(panel); }

function start(panel) {
  const text = readStrings("lobby-strings");
  const listEl = document.getElementById("lobby-list");
  const emptyEl = document.getElementById("lobby-empty");
  const connEl = document.getElementById("lobby-conn");
  const baseTitle = document.title;
  if (typeof window.io !== "function") { connEl.textContent = text.offline; return; }

  const socket = window.io({auth: {appointment: Number(panel.dataset.appointment)},
    query: {call: panel.dataset.appointment}}); // routing only, as in socket.js
  wireWaiting(listEl, () => socket);
  const knocked = new Set();
  // The list itself is not a live region: a redraw would read every row again.
  const announce = (message) => { document.getElementById("lobby-live").textContent = message; };
  publishHooks({socket});

  socket.on("connect", () => { connEl.textContent = text.connected; });
  socket.on("welcome", () => { connEl.textContent = text.connected; panel.dataset.live = "true"; });
  socket.on("lobby:list", (payload) => {
    const n = renderWaiting(listEl, emptyEl, (payload && payload.waiting) || [], text);
    panel.classList.toggle("has-waiting", n > 0);
    document.title = n > 0 ? `(${n}) ${baseTitle}` : baseTitle;
    noticeKnocks(listEl, (payload && payload.waiting) || [], knocked, text, announce);
  });
  socket.on("call:ended", () => {
    socket.disconnect();
    renderWaiting(listEl, emptyEl, [], text);
    connEl.textContent = text.ended;
    const startLink = document.getElementById("start-call");
    if (startLink) { startLink.remove(); }
  });
  socket.on("connect_error", (err) => {
    panel.dataset.live = "false";
    if (!socket.active) {
      const message = (err && err.data && err.data.message) || (err && err.message) || "";
      connEl.textContent = format(text.refused, {message});
    } else {
      connEl.textContent = text.offline;
    }
  });
  socket.on("disconnect", (reason) => {
    panel.dataset.live = "false";
    connEl.textContent = reason === "io client disconnect" ? "" : text.offline;
  });
  socket.on("error", (payload) => {
    // A decision that came too late (the guest left meanwhile) is not worth an alarm.
    if (payload && payload.code === "unknown_peer") { return; }
    connEl.textContent = format(text.error_generic, {message: (payload && payload.message) || ""});
    for (const b of listEl.querySelectorAll("button[data-action]")) { b.disabled = false; }
  });
}
