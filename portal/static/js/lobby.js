// The host's view of the waiting room: a list of waiting guests with Admit / Deny buttons.
// Used by the call page (call.js calls SamtaleLobby.render) and, standalone, by the
// appointment page (#waiting-room), where this script opens its own host socket.
"use strict";
(function () {
  /** Fill "{name}" placeholders of a translated string. */
  function format(template, vars) {
    return String(template).replace(/\{(\w+)\}/g, (whole, key) =>
      vars && Object.prototype.hasOwnProperty.call(vars, key) ? String(vars[key]) : whole);
  }

  function clock(iso) {
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) { return ""; }
    return when.toLocaleTimeString(document.documentElement.lang || undefined,
      {hour: "2-digit", minute: "2-digit"});
  }

  /**
   * Draw the waiting guests into listEl (a <ul>); emptyEl is shown when nobody waits.
   * text: the translated strings (admit, deny, admit_name, deny_name, waiting_since, roles).
   * Names are set with textContent only.
   */
  function render(listEl, emptyEl, waiting, text) {
    const rows = [];
    for (const guest of waiting || []) {
      const li = document.createElement("li");
      li.dataset.waiting = String(guest.id);
      const name = document.createElement("strong");
      name.textContent = guest.name;
      const about = document.createElement("span");
      const bits = [];
      if (guest.role) { bits.push((text.roles && text.roles[guest.role]) || guest.role); }
      const since = guest.since ? clock(guest.since) : "";
      if (since) { bits.push(format(text.waiting_since, {time: since})); }
      about.textContent = bits.join(" · ");
      const actions = document.createElement("span");
      actions.className = "actions";
      for (const action of ["admit", "deny"]) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = action === "admit" ? "primary" : "danger";
        button.dataset.action = action;
        button.dataset.participant = String(guest.id);
        button.textContent = text[action];
        button.setAttribute("aria-label", format(text[action + "_name"], {name: guest.name}));
        actions.append(button);
      }
      li.append(name, about, actions);
      rows.push(li);
    }
    listEl.replaceChildren(...rows);
    if (emptyEl) { emptyEl.hidden = rows.length > 0; }
    return rows.length;
  }

  /** Send lobby:admit / lobby:deny when one of the list's buttons is pressed. */
  function wire(listEl, getSocket) {
    listEl.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button || !listEl.contains(button)) { return; }
      const socket = getSocket();
      if (!socket || !socket.connected) { return; }
      const id = Number(button.dataset.participant);
      const eventName = button.dataset.action === "admit" ? "lobby:admit" : "lobby:deny";
      for (const b of listEl.querySelectorAll(`button[data-participant="${id}"]`)) { b.disabled = true; }
      socket.emit(eventName, {participant_id: id});
    });
  }

  window.SamtaleLobby = {render, wire, format};

  // ---- Standalone: the appointment page ----
  const panel = document.getElementById("waiting-room");
  if (!panel || document.getElementById("room")) { return; }
  const text = JSON.parse(document.getElementById("lobby-strings").textContent);
  const listEl = document.getElementById("lobby-list");
  const emptyEl = document.getElementById("lobby-empty");
  const connEl = document.getElementById("lobby-conn");
  const baseTitle = document.title;
  if (typeof window.io !== "function") { connEl.textContent = text.offline; return; }

  const socket = window.io({auth: {appointment: Number(panel.dataset.appointment)}});
  wire(listEl, () => socket);
  window.samtaleLobby = {socket};

  socket.on("connect", () => { connEl.textContent = text.connected; });
  socket.on("welcome", () => { connEl.textContent = text.connected; panel.dataset.live = "true"; });
  socket.on("lobby:list", (payload) => {
    const n = render(listEl, emptyEl, (payload && payload.waiting) || [], text);
    panel.classList.toggle("has-waiting", n > 0);
    document.title = n > 0 ? `(${n}) ${baseTitle}` : baseTitle;
  });
  socket.on("call:ended", () => {
    socket.disconnect();
    render(listEl, emptyEl, [], text);
    connEl.textContent = text.ended;
    const start = document.getElementById("start-call");
    if (start) { start.remove(); }
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
    if (reason === "io server disconnect") { connEl.textContent = text.offline; }
  });
  socket.on("error", (payload) => {
    // A decision that came too late (the guest left meanwhile) is not worth an alarm.
    if (payload && payload.code === "unknown_peer") { return; }
    connEl.textContent = format(text.error_generic, {message: (payload && payload.message) || ""});
    for (const b of listEl.querySelectorAll("button[data-action]")) { b.disabled = false; }
  });
})();
