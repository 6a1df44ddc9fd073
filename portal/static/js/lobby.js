// The host's view of the waiting room: the waiting guests with Admit / Deny buttons. Drawn on
// the call page (room.js) and on the appointment page (waiting-room.js).
import {format, timeOfDay} from "./text.js";

/**
 * Draw the waiting guests into listEl (a <ul>); emptyEl is shown when nobody waits.
 * text: the translated strings (admit, deny, admit_name, deny_name, waiting_since, roles).
 * Names are set with textContent only. Returns how many wait.
 */
export function renderWaiting(listEl, emptyEl, waiting, text) {
  const rows = [];
  for (const guest of waiting || []) {
    const li = document.createElement("li");
    li.dataset.waiting = String(guest.id);
    const name = document.createElement("strong");
    name.textContent = guest.name;
    const about = document.createElement("span");
    const bits = [];
    if (guest.role) { bits.push((text.roles && text.roles[guest.role]) || guest.role); }
    const since = guest.since ? timeOfDay(guest.since) : "";
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

/**
 * Someone new knocked: say so (announce(text)) and, unless the host is typing or answering a
 * dialog, put focus on the first newcomer's Admit button, so Enter lets them in. known: the
 * Set of ids seen waiting so far (updated here).
 */
export function noticeKnocks(listEl, waiting, known, text, announce) {
  const now = new Set((waiting || []).map((g) => g.id));
  const newcomers = (waiting || []).filter((g) => !known.has(g.id));
  known.clear();
  for (const id of now) { known.add(id); }
  if (!newcomers.length) { return; }
  announce(newcomers.map((g) => format(text.knock, {name: g.name})).join(" "));
  const active = document.activeElement;
  const busy = active && (active.closest("dialog[open]") ||
    ["INPUT", "TEXTAREA", "SELECT"].includes(active.tagName));
  const admit = listEl.querySelector(`button[data-action="admit"][data-participant="${newcomers[0].id}"]`);
  if (admit && !busy && !document.querySelector("dialog[open]")) { admit.focus(); }
}

/** Send lobby:admit / lobby:deny when one of the list's buttons is pressed. */
export function wireWaiting(listEl, getSocket) {
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
