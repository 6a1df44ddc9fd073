// The device check before joining: the preview, the camera and microphone pickers, and what
// works (media, the portal, the network). LocalMedia (media.js) does the devices themselves.

// What the device check tells the portal (`device:check`): the media and the network checks.
const REPORTED = {"check-media": "media", "check-ice": "network"};

/**
 * media: LocalMedia; t: translated strings; isChecking(): whether the check is on screen;
 * changed(): the media changed (the call's controls follow); reported(outcome): the media or
 * network check's outcome changed ({media, network}: pending | ok | warn | fail).
 */
export function createDeviceCheck({media, t, isChecking, changed, reported = () => {}}) {
  const $ = (id) => document.getElementById(id);
  const outcome = {media: "pending", network: "pending"};

  function setCheck(id, status, message) {
    const el = $(id);
    el.dataset.state = status; // pending | ok | warn | fail
    el.textContent = message;
    const key = REPORTED[id];
    if (key && outcome[key] !== status) {
      outcome[key] = status;
      reported({...outcome});
    }
  }

  /** Our own picture, wherever the page shows it. */
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

  function hidePreview() {
    for (const id of ["preview", "local-video", "lobby-preview"]) {
      const video = $(id);
      if (video) { video.srcObject = null; }
    }
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

  function refresh() {
    const [status, message] = describeMedia();
    setCheck("check-media", status, message);
    $("retry-media").hidden = !["denied", "busy", "failed"].includes(media.audioErr) &&
      !["denied", "busy", "failed"].includes(media.videoErr);
    fillSelect($("camera-select"), "video");
    fillSelect($("mic-select"), "audio");
    showPreview();
    changed();
  }

  async function start() {
    setCheck("check-media", "pending", t("media_asking"));
    await media.start();
    refresh();
    if (isChecking()) { media.startMeter($("mic-level")); }
  }

  /** Which kinds of ICE candidates the portal's ICE servers give this network. */
  async function probeNetwork(iceServers) {
    setCheck("check-ice", "pending", t("ice_testing"));
    try {
      if (!iceServers.length) {
        // Still gather host candidates: a browser that cannot do WebRTC fails here.
        await probeIce([], 3000);
        setCheck("check-ice", "ok", t("ice_direct"));
        return;
      }
      const r = await probeIce(iceServers);
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
    refresh();
  });
  $("mic-select").addEventListener("change", async (e) => {
    e.target.disabled = true;
    await media.choose("audio", e.target.value);
    refresh();
  });
  $("retry-media").addEventListener("click", async () => {
    media.prefs.useAudio = media.prefs.useVideo = true;
    media.stop();
    await start();
  });

  return {setCheck, showPreview, hidePreview, refresh, start, probeNetwork,
    /** The outcome so far, e.g. for a socket that just connected. */
    get outcome() { return {...outcome}; }};
}

/**
 * A throwaway peer connection that gathers ICE candidates with the given servers and
 * reports which kinds it found: {host, srflx, relay, wantsStun, wantsTurn}.
 */
export async function probeIce(iceServers, timeoutMs = 6000) {
  const servers = iceServers || [];
  const urls = servers.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
  const result = {
    host: false, srflx: false, relay: false,
    wantsStun: urls.some((u) => /^stuns?:/i.test(u)),
    wantsTurn: urls.some((u) => /^turns?:/i.test(u)),
  };
  const pc = new RTCPeerConnection({iceServers: servers});
  try {
    pc.createDataChannel("probe");
    const done = new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      const finish = () => { clearTimeout(timer); resolve(); };
      pc.addEventListener("icecandidate", ({candidate}) => {
        if (!candidate) { finish(); return; }
        const type = candidate.type || ((/ typ (\w+)/.exec(candidate.candidate) || [])[1]);
        if (type in result) { result[type] = true; }
        if (result.relay && (result.srflx || !result.wantsStun)) { finish(); }
      });
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") { finish(); }
      });
    });
    await pc.setLocalDescription(await pc.createOffer());
    await done;
  } finally {
    pc.close();
  }
  return result;
}

/** A short tone on the speaker (an observer's device check: no microphone, no camera). */
/**
 * A short tone through the speaker. Resolves with the tone's peak level as it reached the
 * output (0 when the browser made no sound: no audio output, or a context that cannot start);
 * whether the person heard it only they can tell.
 */
export async function playTestTone(ms = 600) {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) { return 0; }
  const ctx = new Ctx();
  try {
    await ctx.resume();
    const tone = ctx.createOscillator();
    const gain = ctx.createGain();
    const probe = ctx.createAnalyser();
    tone.frequency.value = 660;
    gain.gain.value = 0.2;
    tone.connect(gain).connect(ctx.destination);
    gain.connect(probe);
    tone.start();
    tone.stop(ctx.currentTime + ms / 1000);
    await new Promise((resolve) => setTimeout(resolve, Math.min(ms / 2, 200)));
    const samples = new Float32Array(probe.fftSize);
    probe.getFloatTimeDomainData(samples);
    const peak = samples.reduce((most, v) => Math.max(most, Math.abs(v)), 0);
    await new Promise((resolve) => tone.addEventListener("ended", resolve, {once: true}));
    return peak;
  } finally {
    ctx.close().catch(() => {});
  }
}
