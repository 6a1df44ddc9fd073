// The room's Socket.IO connection (docs/signaling.md): who we are, and each server event
// handed to the call (call.js).
import {noticeKnocks, renderWaiting} from "./lobby.js";

/** Open the socket for the call; text: the page's strings (the lobby list needs them). */
export function connect(call, text) {
  const {state, stages, isHost, t, record, check} = call;
  const $ = (id) => document.getElementById(id);
  const room = $("room");
  const knocked = new Set(); // who was seen waiting: a knock is announced once

  if (typeof window.io !== "function") {
    check.setCheck("check-signal", "fail", t("signal_failed"));
    return;
  }
  // The guest's invite token is the last part of the page's address, /j/<token>; the page
  // does not repeat it.
  const token = (/\/j\/([^/?#]+)/.exec(location.pathname) || [])[1];
  const auth = isHost ? {appointment: Number(room.dataset.appointment)}
    : {invite: token ? decodeURIComponent(token) : ""};
  // `call` only routes: a proxy sends every socket of one call to one worker (docs/operations.md).
  const socket = window.io({auth, query: {call: room.dataset.appointment},
    reconnectionDelayMax: 5000});
  state.socket = socket;
  if (record) { record.attach(socket); } // first: its `welcome` listener runs before ours
  if (call.hearing) { call.hearing.attach(socket); } // so does a hearing's (welcome.media)
  if (call.court) { call.court.attach(socket); } // and the court procedure's (welcome.self)

  function welcome(message) {
    state.welcome = message;
    state.self = message.self;
    // ICE servers with TURN credentials come only to the host and an admitted guest (here, or
    // in lobby:state on admission); the device check probes with STUN alone until then.
    state.iceServers = message.ice_servers || [];
    call.netStatus("");
    check.setCheck("check-signal", "ok", t("signal_ok"));
    if (call.reportCheck) { call.reportCheck(); } // (again: the server forgot the old socket's)
    if (!state.iceProbed) {
      state.iceProbed = true;
      check.probeNetwork(message.ice_servers || message.stun_servers || []);
    }
    if (stages.terminal) { return; }

    if (state.inCall || state.joining) {
      // Back after a dropped connection.
      if (message.resumable) {
        call.joinCall(state.inCall); // call:joined restarts ICE on the kept connections
      } else if (isHost) {
        call.closeAllLinks();
        state.inCall = false;
        call.joinCall(false);
      } else {
        call.closeAllLinks();
        state.inCall = false;
        call.quality.stop();
        call.enterLobby(t("lobby_again"));
      }
      return;
    }
    if (stages.stage === "lobby") {
      socket.emit("lobby:join", {}); // the server forgot us with the old connection
      return;
    }
    if (!isHost && message.state === "denied") {
      stages.go("denied");
      return;
    }
    if (message.resumable) {
      // A reload in the middle of the call: straight back in with the same devices.
      call.netStatus(t("rejoining"));
      stages.go("call");
      state.mediaReady.then(() => call.joinCall(false));
      return;
    }
    call.refreshJoin();
  }

  function lobbyState({state: lobbyState, ice_servers: iceServers}) {
    if (iceServers) { state.iceServers = iceServers; } // admitted: TURN credentials now
    if (stages.stage !== "lobby") { return; }
    if (lobbyState === "admitted") {
      call.joinCall(false);
    } else if (lobbyState === "denied") {
      stages.go("denied");
    }
  }

  function error(payload) {
    const {code, message, event} = payload || {};
    switch (code) {
      case "replaced":
        call.fail(t("error_replaced"));
        return;
      case "ended":
        call.over(message);
        return;
      case "unauthorized":
        call.fail(message || t("error_unauthorized"));
        return;
      case "unknown_peer":
      case "not_in_call":
        // A signal racing a peer who just left, or our own rejoin: nothing to tell the user.
        if (event === "signal" || event === "media:state") { return; }
        if (event === "lobby:admit" || event === "lobby:deny") { return; }
        break;
      case "removed":
        call.over(message);
        return;
      case "declaration_required":
        // A hearing: the declaration must be confirmed (again) on the device check.
        state.joining = false;
        if (call.court) { call.court.declarationRefused(); }
        if (!state.inCall) { stages.go("check"); }
        break;
      case "notice_required":
        // A hearing: the notice must be acknowledged (again) on the device check.
        state.joining = false;
        if (record) { record.noticeRefused(); }
        if (!state.inCall) { stages.go("check"); }
        break;
      case "forbidden":
        if (event === "call:join" && !isHost) {
          // Not (or no longer) admitted: wait in the lobby instead.
          state.joining = false;
          state.inCall = false;
          call.closeAllLinks();
          call.enterLobby();
          return;
        }
        break;
      default:
        break;
    }
    if (call.hearing && typeof event === "string" && event.startsWith("hearing:")) {
      const text = call.hearing.errorMessage(payload);
      if (text) { call.alertUser(text); }
      return;
    }
    if (record && typeof event === "string" && event.startsWith("record:")) {
      call.alertUser(record.errorMessage(payload));
      return;
    }
    if (event === "call:join") { state.joining = false; }
    if (event === "call:end") { state.ending = false; if ($("end-call")) { $("end-call").disabled = false; } }
    call.refreshJoin();
    call.alertUser(message || t("error_generic", {message: code || "?"}));
  }

  socket.on("connect", () => { call.netStatus(""); });
  socket.on("connect_error", (err) => {
    const data = (err && err.data) || {};
    if (!socket.active) {
      // Refused by the server: the link or the session no longer works.
      if (data.code === "ended") { call.over(data.message); return; }
      call.fail(data.message || err.message || t("error_server_closed"));
      return;
    }
    if (stages.stage === "check") { check.setCheck("check-signal", "fail", t("signal_failed")); }
    else if (!stages.terminal) { call.netStatus(t("connection_lost")); }
  });
  socket.on("disconnect", (reason) => {
    if (stages.terminal) { return; }
    if (reason === "io server disconnect") {
      if (state.ending) { stages.go("ended"); return; }
      call.fail(t("error_server_closed"));
      return;
    }
    if (reason === "io client disconnect") { return; }
    if (stages.stage === "check") {
      check.setCheck("check-signal", "pending", t("signal_connecting"));
    }
    call.netStatus(t("connection_lost"));
    if (stages.stage === "check") { $("join").disabled = true; }
    for (const id of call.links.keys()) { call.tiles.setReconnecting(id, true); }
  });
  socket.on("welcome", welcome);
  socket.on("lobby:state", lobbyState);
  socket.on("lobby:list", ({waiting}) => {
    if (!isHost) { return; }
    const n = renderWaiting($("lobby-list"), $("lobby-empty"), waiting, text);
    $("lobby-panel").classList.toggle("has-waiting", n > 0);
    noticeKnocks($("lobby-list"), waiting, knocked, text, call.announce);
    room.dataset.waiting = String(n);
  });
  socket.on("call:joined", call.joined);
  socket.on("call:peer-joined", call.peerJoined);
  socket.on("call:peer-reconnecting", ({id}) => call.tiles.setReconnecting(id, true));
  socket.on("call:peer-left", ({id}) => call.removePeer(id));
  socket.on("call:peer-media", call.peerMedia);
  socket.on("call:ended", () => { stages.go("ended"); });
  socket.on("signal", call.signal);
  socket.on("chat:message", (message) => call.chat.add(message, false));
  socket.on("error", error);
}
