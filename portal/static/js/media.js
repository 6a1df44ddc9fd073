// Local media: the camera and microphone, and switching between devices. The chosen devices
// are kept in sessionStorage so a reloaded page gets the same ones.
import {LevelMeter} from "./meter.js";

const STORE = "samtale.media";

function loadPrefs() {
  try { return JSON.parse(sessionStorage.getItem(STORE) || "{}") || {}; } catch (e) { return {}; }
}

/** The error names of getUserMedia, sorted into what we tell the user. */
export function classify(err) {
  const name = (err && err.name) || "Error";
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
    return "denied";
  }
  if (name === "NotFoundError" || name === "DevicesNotFoundError" ||
      name === "OverconstrainedError") { return "missing"; }
  if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") {
    return "busy";
  }
  return "failed";
}

export class LocalMedia {
  constructor() {
    /** The one stream with at most one audio and one video track; peers send its tracks. */
    this.stream = new MediaStream();
    /** {audioId, videoId, useAudio, useVideo, facing, audioOn, videoOn} */
    this.prefs = loadPrefs();
    /** Called as (kind, newTrack|null, oldTrack|null) whenever a track is swapped. */
    this.ontrackchange = null;
    this.audioErr = null; // "denied" | "missing" | "busy" | "failed" | "off" | null
    this.videoErr = null;
    this.lastError = null;
    this._meter = null;
    this._devices = [];
  }

