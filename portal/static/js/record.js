// Consented recording in the consult room (docs/signaling.md, "Recording"): the host's Record
// control and its confirmation, everyone's consent prompt, the recording indicator, withdrawal,
// and the hearing notice before joining. Publishing to the recorder is recorder.js. The state
// is mirrored on document.body.dataset.recording.
import {ACTIVE, RUNNING, createRecordStatus, names} from "./record-status.js";
import {createRecorderLink} from "./recorder.js";

/**
 * media: the LocalMedia; t(key, vars): translated strings; isHost; alertUser(message): the
 * call's alert line; inCall(): whether this page is in the call; refreshJoin(): re-check
 * whether Join may be pressed; callPcs(): the call's peer connections (the recorder's link
 * follows their rate).
 */
export function createRecording({media, t, isHost, alertUser, inCall, refreshJoin,
  callPcs = () => []}) {
  const $ = (id) => document.getElementById(id);
  const el = {
    notice: $("notice"), noticeText: $("notice-text"), noticeAck: $("notice-ack"),
    indicator: $("rec-indicator"), indicatorText: $("rec-indicator-text"),
    status: $("rec-status"), live: $("rec-live"),
    record: $("record"), confirm: $("record-confirm"),
    confirmYes: $("record-confirm-yes"), confirmNo: $("record-confirm-no"),
    consent: $("consent-dialog"), consentPending: $("consent-pending"),
    consentYes: $("consent-yes"), consentNo: $("consent-no"),
    withdraw: $("consent-withdraw"),
  };
  let socket = null;
  let self = null; // {id, ...} from welcome
  let iceServers = [];
  let wording = null; // {kind, version, what, why, who, how_long, withdraw} or null (policy off)
  let current = {status: "none"};
  let phase = "none"; // what is shown: none, requested, recording, paused, stopping, or the end
  let answered = null; // recording id this page answered and the server has not confirmed yet
  const news = createRecordStatus({t, live: el.live, status: el.status, expired: () => render()});
  const recorder = createRecorderLink({media, emit: (event, payload) => emit(event, payload),
    failed: () => alertUser(t("rec_publish_failed")), callPcs});
  document.body.dataset.recording = "none";

  // ------------------------------------------------------------------ the state

  /** What to show for a state: a started recording that stopped is "stopping" until sealed. */
  function phaseOf(state) {
    if (!state || !state.status) { return "none"; }
    if (ACTIVE.has(state.status) && state.reason) { return "stopping"; }
    return state.status;
  }

  function pendingMe(state) {
    return !!self && (state.pending || []).some((p) => p.id === self.id);
  }

  function publishingMe(state) {
    return !!self && (state.publishers || []).includes(self.id);
  }

  function onState(state) {
    if (!state || typeof state !== "object") { return; }
    const before = current, was = phase;
    current = state;
    phase = phaseOf(state);
    document.body.dataset.recording = phase;
    if (el.record) { delete el.record.dataset.sent; }
    if (answered && (state.id !== answered || !pendingMe(state))) { answered = null; }
    news.announce(before, was, state, phase);
    render();
    keepRecorder();
  }

  function render() {
    const state = current;
    const consentKind = !!wording && wording.kind === "consent";
    // The indicator: unmistakable while media is recorded (or held, paused).
    el.indicator.hidden = !(phase === "recording" || phase === "paused");
    el.indicator.dataset.phase = phase;
    el.indicatorText.textContent = phase === "paused"
      ? t("rec_paused_waiting", {names: names(state.pending)}) : t("rec_indicator");
    // The status line: who is still asked; a stop message lingers on its own timer.
    news.showUnlessLingering(phase === "requested"
      ? t("rec_asking", {names: names(state.pending)}) : "");
    // Host: Record, or Stop recording while one is asked for or runs.
    if (el.record) {
      el.record.hidden = !wording;
      const stoppable = ACTIVE.has(phase);
      el.record.dataset.active = stoppable ? "true" : "false";
      el.record.disabled = phase === "stopping" || el.record.dataset.sent === "true";
      el.record.querySelector(".ctl-label").textContent = phase === "stopping"
        ? t("rec_saving") : stoppable ? t("rec_stop") : t("rec_record");
      if (stoppable && el.confirm.open) { el.confirm.close(); }
    }
    // Everyone who has not answered: the prompt (not for a hearing's notice).
    const ask = consentKind && (phase === "requested" || phase === "paused") &&
      pendingMe(state) && answered !== state.id && inCall();
    if (ask) {
      fillWording(el.consent);
      const others = (state.pending || []).filter((p) => !self || p.id !== self.id);
      el.consentPending.textContent = others.length
        ? t("rec_not_answered", {names: names(others)}) : t("rec_only_you");
      el.consentYes.disabled = el.consentNo.disabled = false;
      // No answer is preselected: the dialog focuses its first button, "No".
      if (!el.consent.open) { el.consent.showModal(); }
    } else if (el.consent.open) {
      el.consent.close();
    }
    // A guest who is recorded may withdraw at any moment (the host stops instead).
    if (el.withdraw) {
      el.withdraw.hidden = isHost || !consentKind || !RUNNING.has(phase) ||
        !publishingMe(state) || !inCall();
    }
  }

  function fillWording(container) {
    const box = container.querySelector("[data-wording]");
    if (!box || !wording) { return; }
    if (box.dataset.version === wording.version) { return; }
    box.replaceChildren(...["what", "why", "who", "how_long", "withdraw"].map((key) => {
      const p = document.createElement("p");
      p.textContent = wording[key] || "";
      return p;
    }));
    box.dataset.version = wording.version;
  }

  // ------------------------------------------------------------------ the hearing notice

  function renderNotice() {
    const notice = !!wording && wording.kind === "notice";
    if (!el.notice) { return; }
    el.notice.hidden = !notice;
    if (notice) { fillWording(el.notice); }
    if (!notice) { el.noticeAck.checked = false; }
  }

  if (el.noticeAck) { el.noticeAck.addEventListener("change", () => refreshJoin()); }

  // ------------------------------------------------------------------ controls

  function emit(event, payload) {
    if (socket && socket.connected) { socket.emit(event, payload); return true; }
    alertUser(t("rec_offline"));
    return false;
  }

  if (el.record) {
    el.record.addEventListener("click", () => {
      if (!wording) { return; }
      if (ACTIVE.has(phase) && current.id) {
        // Stopping needs no confirmation: it can only make less be recorded.
        if (emit("record:stop", {id: current.id})) { sent(el.record); }
        return;
      }
      fillWording(el.confirm);
      el.confirm.showModal();
      el.confirmNo.focus();
    });
    el.confirmNo.addEventListener("click", () => el.confirm.close());
    el.confirmYes.addEventListener("click", () => {
      el.confirm.close();
      if (wording && emit("record:start", {version: wording.version})) { sent(el.record); }
    });
  }

  /** Hold the button until the server's record:state (or error) answers. */
  function sent(button) {
    button.dataset.sent = "true";
    button.disabled = true;
    setTimeout(() => { delete button.dataset.sent; render(); }, 5000);
  }

  function answer(decision) {
    if (!current.id || !wording) { return; }
    const id = current.id;
    if (!emit("record:consent", {id, decision, version: wording.version})) { return; }
    if (decision === "withdrawn") {
      recorder.silence(); // at once: not a single frame more once consent is gone
      if (el.withdraw) { el.withdraw.hidden = true; }
      return;
    }
    answered = id;
    el.consentYes.disabled = el.consentNo.disabled = true;
    if (el.consent.open) { el.consent.close(); }
  }

  el.consentYes.addEventListener("click", () => answer("granted"));
  el.consentNo.addEventListener("click", () => answer("declined"));
  if (el.withdraw) { el.withdraw.addEventListener("click", () => answer("withdrawn")); }
  // Escape must not dismiss the question unanswered (the recording would wait for this
  // answer forever): the prompt stays until Yes or No. The call goes on behind it.
  el.consent.addEventListener("cancel", (event) => event.preventDefault());
  el.consent.addEventListener("close", () => { setTimeout(render, 0); });

  // ------------------------------------------------------------------ publishing

  /** Publish only while the state says this participant is recorded. */
  function keepRecorder() {
    if (recorder.id !== null &&
        (recorder.id !== current.id || !RUNNING.has(phase) || !publishingMe(current))) {
      recorder.close();
    }
  }

  async function publish(id) {
    recorder.close();
    if (id !== current.id || !RUNNING.has(phase) || !inCall()) { return; }
    if (!await recorder.publish(id, iceServers)) { alertUser(t("rec_nothing_to_send")); }
  }

  // ------------------------------------------------------------------ for the room (call.js)

  /** Listen on the call's socket (before call.js's own listeners, for `welcome`). */
  function attach(sock) {
    socket = sock;
    sock.on("welcome", (welcome) => {
      self = welcome.self || null;
      iceServers = welcome.ice_servers || [];
      const rec = welcome.recording || {};
      wording = rec.wording || null;
      renderNotice();
      onState(rec.state || {status: "none"});
    });
    sock.on("lobby:state", (msg) => { if (msg && msg.ice_servers) { iceServers = msg.ice_servers; } });
    sock.on("record:state", onState);
    // Only hosts get it: this recording is losing media (whose, and the counts so far).
    sock.on("record:loss", (notice) => {
      if (!notice || typeof notice !== "object" || notice.id !== current.id) { return; }
      document.body.dataset.recordingLoss = notice.track || "true";
      alertUser(t("rec_losing", {name: notice.name || "?"}));
    });
    sock.on("record:publish", ({id} = {}) => { publish(id); });
    sock.on("record:answer", recorder.answer);
  }

  return {
    attach,
    /** Whether Join may be pressed: a hearing's notice must be acknowledged first. */
    mayJoin() {
      return !wording || wording.kind !== "notice" || (!!el.noticeAck && el.noticeAck.checked);
    },
    /** Extra keys for call:join. */
    joinExtras() {
      return wording && wording.kind === "notice" && el.noticeAck && el.noticeAck.checked
        ? {notice: wording.version} : {};
    },
    /** The server wants the notice acknowledged (again): untick it. */
    noticeRefused() { if (el.noticeAck) { el.noticeAck.checked = false; } },
    /** A local track was swapped: the recorder gets the new one too. */
    replaceTrack: recorder.replaceTrack,
    /** For window.samtale: the last record:state, and {id, pc} of the recorder link. */
    get state() { return current; },
    get recorder() { return recorder.hook; },
    /** A refused record:* event; returns the message to show. */
    errorMessage({code, message, event} = {}) {
      if (event === "record:consent") { answered = null; }
      if (el.record) { delete el.record.dataset.sent; }
      if (event === "record:offer") {
        // The recorder failed, or the recording ended while we offered: stop sending.
        recorder.close();
        render();
        return code === "recording_failed" ? t("rec_publish_failed") : "";
      }
      render();
      return message || t("error_generic", {message: code || "?"});
    },
    /** The stage changed (call.js): the prompt and withdraw control belong to the call. */
    refresh() { render(); keepRecorder(); if (!inCall()) { recorder.close(); } },
    /** Leaving the call or the page: stop publishing and close the dialogs. */
    teardown() {
      recorder.close();
      for (const dialog of [el.consent, el.confirm]) {
        if (dialog && dialog.open) { dialog.close(); }
      }
    },
  };
}
