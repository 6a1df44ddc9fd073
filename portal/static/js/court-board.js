// The clerk's status board (a host's `hearing:state`): the hearing's stage and its buttons,
// and one row per participant (role, place, connection, private room, locks, screening) with
// the actions court-state.js offers. Names go in with textContent only. The buttons carry
// data-court-action (and data-participant); court.js sends what they ask.
import {hearingActions, rowActions} from "./court-state.js";

const DANGER = new Set(["remove", "mute_all_lock"]);
const PRIMARY = new Set(["start", "resume", "call"]);

function button(t, action, id, name) {
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.courtAction = action;
  if (id !== undefined) {
    b.dataset.participant = String(id);
    b.setAttribute("aria-label", t("act_name", {action: t("act_" + action), name}));
  }
  b.className = DANGER.has(action) ? "danger" : PRIMARY.has(action) ? "primary" : "";
  b.textContent = t("act_" + action);
  return b;
}

function badge(text, cls) {
  const span = document.createElement("span");
  span.className = "badge " + cls;
  span.textContent = text;
  return span;
}

/** The connection's badge; a failed device check says what failed. */
function stateText(t, p) {
  const state = t("state_" + p.state);
  const check = p.device_check || {};
  const what = ["media", "network"].filter((k) => check[k] === "warn" || check[k] === "fail");
  if (p.state !== "device_check_failed" || !what.length) { return state; }
  return t("check_failed_what", {state, what: what.map((k) => t("check_failed_" + k)).join(", ")});
}

/** Draw `board` into the panel's parts; roles: role -> label; selfId: our participant id. */
export function renderBoard({t, roles, board, selfId, el}) {
  const names = new Map(board.participants.map((p) => [p.id, p.name]));
  el.stage.textContent = t("stage_" + board.stage);
  el.stage.dataset.stage = board.stage;
  el.observers.textContent = t("observers_n", {n: board.observers || 0});
  el.rooms.hidden = !board.rooms.length;
  el.rooms.textContent = t("rooms_in_use", {n: board.rooms.length});
  el.actions.replaceChildren(...hearingActions(board, selfId).map((a) => button(t, a)));

  const rows = board.participants.map((p) => {
    const li = document.createElement("li");
    li.dataset.courtRow = String(p.id);
    li.dataset.place = p.place;
    li.dataset.state = p.state;
    li.dataset.role = p.role;
    const who = document.createElement("p");
    who.className = "who";
    const name = document.createElement("strong");
    name.textContent = p.id === selfId ? `${p.name} (${t("you")})` : p.name;
    const role = document.createElement("span");
    role.className = "role";
    const bits = [roles[p.role] || p.role];
    if (p.interprets_for) {
      bits.push(t("interprets_for", {name: names.get(p.interprets_for) || "?"}));
    }
    role.textContent = bits.join(" · ");
    who.append(name, " ", role);
    const where = document.createElement("p");
    where.className = "where";
    where.append(badge(t("place_" + p.place), "place place-" + p.place),
      badge(stateText(t, p), "state state-" + p.state));
    // Connection quality, when the portal reports it (good, fair, poor).
    const level = p.quality && typeof p.quality === "object" ? p.quality.level : p.quality;
    if (["good", "fair", "poor"].includes(level)) {
      where.append(badge(`${t("quality_label")}: ${t("quality_" + level)}`, "quality-" + level));
    }
    if (p.mute_locked) { where.append(badge(t("mute_locked_badge"), "locked")); }
    if ((p.screened_from || []).length) {
      where.append(badge(t("screened_from", {names: p.screened_from
        .map((id) => names.get(id) || "?").join(", ")}), "screened"));
    }
    const actions = document.createElement("p");
    actions.className = "actions";
    actions.append(...rowActions(p, board, selfId).map((a) => button(t, a, p.id, p.name)));
    li.append(who, where, actions);
    return li;
  });
  el.list.replaceChildren(...rows);
}
