// Where a participant of a hearing is, shown plainly (the waiting room, the hearing, a private
// room with its "Private, not recorded" banner), and counsel's private room: whom to take
// aside, invite, leave. Drawn from `hearing:state`; names with textContent only.
import {counselChoices, isHost, mayOpenRoom, placeView} from "./court-state.js";

/**
 * The place banner. own: hearing:state (a guest's), or a host's own row with the stage;
 * role: ours; selfId. Returns the view (court-state.js placeView).
 */
export function renderPlace({t, own, role, selfId, el}) {
  const view = placeView(own, role);
  // A host has the board; the banner only for a private room (the bench's).
  el.box.hidden = isHost(role) && !view.private;
  el.box.dataset.place = view.place;
  el.box.dataset.private = view.private ? "true" : "false";
  el.text.textContent = t(view.key, view.vars);
  el.private.hidden = !view.private;
  const opener = view.room && view.room.opened_by;
  el.opened.hidden = !opener || opener.id === selfId;
  el.opened.textContent = opener ? t("room_opened_by", {name: opener.name}) : "";
  el.leave.hidden = !view.private;
  const observers = (own && own.observers) || 0;
  el.observers.hidden = observers < 1;
  el.observers.textContent = t("observers_n", {n: observers});
  return view;
}

/**
 * Counsel's panel: the people they may take aside (checkboxes while in no room; Invite
 * buttons for those not with them once in one). inRoom: ids of those in our room now (from
 * the tiles we receive there).
 */
export function renderCounsel({t, own, peers, selfId, inRoom, el}) {
  const inside = !!own && own.place === "consultation";
  const choices = counselChoices(own, peers, selfId, inRoom);
  const mayOpen = mayOpenRoom(own);
  el.nobody.hidden = choices.length > 0;
  el.inSession.hidden = !own || own.stage !== "in_session" || inside;
  el.open.hidden = inside;
  el.open.disabled = !mayOpen || !choices.length;
  el.leave.hidden = !inside;
  el.list.replaceChildren(...choices.map((c) => {
    const li = document.createElement("li");
    li.dataset.counselChoice = String(c.id);
    if (inside) {
      const name = document.createElement("span");
      name.textContent = c.name;
      li.append(name);
      if (c.with) {
        li.append(" ", Object.assign(document.createElement("span"),
          {className: "badge", textContent: t("counsel_in_room")}));
      } else {
        const invite = document.createElement("button");
        invite.type = "button";
        invite.dataset.courtAction = "invite";
        invite.dataset.participant = String(c.id);
        invite.textContent = t("counsel_invite");
        invite.setAttribute("aria-label", t("act_name", {action: t("counsel_invite"),
          name: c.name}));
        li.append(" ", invite);
      }
    } else {
      const label = document.createElement("label");
      label.className = "check";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = String(c.id);
      box.checked = true;
      box.disabled = !mayOpen;
      label.append(box, " ", c.name);
      li.append(label);
    }
    return li;
  }));
}

/** The ids ticked in counsel's list. */
export function tickedMembers(list) {
  return [...list.querySelectorAll("input[type=checkbox]:checked")].map((b) => Number(b.value));
}
