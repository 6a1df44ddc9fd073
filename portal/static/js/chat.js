// The call's chat panel: open/close, the unread count, sending, and the messages (history on
// joining, then chat:message), each shown once.
import {timeOfDay} from "./text.js";

/** send(text): emits chat:send, false when not possible; selfId(): our participant id. */
export function createChat({room, t, send, selfId}) {
  const $ = (id) => document.getElementById(id);
  const seen = new Set();
  let unread = 0;

  function setOpen(open) {
    room.dataset.chat = open ? "open" : "closed";
    $("chat-toggle").setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      unread = 0;
      $("chat-unread").hidden = true;
      const log = $("chat-log");
      log.scrollTop = log.scrollHeight;
    }
  }

  function clear() {
    $("chat-log").replaceChildren();
    seen.clear();
  }

  function add(message, fromHistory) {
    if (!message || seen.has(message.id)) { return; }
    seen.add(message.id);
    const from = message.from || {};
    const mine = from.id === selfId();
    const li = document.createElement("li");
    li.className = mine ? "mine" : "theirs";
    li.dataset.from = String(from.id);
    li.dataset.id = String(message.id);
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = mine ? t("you") : (from.name || "");
    const when = document.createElement("time");
    const clock = timeOfDay(message.sent_at);
    if (clock) {
      when.dateTime = message.sent_at;
      when.textContent = clock;
    }
    const body = document.createElement("p");
    body.className = "text";
    body.textContent = message.text;
    li.append(who, when, body);
    const log = $("chat-log");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(li);
    if (atBottom || mine) { log.scrollTop = log.scrollHeight; }
    if (!mine && !fromHistory && room.dataset.chat !== "open") {
      unread += 1;
      $("chat-unread").textContent = String(unread);
      $("chat-unread").hidden = false;
    }
  }

  $("chat-toggle").addEventListener("click", () => {
    const open = room.dataset.chat !== "open";
    setOpen(open);
    if (open) { $("chat-input").focus(); }
  });
  $("chat-close").addEventListener("click", () => { setOpen(false); $("chat-toggle").focus(); });
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("chat-input");
    const text = input.value.trim();
    if (text && send(text.slice(0, 2000))) { input.value = ""; }
  });

  return {setOpen, clear, add};
}
