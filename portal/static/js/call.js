// The consult room: device check, waiting room, the call, and its ends. Speaks the Socket.IO
// protocol of docs/signaling.md. The current stage is mirrored on document.body.dataset.stage
// and, with the peer connections, on window.samtale for tests and debugging.
"use strict";
(function () {
  const NS = window.SamtaleCall;
  const room = document.getElementById("room");
  if (!room || !NS) { return; }

  const TEXT = JSON.parse(document.getElementById("call-text").textContent);
  const format = (template, vars) => String(template).replace(/\{(\w+)\}/g, (whole, key) =>
    vars && Object.prototype.hasOwnProperty.call(vars, key) ? String(vars[key]) : whole);
  const t = (key, vars) => format(TEXT[key] !== undefined ? TEXT[key] : key, vars);
  const $ = (id) => document.getElementById(id);

  const isHost = room.dataset.role === "host";
  const hostName = room.dataset.hostName || "";
  const TERMINAL = new Set(["denied", "ended", "left", "error"]);
  const wide = window.matchMedia("(min-width: 900px)");

  const media = new NS.LocalMedia();
  const links = new Map(); // peer id -> PeerLink
  const peerInfo = new Map(); // peer id -> Peer {id, name, role, audio, video}
  const seenChat = new Set();

  const state = {
    stage: null,
    socket: null,
    welcome: null,
    self: null,
    iceServers: [],
    iceProbed: false,
    mediaReady: null, // promise of the first media start
    joining: false, // call:join sent, call:joined not yet received
    inCall: false,
    ending: false,
    unread: 0,
    qualityTimer: null,
  };

  // For tests and the curious: the peer connections by participant id, and the stage.
  const api = (window.samtale = {peers: new Map(), stage: null, media, links, state});

  // Recording (record.js): consent, the indicator, publishing to the recorder.
  const record = window.SamtaleRecord ? window.SamtaleRecord.create({
    api, media, t, isHost,
    alertUser: (message) => alertUser(message),
    inCall: () => state.inCall && state.stage === "call",
    refreshJoin: () => refreshJoin(),
  }) : null;

  // ---------------------------------------------------------------- stages and messages

  function setStage(stage) {
    if (state.stage === stage) { return; }
    state.stage = stage;
    api.stage = stage;
    document.body.dataset.stage = stage;
    for (const el of room.querySelectorAll("[data-stages]")) {
      el.hidden = !el.dataset.stages.split(" ").includes(stage);
    }
    if (stage !== "check") { media.stopMeter(); }
    if (stage === "call") {
      setChatOpen(wide.matches);
    }
    if (TERMINAL.has(stage)) {
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
    if (state.stage !== "check") { return; }
    $("join").disabled = !state.welcome || !state.socket || !state.socket.connected ||
      (!!record && !record.mayJoin());
  }

  function alertUser(message) {
    const el = $("call-alert");
    el.textContent = message || "";
    el.hidden = !message;
  }

  function netStatus(message) {
    const el = $("net-status");
    el.textContent = message || "";
    el.hidden = !message;
  }

  /** The call is over; message is the server's reason when it is not the host ending it. */
  function over(message) {
    if (message) {
      $("ended-reason").textContent = message;
      $("ended-reason").hidden = false;
      for (const el of room.querySelectorAll(".ended-default")) { el.hidden = true; }
    }
    setStage("ended");
  }

  function fail(message) {
    $("error-text").textContent = message;
    alertUser("");
    setStage("error");
  }

  function setCheck(id, status, message) {
    const el = $(id);
    el.dataset.state = status; // pending | ok | warn | fail
    el.textContent = message;
  }

  // ---------------------------------------------------------------- device check

  function showPreview() {
    for (const id of ["preview", "local-video", "lobby-preview"]) {
      const video = $(id);
      if (!video) { continue; }
      video.srcObject = media.videoTrack ? media.stream : null;
      video.classList.toggle("mirror", media.facing !== "environment");
      video.classList.toggle("off", !media.videoOn);
      if (media.videoTrack) { video.play().catch(() => {}); }
    }
    $("preview-empty").hidden = !!media.videoTrack;
  }

  function describeMedia() {
    const a = media.audioErr, v = media.videoErr;
    if (a === "unsupported") { return ["fail", t("media_unsupported")]; }
    if (!a && !v) { return ["ok", t("media_ok")]; }
    if (a === "denied" || v === "denied") {
      return [media.audioTrack || media.videoTrack ? "warn" : "fail", t("media_denied")];
    }
    if (a === "busy" || v === "busy") { return ["warn", t("media_busy")]; }
    if (a === "off" && v === "off") { return ["warn", t("media_all_off")]; }
    if (v === "off" && !a) { return ["ok", t("media_camera_off")]; }
    if (a === "off" && !v) { return ["warn", t("media_mic_off")]; }
    if (!a && v === "missing") { return ["warn", t("media_audio_only")]; }
    if (a === "missing" && !v) { return ["warn", t("media_video_only")]; }
    if (a === "missing" && v === "missing") { return ["warn", t("media_none")]; }
    const err = media.lastError;
    return ["warn", t("media_failed", {error: (err && (err.message || err.name)) || "?"})];
  }

  function cameraLabel(device, n) {
    const label = device.label || "";
    if (/front|user/i.test(label) && /facing/i.test(label)) { return t("camera_front"); }
    if (/back|rear|environment/i.test(label) && /facing/i.test(label)) { return t("camera_back"); }
    return label || t("camera_n", {n});
  }

  function fillSelect(select, kind) {
    const devices = media.devices(kind);
    const current = kind === "audio" ? media.audioTrack : media.videoTrack;
    const currentId = current ? current.getSettings().deviceId : "";
    const options = devices.map((d, i) => {
      const o = document.createElement("option");
      o.value = d.deviceId;
      o.textContent = kind === "video" ? cameraLabel(d, i + 1) : (d.label || t("mic_n", {n: i + 1}));
      return o;
    });
    const none = document.createElement("option");
    none.value = "";
    none.textContent = t(kind === "video" ? "camera_none" : "mic_none");
    select.replaceChildren(...options, none);
    select.value = current ? currentId : "";
    if (current && select.value !== currentId && options.length) { select.value = options[0].value; }
    select.disabled = devices.length === 0;
  }

  function refreshCheckUi() {
    const [status, message] = describeMedia();
    setCheck("check-media", status, message);
    $("retry-media").hidden = !["denied", "busy", "failed"].includes(media.audioErr) &&
      !["denied", "busy", "failed"].includes(media.videoErr);
    fillSelect($("camera-select"), "video");
    fillSelect($("mic-select"), "audio");
    showPreview();
    updateControls();
  }

  async function startMedia() {
    setCheck("check-media", "pending", t("media_asking"));
    await media.start();
    refreshCheckUi();
    if (state.stage === "check") { media.startMeter($("mic-level")); }
  }

  async function probeNetwork() {
    setCheck("check-ice", "pending", t("ice_testing"));
    if (!state.iceServers.length) {
      // Still gather host candidates: a browser that cannot do WebRTC fails here.
      try {
        await NS.probeIce([], 3000);
        setCheck("check-ice", "ok", t("ice_direct"));
      } catch (err) {
        setCheck("check-ice", "fail", t("ice_failed", {error: err.message || err.name}));
      }
      return;
    }
    try {
      const r = await NS.probeIce(state.iceServers);
      const found = ["host", "srflx", "relay"].filter((k) => r[k]).map((k) => t("ice_" + k));
      const missing = [];
      if (r.wantsStun && !r.srflx) { missing.push(t("ice_srflx")); }
      if (r.wantsTurn && !r.relay) { missing.push(t("ice_relay")); }
      if (missing.length) {
        setCheck("check-ice", "warn", t("ice_missing", {missing: missing.join(", ")}));
      } else {
        setCheck("check-ice", "ok", t("ice_ok", {found: found.join(", ")}));
      }
    } catch (err) {
      setCheck("check-ice", "fail", t("ice_failed", {error: err.message || err.name}));
    }
  }

  $("camera-select").addEventListener("change", async (e) => {
    e.target.disabled = true;
    await media.choose("video", e.target.value);
    refreshCheckUi();
  });
  $("mic-select").addEventListener("change", async (e) => {
    e.target.disabled = true;
    await media.choose("audio", e.target.value);
    refreshCheckUi();
  });
  $("retry-media").addEventListener("click", async () => {
    media.prefs.useAudio = media.prefs.useVideo = true;
    media.stop();
    await startMedia();
  });

  $("join").addEventListener("click", async () => {
    if (!state.socket || !state.welcome || (record && !record.mayJoin())) { return; }
    $("join").disabled = true;
    await state.mediaReady;
    media.savePrefs();
    if (isHost) {
      joinCall(false);
    } else {
      enterLobby();
    }
  });

  // ---------------------------------------------------------------- waiting room (guest)

  function enterLobby(message) {
    $("lobby-text").textContent = message || t("lobby_told", {host: hostName});
    setStage("lobby");
    showPreview();
    state.socket.emit("lobby:join", {});
  }

  if ($("lobby-leave")) {
    $("lobby-leave").addEventListener("click", () => {
      state.socket.emit("lobby:leave", {});
      setStage("left");
    });
  }

  // ---------------------------------------------------------------- the call

  function joinCall(resume) {
    state.joining = true;
    state.socket.emit("call:join", {resume, ...(record ? record.joinExtras() : {})});
  }

  function onJoined({peers, chat}) {
    const resumed = state.inCall; // a network blip: keep the peer connections
    state.inCall = true;
    state.joining = false;
    setStage("call");
    netStatus("");
    alertUser("");
    showPreview();
    const ids = new Set((peers || []).map((p) => p.id));
    for (const id of [...links.keys()]) {
      if (!ids.has(id)) { removePeer(id); }
    }
    for (const peer of peers || []) {
      peerInfo.set(peer.id, peer);
      const tile = ensureTile(peer);
      setTileMedia(tile, peer.audio, peer.video);
      setTileReconnecting(peer.id, false);
      const link = links.get(peer.id);
      if (link && resumed) {
        link.restartIce(state.iceServers);
      } else {
        openLink(peer.id);
      }
    }
    updateAlone();
    if (!resumed) { $("chat-log").replaceChildren(); seenChat.clear(); }
    for (const message of chat || []) { addChat(message, true); }
    sendMediaState();
    startQuality();
  }

  function openLink(peerId) {
    const old = links.get(peerId);
    if (old) { old.close(); }
    const link = new NS.PeerLink({
      selfId: state.self.id,
      peerId,
      iceServers: state.iceServers,
      stream: media.stream,
      send: (payload) => { if (state.socket) { state.socket.emit("signal", payload); } },
      handlers: {
        track: (event) => attachRemote(peerId, link, event),
        ice: (iceState) => {
          if (links.get(peerId) !== link) { return; }
          if (iceState === "disconnected" || iceState === "failed") {
            setTileReconnecting(peerId, true);
          } else if (iceState === "connected" || iceState === "completed") {
            setTileReconnecting(peerId, false);
          }
        },
      },
    });
    links.set(peerId, link);
    api.peers.set(peerId, link.pc);
    return link;
  }

  function removePeer(id) {
    const link = links.get(id);
    if (link) { link.close(); }
    links.delete(id);
    api.peers.delete(id);
    peerInfo.delete(id);
    const tile = tileOf(id);
    if (tile) {
      const video = tile.querySelector("video");
      video.srcObject = null;
      tile.remove();
    }
    updateAlone();
  }

  function tileOf(id) {
    return $("tiles").querySelector(`[data-peer-tile="${Number(id)}"]`);
  }

  function ensureTile(peer) {
    let tile = tileOf(peer.id);
    if (!tile) {
      tile = document.createElement("figure");
      tile.className = "tile";
      tile.dataset.peerTile = String(peer.id);
      const video = document.createElement("video");
      video.className = "remote";
      video.autoplay = true;
      video.playsInline = true;
      video.setAttribute("playsinline", "");
      video.dataset.peer = String(peer.id);
      const initials = document.createElement("div");
      initials.className = "initials";
      initials.setAttribute("aria-hidden", "true");
      const caption = document.createElement("figcaption");
      const name = document.createElement("span");
      name.className = "name";
      const badges = document.createElement("span");
      badges.className = "badges";
      for (const [cls, key] of [["b-muted", "muted"], ["b-camera", "camera_is_off"],
        ["b-reconnecting", "reconnecting"]]) {
        const badge = document.createElement("span");
        badge.className = "badge " + cls;
        badge.textContent = t(key);
        badge.hidden = true;
        badges.append(badge);
      }
      caption.append(name, badges);
      tile.append(video, initials, caption);
      $("tiles").append(tile);
    }
    const label = peer.name || "";
    tile.querySelector(".name").textContent = label;
    tile.querySelector(".initials").textContent = label.split(/\s+/).filter(Boolean)
      .slice(0, 2).map((w) => w[0]).join("").toUpperCase();
    tile.querySelector("video").setAttribute("aria-label", label);
    updateAlone();
    return tile;
  }

  function setTileMedia(tile, audio, video) {
    if (!tile) { return; }
    tile.dataset.audio = audio === false ? "off" : "on";
    tile.dataset.video = video === false ? "off" : "on";
    tile.querySelector(".b-muted").hidden = audio !== false;
    tile.querySelector(".b-camera").hidden = video !== false;
  }

  function setTileReconnecting(id, on) {
    const tile = tileOf(id);
    if (!tile) { return; }
    tile.dataset.reconnecting = on ? "true" : "false";
    tile.querySelector(".b-reconnecting").hidden = !on;
  }

  function updateAlone() {
    $("alone").hidden = $("tiles").querySelector(".tile") !== null;
    $("tiles").dataset.count = String($("tiles").querySelectorAll(".tile").length);
  }

  function attachRemote(peerId, link, event) {
    if (links.get(peerId) !== link) { return; }
    const tile = tileOf(peerId) || ensureTile(peerInfo.get(peerId) || {id: peerId, name: ""});
    const video = tile.querySelector("video");
    let stream = event.streams && event.streams[0];
    if (!stream) {
      stream = video.srcObject instanceof MediaStream ? video.srcObject : new MediaStream();
      stream.addTrack(event.track);
    }
    if (video.srcObject !== stream) { video.srcObject = stream; }
    playRemote(video);
  }

  function playRemote(video) {
    const attempt = video.play();
    if (!attempt) { return; }
    attempt.catch((err) => {
      if (err && err.name === "NotAllowedError") {
        // No user gesture yet (a reloaded page): play muted, offer to turn the sound on.
        video.muted = true;
        video.play().catch(() => {});
        $("sound-on").hidden = false;
      }
    });
  }

  $("sound-on").addEventListener("click", () => {
    for (const video of $("tiles").querySelectorAll("video.remote")) {
      video.muted = false;
      video.play().catch(() => {});
    }
    $("sound-on").hidden = true;
  });

  // Local tracks swapped (another camera, a device unplugged): send the new ones.
  media.ontrackchange = (kind, track) => {
    for (const link of links.values()) {
      link.replaceTrack(kind, track).catch((err) => console.warn("samtale: replaceTrack", err));
    }
    if (record) { record.replaceTrack(kind, track); }
    showPreview();
    updateControls();
    if (state.inCall) { sendMediaState(); }
  };

  function sendMediaState() {
    if (state.socket && state.inCall) {
      state.socket.emit("media:state", {audio: media.audioOn, video: media.videoOn});
    }
  }

  function setControl(button, on, label) {
    button.dataset.on = on ? "true" : "false";
    button.querySelector(".ctl-label").textContent = label;
  }

  function updateControls() {
    const mute = $("mute"), camera = $("camera");
    setControl(mute, media.audioOn, media.audioOn ? t("mute") : t("unmute"));
    mute.disabled = !media.audioTrack;
    setControl(camera, media.videoOn, media.videoOn ? t("camera_stop") : t("camera_start"));
    camera.disabled = !media.videoTrack;
    const cams = media.devices("video").length;
    const coarse = window.matchMedia("(pointer: coarse)").matches;
    $("switch-camera").hidden = !media.videoTrack || (cams < 2 && !coarse);
    $("local-video").classList.toggle("off", !media.videoOn);
  }

  $("mute").addEventListener("click", () => {
    media.setEnabled("audio", !media.audioOn);
    updateControls();
    sendMediaState();
  });
  $("camera").addEventListener("click", () => {
    media.setEnabled("video", !media.videoOn);
    updateControls();
    sendMediaState();
  });
  $("switch-camera").addEventListener("click", async () => {
    $("switch-camera").disabled = true;
    await media.switchCamera();
    $("switch-camera").disabled = false;
    showPreview();
    updateControls();
  });
  $("leave").addEventListener("click", () => {
    if (state.socket && state.inCall) { state.socket.emit("call:leave", {}); }
    setStage("left");
  });
  if ($("end-call")) {
    $("end-call").addEventListener("click", () => {
      // Ending cannot be undone: the appointment is over and every link stops working.
      if (!window.confirm(t("confirm_end"))) { return; }
      state.ending = true;
      $("end-call").disabled = true;
      state.socket.emit("call:end", {});
    });
  }
  $("rejoin").addEventListener("click", () => location.reload());
  $("error-reload").addEventListener("click", () => location.reload());

  // ---------------------------------------------------------------- chat

  function setChatOpen(open) {
    room.dataset.chat = open ? "open" : "closed";
    $("chat-toggle").setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      state.unread = 0;
      $("chat-unread").hidden = true;
      const log = $("chat-log");
      log.scrollTop = log.scrollHeight;
    }
  }

  $("chat-toggle").addEventListener("click", () => {
    const open = room.dataset.chat !== "open";
    setChatOpen(open);
    if (open) { $("chat-input").focus(); }
  });
  $("chat-close").addEventListener("click", () => { setChatOpen(false); $("chat-toggle").focus(); });

  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("chat-input");
    const text = input.value.trim();
    if (!text || !state.socket || !state.inCall) { return; }
    state.socket.emit("chat:send", {text: text.slice(0, 2000)});
    input.value = "";
  });

  function addChat(message, fromHistory) {
    if (!message || seenChat.has(message.id)) { return; }
    seenChat.add(message.id);
    const from = message.from || {};
    const mine = state.self && from.id === state.self.id;
    const li = document.createElement("li");
    li.className = mine ? "mine" : "theirs";
    li.dataset.from = String(from.id);
    li.dataset.id = String(message.id);
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = mine ? t("you") : (from.name || "");
    const when = document.createElement("time");
    const sent = new Date(message.sent_at);
    if (!Number.isNaN(sent.getTime())) {
      when.dateTime = message.sent_at;
      when.textContent = sent.toLocaleTimeString(document.documentElement.lang || undefined,
        {hour: "2-digit", minute: "2-digit"});
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
      state.unread += 1;
      $("chat-unread").textContent = String(state.unread);
      $("chat-unread").hidden = false;
    }
  }

  // ---------------------------------------------------------------- connection quality

  function startQuality() {
    if (state.qualityTimer) { return; }
    state.qualityTimer = setInterval(updateQuality, 2000);
  }

  async function updateQuality() {
    const el = $("quality");
    const samples = [];
    for (const link of links.values()) {
      try {
        const s = await link.sample();
        if (s) { samples.push(s); }
      } catch (e) { /* closed meanwhile */ }
    }
    // The first sample of a connection only sets the baseline for loss and bitrate.
    const usable = samples.filter((s) => s.kbps !== null);
    if (!usable.length) { el.hidden = true; delete el.dataset.level; return; }
    // The worst link decides.
    const rtt = Math.max(...usable.map((s) => s.rtt || 0));
    const loss = Math.max(...usable.map((s) => s.loss || 0));
    const kbps = Math.min(...usable.map((s) => s.kbps));
    let level = "good";
    if (rtt > 400 || loss > 8 || kbps < 30) { level = "poor"; }
    else if (rtt > 150 || loss > 2 || kbps < 150) { level = "fair"; }
    el.dataset.level = level;
    el.textContent = t("quality", {
      level: t("quality_" + level),
      rtt: rtt,
      loss: loss < 1 && loss > 0 ? loss.toFixed(1) : Math.round(loss),
      rate: Math.round(kbps),
    });
    el.title = t("quality_label");
    el.hidden = false;
  }

  // ---------------------------------------------------------------- teardown

  function closeAllLinks() {
    for (const id of [...links.keys()]) { removePeer(id); }
  }

  function teardown() {
    if (record) { record.teardown(); }
    closeAllLinks();
    state.inCall = false;
    state.joining = false;
    if (state.qualityTimer) { clearInterval(state.qualityTimer); state.qualityTimer = null; }
    media.stop();
    for (const id of ["preview", "local-video", "lobby-preview"]) {
      const video = $(id);
      if (video) { video.srcObject = null; }
    }
  }

  // ---------------------------------------------------------------- signaling

  function onWelcome(welcome) {
    state.welcome = welcome;
    state.self = welcome.self;
    api.self = welcome.self;
    state.iceServers = welcome.ice_servers || [];
    netStatus("");
    setCheck("check-signal", "ok", t("signal_ok"));
    if (!state.iceProbed) { state.iceProbed = true; probeNetwork(); }
    if (TERMINAL.has(state.stage)) { return; }

    if (state.inCall || state.joining) {
      // Back after a dropped connection.
      if (welcome.resumable) {
        joinCall(state.inCall); // call:joined restarts ICE on the kept connections
      } else if (isHost) {
        closeAllLinks();
        state.inCall = false;
        joinCall(false);
      } else {
        closeAllLinks();
        state.inCall = false;
        if (state.qualityTimer) { clearInterval(state.qualityTimer); state.qualityTimer = null; }
        enterLobby(t("lobby_again"));
      }
      return;
    }
    if (state.stage === "lobby") {
      state.socket.emit("lobby:join", {}); // the server forgot us with the old connection
      return;
    }
    if (!isHost && welcome.state === "denied") {
      setStage("denied");
      return;
    }
    if (welcome.resumable) {
      // A reload in the middle of the call: straight back in with the same devices.
      netStatus(t("rejoining"));
      setStage("call");
      state.mediaReady.then(() => joinCall(false));
      return;
    }
    refreshJoin();
  }

  function onLobbyState({state: lobbyState}) {
    if (state.stage !== "lobby") { return; }
    if (lobbyState === "admitted") {
      joinCall(false);
    } else if (lobbyState === "denied") {
      setStage("denied");
    }
  }

  function onError(payload) {
    const {code, message, event} = payload || {};
    switch (code) {
      case "replaced":
        fail(t("error_replaced"));
        return;
      case "ended":
        over(message);
        return;
      case "unauthorized":
        fail(message || t("error_unauthorized"));
        return;
      case "unknown_peer":
      case "not_in_call":
        // A signal racing a peer who just left, or our own rejoin: nothing to tell the user.
        if (event === "signal" || event === "media:state") { return; }
        if (event === "lobby:admit" || event === "lobby:deny") { return; }
        break;
      case "notice_required":
        // A hearing: the notice must be acknowledged (again) on the device check.
        state.joining = false;
        if (record) { record.noticeRefused(); }
        if (!state.inCall) { setStage("check"); }
        break;
      case "forbidden":
        if (event === "call:join" && !isHost) {
          // Not (or no longer) admitted: wait in the lobby instead.
          state.joining = false;
          state.inCall = false;
          closeAllLinks();
          enterLobby();
          return;
        }
        break;
      default:
        break;
    }
    if (record && typeof event === "string" && event.startsWith("record:")) {
      alertUser(record.errorMessage(payload));
      return;
    }
    if (event === "call:join") { state.joining = false; }
    if (event === "call:end") { state.ending = false; if ($("end-call")) { $("end-call").disabled = false; } }
    refreshJoin();
    alertUser(message || t("error_generic", {message: code || "?"}));
  }

  function connect() {
    if (typeof window.io !== "function") {
      setCheck("check-signal", "fail", t("signal_failed"));
      return;
    }
    // The guest's invite token is the last part of the page's address, /j/<token>; the page
    // does not repeat it.
    const token = (/\/j\/([^/?#]+)/.exec(location.pathname) || [])[1];
    const auth = isHost ? {appointment: Number(room.dataset.appointment)}
      : {invite: token ? decodeURIComponent(token) : ""};
    const socket = window.io({auth, reconnectionDelayMax: 5000});
    state.socket = socket;
    api.socket = socket;
    if (record) { record.attach(socket); } // first: its `welcome` listener runs before ours

    socket.on("connect", () => { netStatus(""); });
    socket.on("connect_error", (err) => {
      const data = (err && err.data) || {};
      if (!socket.active) {
        // Refused by the server: the link or the session no longer works.
        if (data.code === "ended") { over(data.message); return; }
        fail(data.message || err.message || t("error_server_closed"));
        return;
      }
      if (state.stage === "check") { setCheck("check-signal", "fail", t("signal_failed")); }
      else if (!TERMINAL.has(state.stage)) { netStatus(t("connection_lost")); }
    });
    socket.on("disconnect", (reason) => {
      if (TERMINAL.has(state.stage)) { return; }
      if (reason === "io server disconnect") {
        if (state.ending) { setStage("ended"); return; }
        fail(t("error_server_closed"));
        return;
      }
      if (reason === "io client disconnect") { return; }
      if (state.stage === "check") { setCheck("check-signal", "pending", t("signal_connecting")); }
      netStatus(t("connection_lost"));
      if (state.stage === "check") { $("join").disabled = true; }
      for (const id of links.keys()) { setTileReconnecting(id, true); }
    });
    socket.on("welcome", onWelcome);
    socket.on("lobby:state", onLobbyState);
    socket.on("lobby:list", ({waiting}) => {
      if (!isHost) { return; }
      const n = window.SamtaleLobby.render($("lobby-list"), $("lobby-empty"), waiting, TEXT);
      $("lobby-panel").classList.toggle("has-waiting", n > 0);
      room.dataset.waiting = String(n);
    });
    socket.on("call:joined", onJoined);
    socket.on("call:peer-joined", ({peer, resume}) => {
      if (!state.inCall || !peer) { return; }
      peerInfo.set(peer.id, peer);
      const tile = ensureTile(peer);
      setTileMedia(tile, peer.audio, peer.video);
      setTileReconnecting(peer.id, false);
      if (!resume || !links.has(peer.id)) {
        const video = tile.querySelector("video");
        video.srcObject = null;
        openLink(peer.id);
      }
    });
    socket.on("call:peer-reconnecting", ({id}) => setTileReconnecting(id, true));
    socket.on("call:peer-left", ({id}) => removePeer(id));
    socket.on("call:peer-media", ({id, audio, video}) => {
      const peer = peerInfo.get(id);
      if (peer) { peer.audio = audio; peer.video = video; }
      setTileMedia(tileOf(id), audio, video);
    });
    socket.on("call:ended", () => {
      setStage("ended");
    });
    socket.on("signal", (message) => {
      if (!state.inCall || !message) { return; }
      let link = links.get(message.from);
      if (!link && peerInfo.has(message.from)) { link = openLink(message.from); }
      if (link) { link.handle(message); }
    });
    socket.on("chat:message", (message) => addChat(message, false));
    socket.on("error", onError);
  }

  // ---------------------------------------------------------------- start

  wide.addEventListener("change", () => { if (state.stage === "call") { setChatOpen(wide.matches); } });
  setStage("check");
  setCheck("check-signal", "pending", t("signal_connecting"));
  if (isHost) { window.SamtaleLobby.wire($("lobby-list"), () => state.socket); }
  state.mediaReady = startMedia().catch((err) => {
    console.warn("samtale: media", err);
    refreshCheckUi();
  });
  connect();
})();
