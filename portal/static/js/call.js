// The call itself: the stage on screen, joining (straight in, or through the waiting room),
// one PeerLink per other participant (or, in a hearing, the media server's connections:
// hearing.js), the call's controls, leaving. socket.js feeds it the portal's events
// (docs/signaling.md).
import {PeerLink} from "./peers.js";

/**
 * parts: {room, t, isHost, media, stages (StageMachine), check (devices.js), tiles, chat,
 * quality, record (or null), links (an empty Map: peer id -> PeerLink, shared with quality),
 * hearing (hearing.js, or null)}; returns the call, for socket.js and hooks.js.
 */
export function createCall({room, t, isHost, media, stages, check, tiles, chat, quality, record,
                            links, hearing = null, court = null}) {
  const $ = (id) => document.getElementById(id);
  const peerInfo = new Map(); // peer id -> Peer {id, name, role, audio, video}
  const state = {
    socket: null,
    welcome: null,
    self: null,
    iceServers: [],
    iceProbed: false,
    mediaReady: null, // promise of the first media start
    joining: false, // call:join sent, call:joined not yet received
    inCall: false,
    ending: false,
  };
  const emit = (event, payload) => { if (state.socket) { state.socket.emit(event, payload); } };
  /** A hearing on the media server: no PeerLinks, hearing.js sends and receives. */
  const viaServer = () => !!hearing && hearing.active;

  // ---------------------------------------------------------------- the stage on screen

  /** StageMachine's onChange: show the stage's sections; the end hangs up. */
  function drawStage(stage) {
    document.body.dataset.stage = stage;
    for (const el of room.querySelectorAll("[data-stages]")) {
      el.hidden = !el.dataset.stages.split(" ").includes(stage);
    }
    if (stage !== "check") { media.stopMeter(); }
    if (stage === "call") { chat.setOpen(window.matchMedia("(min-width: 900px)").matches); }
    if (stages.terminal) {
      teardown();
      netStatus("");
      // Let the last events (call:leave, lobby:leave) go out, then hang up.
      const socket = state.socket;
      if (socket) { setTimeout(() => socket.disconnect(), 300); }
    }
    const heading = room.querySelector(`[data-stages~="${stage}"] [tabindex="-1"]`);
    if (heading && stage !== "check") { heading.focus({preventScroll: true}); }
    if (record) { record.refresh(); }
  }

  /** Join works once connected, and (a hearing) once the recording notice is acknowledged. */
  function refreshJoin() {
    if (stages.stage !== "check") { return; }
    $("join").disabled = !state.welcome || !state.socket || !state.socket.connected ||
      (!!record && !record.mayJoin()) || (!!hearing && !hearing.mayJoin()) ||
      (!!court && !court.mayJoin());
  }

  function alertUser(message) {
    $("call-alert").textContent = message || "";
    $("call-alert").hidden = !message;
  }

  /** Say something to screen readers (#call-live, polite): knocks, admission, mute. */
  function announce(message) {
    const live = $("call-live");
    // Cleared first: the same words twice are announced twice.
    live.textContent = "";
    setTimeout(() => { live.textContent = message || ""; }, 50);
  }

  function netStatus(message) {
    $("net-status").textContent = message || "";
    $("net-status").hidden = !message;
  }

  /** The call is over; message is the server's reason when it is not the host ending it. */
  function over(message) {
    if (message) {
      $("ended-reason").textContent = message;
      $("ended-reason").hidden = false;
      for (const el of room.querySelectorAll(".ended-default")) { el.hidden = true; }
    }
    stages.go("ended");
  }

  function fail(message) {
    $("error-text").textContent = message;
    alertUser("");
    stages.go("error");
  }

  // ---------------------------------------------------------------- joining

  function enterLobby(message) {
    $("lobby-text").textContent = message || t("lobby_told", {host: room.dataset.hostName || ""});
    stages.go("lobby");
    check.showPreview();
    emit("lobby:join", {});
  }

  function joinCall(resume) {
    state.joining = true;
    emit("call:join", {resume, ...(record ? record.joinExtras() : {}),
      ...(court ? court.joinExtras() : {})});
  }

  /** call:joined: in the call, with these peers (and the chat so far). */
  function joined({peers, chat: history}) {
    const resumed = state.inCall; // a network blip: keep the peer connections
    if (!resumed) { announce(t("live_in_call")); }
    state.inCall = true;
    state.joining = false;
    stages.go("call");
    netStatus("");
    alertUser("");
    check.showPreview();
    const ids = new Set((peers || []).map((p) => p.id));
    for (const id of new Set([...links.keys(), ...peerInfo.keys()])) {
      if (!ids.has(id)) { removePeer(id); }
    }
    for (const peer of peers || []) {
      showPeer(peer);
      if (viaServer()) { continue; }
      const link = links.get(peer.id);
      if (link && resumed) {
        link.restartIce(state.iceServers);
      } else {
        openLink(peer.id);
      }
    }
    tiles.updateAlone();
    if (viaServer()) { hearing.joined(); }
    if (!resumed) { chat.clear(); }
    for (const message of history || []) { chat.add(message, true); }
    sendMediaState();
    quality.start();
  }

  /** call:peer-joined: a new peer, or one back (resume: its connection may live on). */
  function peerJoined({peer, resume}) {
    if (!state.inCall || !peer) { return; }
    const tile = showPeer(peer);
    if (viaServer()) { return; } // its media (and tile) come with the next hearing:offer
    if (!resume || !links.has(peer.id)) {
      tile.querySelector("video").srcObject = null;
      openLink(peer.id);
    }
  }

  function showPeer(peer) {
    peerInfo.set(peer.id, peer);
    // A hearing: the tiles follow what the portal sends (hearing.js), not who is in the call.
    if (viaServer() && !tiles.of(peer.id)) { return null; }
    const tile = tiles.ensure(peer);
    tiles.setMedia(tile, peer.audio, peer.video);
    tiles.setReconnecting(peer.id, false);
    return tile;
  }

  function peerMedia({id, audio, video}) {
    const peer = peerInfo.get(id);
    if (peer) { peer.audio = audio; peer.video = video; }
    tiles.setMedia(tiles.of(id), audio, video);
  }

  /** A relayed signal: to its link, opened now when the peer is known but has none yet. */
  function signal(message) {
    if (!state.inCall || !message || viaServer()) { return; }
    let link = links.get(message.from);
    if (!link && peerInfo.has(message.from)) { link = openLink(message.from); }
    if (link) { link.handle(message); }
  }

  function openLink(peerId) {
    const old = links.get(peerId);
    if (old) { old.close(); }
    const link = new PeerLink({
      selfId: state.self.id,
      peerId,
      iceServers: state.iceServers,
      stream: media.stream,
      send: (payload) => emit("signal", payload),
      // Looked up now, not at load: the e2e tests wrap it in an init script.
      RTCPeerConnection: window.RTCPeerConnection,
      handlers: {
        track: (event) => {
          if (links.get(peerId) !== link) { return; }
          tiles.attach(peerInfo.get(peerId) || {id: peerId, name: ""}, event);
        },
        ice: (iceState) => {
          if (links.get(peerId) !== link) { return; }
          if (iceState === "disconnected" || iceState === "failed") {
            tiles.setReconnecting(peerId, true);
          } else if (iceState === "connected" || iceState === "completed") {
            tiles.setReconnecting(peerId, false);
          }
        },
      },
    });
    links.set(peerId, link);
    return link;
  }

  function removePeer(id) {
    const link = links.get(id);
    if (link) { link.close(); }
    links.delete(id);
    peerInfo.delete(id);
    if (hearing) { hearing.removed(id); }
    tiles.remove(id);
  }

  function closeAllLinks() {
    if (hearing) { hearing.stop(); }
    for (const id of new Set([...links.keys(), ...peerInfo.keys()])) { removePeer(id); }
  }

  function teardown() {
    if (record) { record.teardown(); }
    closeAllLinks();
    state.inCall = false;
    state.joining = false;
    quality.stop();
    media.stop();
    check.hidePreview();
  }

  function sendMediaState() {
    // An observer sends nothing, not even that it sends nothing (others never learn of it).
    if (room.dataset.observer === "true") { return; }
    if (state.inCall) { emit("media:state", {audio: media.audioOn, video: media.videoOn}); }
  }

  return {
    state, links, peerInfo, stages, media, isHost, t, record, hearing, court, check, chat, quality,
    tiles,
    drawStage, refreshJoin, alertUser, netStatus, announce, over, fail, enterLobby, joinCall, joined,
    peerJoined, peerMedia, signal, removePeer, closeAllLinks, sendMediaState, emit,
  };
}
