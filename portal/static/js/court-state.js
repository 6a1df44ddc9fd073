// A hearing's court procedure as the page shows it (docs/signaling.md, "Court procedure"):
// which controls a role gets, which actions a row of the clerk's board offers, what a guest's
// place says, whom counsel may take aside, and how a received feed is shown. No DOM: the
// server decides every right; this only chooses what to offer (tests/js/court.test.js).

/** Roles with a host's rights (start, call, mute, remove, screen, recall, bench messages). */
export const HOSTS = new Set(["host", "judge", "clerk"]);
/** Roles that join with a staff account: never called, dismissed, removed or screened from. */
export const STAFF = new Set(["host", "judge", "clerk", "panel"]);
/** Wait in the waiting room until the court calls them. */
export const CALLED_IN = new Set(["witness", "expert"]);
/** Who sits in the bench room (procedure.BENCH). */
export const BENCH = new Set(["judge", "panel"]);

export const isHost = (role) => HOSTS.has(role);
export const isObserver = (role) => role === "observer";

/** What the page offers a role: {board, bench, counsel, publish, chat}. */
export function controlsFor(role) {
  const host = isHost(role);
  const observer = isObserver(role);
  return {board: host, bench: host, counsel: role === "counsel", publish: !observer,
    chat: !observer};
}

/** The hearing's own buttons on the board, by stage: start, pause, resume, mute_all, recall. */
export function hearingActions(board, selfId) {
  const stage = (board && board.stage) || "opening";
  const actions = [];
  if (stage === "opening") { actions.push("start"); }
  if (stage === "in_session") { actions.push("pause"); }
  if (stage === "paused") { actions.push("resume"); }
  actions.push("mute_all", "mute_all_lock");
  if (stage !== "in_session" && benchMembers(board, selfId).length) { actions.push("bench"); }
  if (board && Array.isArray(board.rooms) && board.rooms.length) { actions.push("recall"); }
  return actions;
}

/** Whom the bench room takes (the judge and the panel in the call, not in a room already),
 * besides ourselves: the portal checks each again. */
export function benchMembers(board, selfId) {
  const people = (board && Array.isArray(board.participants)) ? board.participants : [];
  return people.filter((p) => p.id !== selfId && BENCH.has(p.role) && p.state === "in_call" &&
    p.place !== "consultation").map((p) => p.id);
}

/**
 * A board row's actions (row: one of hearing:state's participants): call, dismiss, mute,
 * mute_lock, unlock, screen, remove. Never on ourselves or another host; an interpreter moves
 * with their principal, so they are called and dismissed with them, not alone.
 */
export function rowActions(row, board, selfId) {
  if (!row || row.id === selfId || isHost(row.role)) { return []; }
  const staff = STAFF.has(row.role);
  const inCall = row.state === "in_call";
  const follower = row.role === "interpreter" && row.interprets_for !== null &&
    row.interprets_for !== undefined;
  const actions = [];
  if (!staff && !follower && inCall) {
    if (row.place === "waiting" && board && board.stage !== "opening") { actions.push("call"); }
    if (row.place === "hearing") { actions.push("dismiss"); }
  }
  if (row.mute_locked) {
    actions.push("unlock");
  } else if (inCall) {
    actions.push("mute", "mute_lock");
  }
  if (!staff) { actions.push("screen"); }
  if (!staff && row.state !== "removed") { actions.push("remove"); }
  return actions;
}

/**
 * Whom a participant's video may be hidden from (the screening dialog): guests of the board
 * but the protected one and their interpreter (or principal); `on` when hidden now.
 */
export function screeningChoices(protectedRow, board) {
  const rows = (board && board.participants) || [];
  const hidden = new Set(protectedRow.screened_from || []);
  return rows.filter((r) => r.id !== protectedRow.id && !STAFF.has(r.role) &&
      r.interprets_for !== protectedRow.id && protectedRow.interprets_for !== r.id)
    .map((r) => ({id: r.id, name: r.name, on: hidden.has(r.id)}));
}

/**
 * What a participant's place says (own: hearing:state for a guest, or a host's own row with
 * the board's stage): {place, key (a text key), private (a private room: not recorded),
 * room}. role: our role.
 */
export function placeView(own, role) {
  const stage = (own && own.stage) || "opening";
  const place = (own && own.place) || "waiting";
  const room = (own && own.room) || null;
  if (isObserver(role)) {
    return {place: "observer", key: `place_observer_${stage}`, private: false, room: null};
  }
  if (place === "consultation") {
    return {place, key: room && room.kind === "bench" ? "place_bench" : "place_private",
      private: true, room};
  }
  if (place === "hearing") {
    return {place, key: stage === "in_session" ? "place_hearing" : `place_hearing_${stage}`,
      private: false, room: null};
  }
  // An interpreter waits with whom they interpret for, and goes in with them.
  const principal = role === "interpreter" ? (own && own.interprets_for) || null : null;
  if (principal) {
    const key = CALLED_IN.has(principal.role) || stage !== "opening"
      ? "place_waiting_with_called" : "place_waiting_with_start";
    return {place: "waiting", key, vars: {name: principal.name}, private: false, room: null};
  }
  const called = CALLED_IN.has(role) || role === "interpreter";
  return {place: "waiting",
    key: stage === "opening" && !called ? "place_waiting_start" : "place_waiting_called",
    private: false, room: null};
}

/**
 * Counsel's private room: whom they may take aside or invite (the parties they represent,
 * and other counsel in the call), each {id, name, with} (with: in our room now).
 * own: hearing:state; peers: the call's peers [{id, name, role}]; selfId.
 */
export function counselChoices(own, peers, selfId, inRoom = new Set()) {
  const found = new Map();
  for (const p of (own && own.represents) || []) { found.set(p.id, p.name); }
  for (const p of peers || []) {
    if (p.role === "counsel" && p.id !== selfId) { found.set(p.id, p.name); }
  }
  return [...found].map(([id, name]) => ({id, name, with: inRoom.has(id)}));
}

/** Counsel may open a room while the hearing is not in session and they are in none. */
export function mayOpenRoom(own) {
  return !!own && own.stage !== "in_session" && own.place !== "consultation";
}

/**
 * How a received feed is shown: "av" (picture and sound), "audio" (a neutral tile with the
 * name: the server withholds the video, screening, or the camera is not sent), "video".
 */
export function feedOf(tracks) {
  if (!tracks) { return null; }
  if (tracks.video && tracks.audio) { return "av"; }
  return tracks.video ? "video" : "audio";
}
