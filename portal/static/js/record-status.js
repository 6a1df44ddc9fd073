// What a change of the recording says: to screen readers at once (#rec-live), and on the
// status line (#rec-status), where the news of a stop lingers for a while.

export const ACTIVE = new Set(["requested", "recording", "paused"]);
export const RUNNING = new Set(["recording", "paused"]);
const STATUS_LINGER_MS = 8000;

export function names(people) {
  return (people || []).map((p) => p.name || "?").join(", ");
}

/** live, status: the elements; expired(): a lingering message is gone (draw again). */
export function createRecordStatus({t, live, status, expired}) {
  let timer = null;

  function reasonText(reason, recordingStatus) {
    if (!reason) {
      return recordingStatus === "declined" ? t("rec_why_declined") : t("rec_why_other");
    }
    if (/^connection_|^recorder_/.test(reason)) { return t("rec_why_connection"); }
    const key = "rec_why_" + reason;
    const text = t(key);
    return text === key ? t("rec_why_other") : text;
  }

  function show(message, lingerMs) {
    if (timer) { clearTimeout(timer); timer = null; }
    status.textContent = message || "";
    status.hidden = !message;
    if (message && lingerMs) {
      timer = setTimeout(() => { timer = null; expired(); }, lingerMs);
    }
  }

  /** From phase `was` of recording `before` to phase `now` of `state`: say what happened. */
  function announce(before, was, state, now) {
    if (now === "requested" && timer) { clearTimeout(timer); timer = null; }
    const same = before.id === state.id;
    if (same && was === now) { return; }
    let message = "";
    if (now === "recording") {
      message = same && was === "paused" ? t("rec_resumed") : t("rec_started");
    } else if (now === "paused") {
      message = t("rec_paused", {names: names(state.pending)});
    } else if (same && ACTIVE.has(was) && !ACTIVE.has(now)) {
      // It ended (or is being sealed): say why. A declined or cancelled request recorded
      // nothing; a stopped recording is kept.
      const started = RUNNING.has(was) || ["stopping", "complete", "incomplete"].includes(now);
      const why = reasonText(state.reason, state.status);
      message = started ? t("rec_stopped", {why}) : t("rec_not_recorded", {why});
    }
    if (!message) { return; }
    live.textContent = message;
    if (!RUNNING.has(now)) { show(message, STATUS_LINGER_MS); }
  }

  return {
    announce,
    /** The status line, unless a message lingers there. */
    showUnlessLingering(message) { if (!timer) { show(message); } },
  };
}
