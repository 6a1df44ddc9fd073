// The call room's entry (templates/call/_room.html, for host and guest; a consult peer to peer,
// a hearing through the media server): builds the parts and starts the device check and the
// socket. The current stage is mirrored on
// document.body.dataset.stage.
import {createCall} from "./call.js";
import {createChat} from "./chat.js";
import {wireControls} from "./controls.js";
import {createCourt} from "./court.js";
import {createDeviceCheck, playTestTone} from "./devices.js";
import {createHearing} from "./hearing.js";
import {publishCallHooks} from "./hooks.js";
import {wireWaiting} from "./lobby.js";
import {LocalMedia} from "./media.js";
import {createQuality} from "./quality.js";
import {createRecording} from "./record.js";
import {connect} from "./socket.js";
import {StageMachine, transitionsFor} from "./stage.js";
import {createTiles} from "./tiles.js";
import {readStrings, translator} from "./text.js";

const room = document.getElementById("room");
if (room) { start(room); }

function start(room) {
  const $ = (id) => document.getElementById(id);
  const text = readStrings("call-text");
  const t = translator(text);
  const isHost = room.dataset.role === "host";
  // An observer's page never asks for camera or microphone: it only receives.
  const isObserver = room.dataset.observer === "true";
  const media = new LocalMedia();
  let call = null;
  let controls = null;

  const stages = new StageMachine({
    transitions: transitionsFor(room.dataset.role),
    onChange: (stage) => call.drawStage(stage),
  });
  const inCall = () => !!call && call.state.inCall && stages.stage === "call";
  const record = createRecording({
    media, t, isHost, inCall,
    alertUser: (message) => call.alertUser(message),
    refreshJoin: () => call.refreshJoin(),
    callPcs: () => [...links.values()].map((link) => link.pc),
  });
  const check = createDeviceCheck({
    media, t,
    isChecking: () => stages.stage === "check",
    changed: () => { if (controls) { controls.updateControls(); } },
    reported: (outcome) => reportCheck(outcome),
  });
  // In a hearing the clerk's board shows who is stuck on the device check.
  const reportCheck = (outcome) => {
    if (court && call && call.state.welcome && call.state.socket.connected &&
        stages.stage === "check") {
      call.emit("device:check", outcome);
    }
  };
  const links = new Map();
  const tiles = createTiles({container: $("tiles"), alone: $("alone"), soundOn: $("sound-on"), t});
  const hearing = createHearing({
    t, media, tiles, container: $("tiles"),
    emit: (event, payload) => call.emit(event, payload),
    iceServers: () => call.state.iceServers,
    selfId: () => (call.state.self ? call.state.self.id : null),
    // An offer may come before call:joined does.
    inCall: () => !!call && (call.state.inCall || call.state.joining) && !stages.terminal,
    peer: (id) => call.peerInfo.get(id) || null,
    netStatus: (message) => call.netStatus(message),
    alertUser: (message) => call.alertUser(message),
    refreshJoin: () => call.refreshJoin(),
  });
  // A hearing's procedure (the page has its parts only in a hearing).
  const court = $("court-panel") ? createCourt({
    t, roles: text.roles || {}, room,
    emit: (event, payload) => call.emit(event, payload),
    peers: () => [...call.peerInfo.values()],
    refreshJoin: () => call.refreshJoin(),
    muted: () => {
      media.setEnabled("audio", false);
      if (controls) { controls.updateControls(); }
      call.sendMediaState();
    },
    lockChanged: () => { if (controls) { controls.updateControls(); } },
  }) : null;
  hearing.onFeeds = (ids) => { if (court) { court.feedsChanged(ids); } };
  const chat = createChat({
    room, t,
    send: (message) => {
      if (!call.state.socket || !call.state.inCall) { return false; }
      call.state.socket.emit("chat:send", {text: message});
      return true;
    },
    selfId: () => (call.state.self ? call.state.self.id : null),
  });
  // The quality line samples the PeerLinks, or a hearing's receive-only connection.
  const sampled = {values: () => (hearing.active ? hearing.qualitySources() : links.values())};
  call = createCall({room, t, isHost, media, stages, check, tiles, chat, record, links, hearing,
    court,
    quality: createQuality({el: $("quality"), t, links: sampled})});
  call.reportCheck = () => reportCheck(check.outcome);
  controls = wireControls(call);
  publishCallHooks(call);

  const wide = window.matchMedia("(min-width: 900px)");
  wide.addEventListener("change", () => { if (stages.stage === "call") { chat.setOpen(wide.matches); } });
  stages.go("check");
  check.setCheck("check-signal", "pending", t("signal_connecting"));
  if (isHost) { wireWaiting($("lobby-list"), () => call.state.socket); }
  if (isObserver) {
    // No getUserMedia at all: the check tests the speaker (a tone) and the network only.
    call.state.mediaReady = Promise.resolve();
    check.setCheck("check-media", "ok", t("observer_media"));
  } else {
    call.state.mediaReady = check.start().catch((err) => {
      console.warn("samtale: media", err);
      check.refresh();
    });
  }
  wireSpeakerTest(check, t);
  connect(call, text);
}

// The speaker check: a tone, and the check line says whether the browser played it.
function wireSpeakerTest(check, t) {
  const button = document.getElementById("speaker-test");
  button.addEventListener("click", async () => {
    button.disabled = true;
    check.setCheck("check-speaker", "pending", t("speaker_playing"));
    const peak = await playTestTone().catch(() => 0);
    check.setCheck("check-speaker", peak > 0.01 ? "ok" : "fail",
      peak > 0.01 ? t("speaker_played") : t("speaker_silent"));
    button.disabled = false;
  });
}
