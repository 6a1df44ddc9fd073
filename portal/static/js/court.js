// A hearing's court procedure in the room (docs/signaling.md, "Court procedure"): the
// declaration before joining, the hosts' board and bench messages, everyone's place, counsel's
// private room, a locked mute. The server decides every right and every move; this page sends
// what a button asks and draws each `hearing:state` (court-board.js, court-guest.js).
import {renderBoard} from "./court-board.js";
import {renderCounsel, renderPlace, tickedMembers} from "./court-guest.js";
import {benchMembers, controlsFor, screeningChoices} from "./court-state.js";
import {timeOfDay} from "./text.js";

/**
 * parts: {t, roles (role -> label), room (#room), emit(event, payload), peers() -> [Peer],
 * refreshJoin(), muted() (a host muted us: turn the microphone off), lockChanged()}.
 */
export function createCourt({t, roles, room, emit, peers, refreshJoin, muted, lockChanged}) {
  const $ = (id) => document.getElementById(id);
  const declaration = $("declaration-ack");
  const el = {
    toggle: $("court-toggle"), panel: $("court-panel"), close: $("court-close"),
    board: {stage: $("court-stage"), observers: $("court-observers"), rooms: $("court-rooms"),
      actions: $("court-actions"), list: $("court-board")},
    place: {box: $("court-place"), text: $("court-place-text"), private: $("court-private"),
      opened: $("court-opened"), leave: $("court-leave"), observers: $("court-place-observers")},
    counsel: {list: $("counsel-list"), open: $("counsel-open"), leave: $("counsel-leave"),
      nobody: $("counsel-nobody"), inSession: $("counsel-in-session")},
    bench: {log: $("bench-log"), form: $("bench-form"), input: $("bench-input")},
    live: $("court-live"),
    confirm: $("court-confirm"), confirmText: $("court-confirm-text"),
    confirmYes: $("court-confirm-yes"), confirmNo: $("court-confirm-no"),
    screen: $("court-screen"), screenTitle: $("court-screen-title"),
    screenList: $("court-screen-list"), screenDone: $("court-screen-done"),
  };
  let hearing = false;
  let role = null;
  let selfId = null;
  let controls = controlsFor(null);
  let state = null; // the last hearing:state
  let own = null; // our own place: a guest's hearing:state, or a host's row with the stage
  let view = null; // placeView of own
  let locked = false;
  let feeds = new Set(); // participants whose media we receive now
  let confirmed = null; // what the open confirmation does on Yes
  let screening = null; // participant id whose screening dialog is open

  // ------------------------------------------------------------------ the state

  function onWelcome(welcome) {
    hearing = !!welcome && !!welcome.appointment && welcome.appointment.kind === "hearing";
    role = welcome && welcome.self ? welcome.self.role : null;
    selfId = welcome && welcome.self ? welcome.self.id : null;
    controls = controlsFor(role);
    room.dataset.courtRole = hearing ? role : "";
    const panel = hearing && (controls.board || controls.counsel);
    el.toggle.hidden = !panel;
    el.toggle.querySelector(".ctl-label").textContent =
      t(controls.board ? "court_toggle" : "court_toggle_counsel");
    for (const part of el.panel.querySelectorAll("[data-court-part]")) {
      part.hidden = !controls[part.dataset.courtPart];
    }
    if (panel && window.matchMedia("(min-width: 900px)").matches && controls.board) {
      setOpen(true);
    }
  }

  function onState(message) {
    if (!hearing || !message || typeof message !== "object") { return; }
    state = message;
    if (Array.isArray(message.participants)) {
      renderBoard({t, roles, board: message, selfId, el: el.board});
      const mine = message.participants.find((p) => p.id === selfId);
      const kind = mine && mine.room
        ? (message.rooms.find((r) => r.id === mine.room) || {}).kind : null;
      own = {stage: message.stage, place: mine ? mine.place : "waiting",
        room: kind ? {id: mine.room, kind} : null, observers: message.observers};
      if (screening !== null) { drawScreening(); }
    } else {
      own = message;
      setLocked(!!message.mute_locked);
    }
    const before = view;
    view = renderPlace({t, own, role, selfId, el: el.place});
    document.body.dataset.place = view.place;
    document.body.dataset.courtStage = own.stage;
    if (!before || before.key !== view.key) { announce(view); }
    if (controls.counsel) { drawCounsel(); }
  }

  /** Say a change of place aloud (and, when someone else took us aside, who). */
  function announce(next) {
    const opener = next.room && next.room.opened_by;
    el.live.textContent = opener && opener.id !== selfId
      ? `${t("invited", {name: opener.name})} ${t(next.key)}` : t(next.key);
  }

  function drawCounsel() {
    const inRoom = own && own.place === "consultation" ? feeds : new Set();
    renderCounsel({t, own, peers: peers(), selfId, inRoom, el: el.counsel});
  }

  function setLocked(next) {
    if (locked === next) { return; }
    locked = next;
    lockChanged();
  }

  // ------------------------------------------------------------------ acting

  function participantName(id) {
    const row = state && Array.isArray(state.participants)
      ? state.participants.find((p) => p.id === id) : null;
    return row ? row.name : "";
  }

  function act(action, id) {
    const one = {participant: id};
    switch (action) {
      case "start":
        ask(t("confirm_start"), t("act_start"), false, () => emit("hearing:start", {}));
        return;
      case "remove":
        ask(t("confirm_remove", {name: participantName(id)}), t("act_remove"), true,
          () => emit("hearing:remove", one));
        return;
      case "screen": openScreening(id); return;
      case "pause": emit("hearing:pause", {}); return;
      case "resume": emit("hearing:resume", {}); return;
      case "recall": emit("room:recall", {}); return;
      case "bench": emit("room:open", {kind: "bench", members: benchMembers(state, selfId)}); return;
      case "mute_all": emit("hearing:mute", {all: true, lock: false}); return;
      case "mute_all_lock": emit("hearing:mute", {all: true, lock: true}); return;
      case "call": emit("hearing:call", one); return;
      case "dismiss": emit("hearing:dismiss", one); return;
      case "mute": emit("hearing:mute", {...one, lock: false}); return;
      case "mute_lock": emit("hearing:mute", {...one, lock: true}); return;
      case "unlock": emit("hearing:mute", {...one, lock: false}); return;
      case "invite": emit("room:invite", one); return;
      case "open_room": {
        const members = tickedMembers(el.counsel.list);
        if (members.length) { emit("room:open", {kind: "counsel", members}); }
        return;
      }
      case "leave_room": emit("room:leave", {}); return;
      default:
    }
  }

  function onClick(event) {
    const target = event.target.closest("[data-court-action]");
    if (!target || target.disabled) { return; }
    const id = target.dataset.participant ? Number(target.dataset.participant) : undefined;
    act(target.dataset.courtAction, id);
  }

  /** A confirmation before what cannot be undone (or moves many people). */
  function ask(text, yes, danger, then) {
    el.confirmText.textContent = text;
    el.confirmYes.textContent = yes;
    el.confirmYes.className = danger ? "danger" : "primary";
    confirmed = then;
    el.confirm.showModal();
    el.confirmNo.focus();
  }

  function openScreening(id) {
    screening = id;
    drawScreening();
    if (!el.screen.open) { el.screen.showModal(); }
  }

  function drawScreening() {
    const row = state && Array.isArray(state.participants)
      ? state.participants.find((p) => p.id === screening) : null;
    if (!row) { if (el.screen.open) { el.screen.close(); } return; }
    el.screenTitle.textContent = t("screen_title", {name: row.name});
    el.screenList.replaceChildren(...screeningChoices(row, state).map((c) => {
      const li = document.createElement("li");
      const label = document.createElement("label");
      label.className = "check";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = c.on;
      box.dataset.hiddenFrom = String(c.id);
      box.addEventListener("change", () => emit("hearing:screen",
        {protected: row.id, hidden_from: c.id, on: box.checked}));
      label.append(box, " ", c.name);
      li.append(label);
      return li;
    }));
  }

  function setOpen(open) {
    room.dataset.court = open ? "open" : "closed";
    el.toggle.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function addBench(message) {
    if (!message || !controls.bench) { return; }
    const li = document.createElement("li");
    li.className = message.from && message.from.id === selfId ? "mine" : "theirs";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = li.className === "mine" ? t("you") : (message.from || {}).name || "";
    const when = document.createElement("time");
    when.textContent = timeOfDay(message.sent_at);
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = message.text;
    li.append(who, when, text);
    el.bench.log.append(li);
    el.bench.log.scrollTop = el.bench.log.scrollHeight;
  }

  // The place banner sits over the top of the call: the tiles and the top lines move below it.
  new ResizeObserver(() => {
    const h = el.place.box.hidden ? 0 : el.place.box.getBoundingClientRect().height;
    room.style.setProperty("--court-place-h", `${Math.round(h)}px`);
  }).observe(el.place.box);
  el.panel.addEventListener("click", onClick);
  el.place.box.addEventListener("click", onClick);
  el.toggle.addEventListener("click", () => setOpen(room.dataset.court !== "open"));
  el.close.addEventListener("click", () => { setOpen(false); el.toggle.focus(); });
  el.confirmNo.addEventListener("click", () => { confirmed = null; el.confirm.close(); });
  el.confirmYes.addEventListener("click", () => {
    const then = confirmed;
    confirmed = null;
    el.confirm.close();
    if (then) { then(); }
  });
  el.screenDone.addEventListener("click", () => el.screen.close());
  el.screen.addEventListener("close", () => { screening = null; });
  el.bench.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = el.bench.input.value.trim();
    if (body) { emit("bench:message", {body: body.slice(0, 2000)}); el.bench.input.value = ""; }
  });
  if (declaration) { declaration.addEventListener("change", () => refreshJoin()); }

  return {
    /** Listen on the call's socket. */
    attach(socket) {
      socket.on("welcome", onWelcome);
      socket.on("hearing:state", onState);
      socket.on("hearing:muted", ({locked: lock} = {}) => {
        if (typeof lock === "boolean") { setLocked(lock); }
        muted();
      });
      socket.on("bench:message", addBench);
    },
    /** Join stays off until a hearing's declaration is ticked. */
    mayJoin() { return !declaration || declaration.checked; },
    /** Extra keys for call:join. */
    joinExtras() { return declaration && declaration.checked ? {declaration: true} : {}; },
    /** The server wants the declaration (again): untick it. */
    declarationRefused() { if (declaration) { declaration.checked = false; } },
    /** Whose media we receive now (hearing.js, after each offer): counsel's "in the room". */
    feedsChanged(ids) {
      feeds = new Set(ids);
      if (controls.counsel && own) { drawCounsel(); }
    },
    /** Whether a host locked our microphone off. */
    get muteLocked() { return locked; },
    /** For window.samtale.court (hooks.js). */
    hook: {
      get role() { return role; },
      get state() { return state; },
      get place() { return view ? view.place : null; },
      get locked() { return locked; },
    },
  };
}