  get supported() { return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia); }
  get audioTrack() { return this.stream.getAudioTracks()[0] || null; }
  get videoTrack() { return this.stream.getVideoTracks()[0] || null; }
  get audioOn() { const t = this.audioTrack; return !!t && t.enabled; }
  get videoOn() { const t = this.videoTrack; return !!t && t.enabled; }

  savePrefs() {
    try { sessionStorage.setItem(STORE, JSON.stringify(this.prefs)); } catch (e) { /* private mode */ }
  }

  constraints(kind, exactId) {
    if (kind === "audio") {
      const c = {echoCancellation: true, noiseSuppression: true, autoGainControl: true};
      if (exactId) { c.deviceId = {exact: exactId}; }
      else if (this.prefs.audioId) { c.deviceId = {ideal: this.prefs.audioId}; }
      return c;
    }
    const c = {width: {ideal: 1280}, height: {ideal: 720}, frameRate: {ideal: 30, max: 30}};
    if (exactId) { c.deviceId = {exact: exactId}; }
    else if (this.prefs.videoId) { c.deviceId = {ideal: this.prefs.videoId}; }
    else if (this.prefs.facing) { c.facingMode = {ideal: this.prefs.facing}; }
    return c;
  }

  /** Ask for both devices (as the saved preferences say); fall back to one when one fails. */
  async start() {
    this.audioErr = this.videoErr = null;
    if (!this.supported) {
      this.audioErr = this.videoErr = "unsupported";
      return;
    }
    const wantAudio = this.prefs.useAudio !== false;
    const wantVideo = this.prefs.useVideo !== false;
    if (!wantAudio) { this.audioErr = "off"; }
    if (!wantVideo) { this.videoErr = "off"; }
    if (!wantAudio && !wantVideo) { await this.refreshDevices(); return; }
    let got = null;
    try {
      got = await navigator.mediaDevices.getUserMedia({
        audio: wantAudio ? this.constraints("audio") : false,
        video: wantVideo ? this.constraints("video") : false,
      });
    } catch (err) {
      this.lastError = err;
      if (classify(err) === "denied" && !(wantAudio && wantVideo)) {
        if (wantAudio) { this.audioErr = "denied"; }
        if (wantVideo) { this.videoErr = "denied"; }
      } else {
        // Try each kind alone: a laptop without a camera still has a microphone.
        got = new MediaStream();
        for (const kind of ["audio", "video"]) {
          if ((kind === "audio" && !wantAudio) || (kind === "video" && !wantVideo)) { continue; }
          try {
            const one = await navigator.mediaDevices.getUserMedia({[kind]: this.constraints(kind)});
            for (const track of one.getTracks()) { got.addTrack(track); }
          } catch (err2) {
            this.lastError = err2;
            this[kind + "Err"] = classify(err2);
          }
        }
      }
    }
    if (got) {
      for (const track of got.getTracks()) { this._adopt(track); }
    }
    if (this.prefs.audioOn === false && this.audioTrack) { this.audioTrack.enabled = false; }
    if (this.prefs.videoOn === false && this.videoTrack) { this.videoTrack.enabled = false; }
    this._remember();
    await this.refreshDevices();
  }

  /** Put a track into the stream in place of the one of its kind. */
  _adopt(track) {
    const old = track.kind === "audio" ? this.audioTrack : this.videoTrack;
    if (old === track) { return; }
    if (old) { this.stream.removeTrack(old); old.stop(); }
    this.stream.addTrack(track);
    track.addEventListener("ended", () => {
      // Unplugged, or the OS took the device away.
      if (this.stream.getTracks().includes(track)) {
        this.stream.removeTrack(track);
        if (this.ontrackchange) { this.ontrackchange(track.kind, null, track); }
      }
    });
    if (this.ontrackchange) { this.ontrackchange(track.kind, track, old); }
    if (track.kind === "audio" && this._meter) { this._meter.attach(track); }
  }

  _drop(kind) {
    const old = kind === "audio" ? this.audioTrack : this.videoTrack;
    if (!old) { return; }
    this.stream.removeTrack(old);
    old.stop();
    if (this.ontrackchange) { this.ontrackchange(kind, null, old); }
  }

  _remember() {
    const a = this.audioTrack, v = this.videoTrack;
    if (a) { this.prefs.audioId = a.getSettings().deviceId || this.prefs.audioId; }
    if (v) {
      const s = v.getSettings();
      this.prefs.videoId = s.deviceId || this.prefs.videoId;
      if (s.facingMode) { this.prefs.facing = s.facingMode; } else { delete this.prefs.facing; }
    }
    this.savePrefs();
  }

  /** The device's facing mode, to decide whether the preview is mirrored. */
  get facing() {
    const v = this.videoTrack;
    return (v && v.getSettings().facingMode) || "user";
  }

  async refreshDevices() {
    try {
      this._devices = this.supported && navigator.mediaDevices.enumerateDevices
        ? await navigator.mediaDevices.enumerateDevices() : [];
    } catch (e) {
      this._devices = [];
    }
    return this._devices;
  }

  devices(kind) {
    return this._devices.filter((d) => d.kind === kind + "input" && d.deviceId);
  }

  /**
   * Use another device of a kind (deviceId), or none ("" turns that kind off).
   * Keeps the mute / camera-off state of the replaced track.
   */
  async choose(kind, deviceId) {
    const old = kind === "audio" ? this.audioTrack : this.videoTrack;
    const wasEnabled = old ? old.enabled : this.prefs[kind + "On"] !== false;
    if (!deviceId) {
      this._drop(kind);
      this.prefs[kind === "audio" ? "useAudio" : "useVideo"] = false;
      this[kind + "Err"] = "off";
      this.savePrefs();
      return true;
    }
    this.prefs[kind === "audio" ? "useAudio" : "useVideo"] = true;
    if (kind === "video") {
      delete this.prefs.facing;
      // Phones cannot open two cameras at once: let go of the old one first.
      if (old) { this.stream.removeTrack(old); old.stop(); }
    }
    try {
      const got = await navigator.mediaDevices.getUserMedia({[kind]: this.constraints(kind, deviceId)});
      const track = got.getTracks()[0];
      track.enabled = wasEnabled;
      if (kind === "video" && old) {
        // The old track is already out of the stream; announce the swap ourselves.
        this.stream.addTrack(track);
        track.addEventListener("ended", () => {
          if (this.stream.getTracks().includes(track)) {
            this.stream.removeTrack(track);
            if (this.ontrackchange) { this.ontrackchange("video", null, track); }
          }
        });
        if (this.ontrackchange) { this.ontrackchange("video", track, old); }
      } else {
        this._adopt(track);
      }
      this[kind + "Err"] = null;
      this._remember();
      await this.refreshDevices();
      return true;
    } catch (err) {
      this.lastError = err;
      this[kind + "Err"] = classify(err);
      if (kind === "video" && old && this.ontrackchange) { this.ontrackchange("video", null, old); }
      return false;
    }
  }

  /** Next camera: the next video input, or the other facing mode on a phone that lists one. */
  async switchCamera() {
    const cams = this.devices("video");
    const current = this.videoTrack && this.videoTrack.getSettings().deviceId;
    if (cams.length > 1) {
      const at = cams.findIndex((d) => d.deviceId === current);
      return this.choose("video", cams[(at + 1) % cams.length].deviceId);
    }
    const facing = this.facing === "environment" ? "user" : "environment";
    const old = this.videoTrack;
    const wasEnabled = old ? old.enabled : true;
    if (old) { this.stream.removeTrack(old); old.stop(); }
    try {
      const got = await navigator.mediaDevices.getUserMedia({video: {facingMode: {ideal: facing}}});
      const track = got.getVideoTracks()[0];
      track.enabled = wasEnabled;
      this.stream.addTrack(track);
      if (this.ontrackchange) { this.ontrackchange("video", track, old); }
      this._remember();
      this.prefs.facing = facing;
      this.savePrefs();
      return true;
    } catch (err) {
      this.lastError = err;
      if (this.ontrackchange) { this.ontrackchange("video", null, old); }
      return false;
    }
  }

  setEnabled(kind, on) {
    const track = kind === "audio" ? this.audioTrack : this.videoTrack;
    if (track) { track.enabled = on; }
    this.prefs[kind + "On"] = on;
    this.savePrefs();
  }

  /** Start drawing the microphone level into a <meter>. */
  startMeter(meterEl) {
    if (this._meter) { return; }
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx || !meterEl) { return; }
    this._meter = new LevelMeter(new Ctx(), meterEl);
    if (this.audioTrack) { this._meter.attach(this.audioTrack); }
  }

  stopMeter() {
    if (this._meter) { this._meter.close(); this._meter = null; }
  }

  stop() {
    this.stopMeter();
    for (const track of this.stream.getTracks()) { track.stop(); this.stream.removeTrack(track); }
  }
}
