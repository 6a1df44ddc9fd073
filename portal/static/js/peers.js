// One RTCPeerConnection per other member of the call, negotiated with the "perfect
// negotiation" pattern (https://developer.mozilla.org/docs/Web/API/WebRTC_API/Perfect_negotiation):
// the member with the lower id is polite and rolls back its own offer on a collision.
// Everything from outside (the RTCPeerConnection constructor, send, timers, clock) comes in as
// a parameter, so tests/js can run it against a fake connection and a fake clock.
import {ConnectionSampler} from "./stats.js";

// Negotiated but ICE never started (candidates lost, or gathering stuck): try again with
// fresh candidates instead of waiting forever. "failed" has its own restart below. Only the
// impolite side does it, so that two restarts never collide (a rollback there can leave the
// received tracks muted in Chromium); its checks teach the other side its address.
const ICE_STALL_MS = 8000;
// Both sides add their tracks at once, so both want to offer. The polite side waits this
// long for the other's offer first: an offer rolled back while ICE is starting can leave
// Chromium's transport gathering forever with no candidate (seen in the e2e tests).
const POLITE_OFFER_DELAY_MS = 1500;

/** A description or candidate, reduced to the keys the signaling protocol accepts. */
function plainDescription(d) {
  return {type: d.type, sdp: d.sdp};
}

function plainCandidate(c) {
  const out = {candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex};
  if (c.usernameFragment) { out.usernameFragment = c.usernameFragment; }
  return out;
}

export class PeerLink {
  /**
   * selfId, peerId: participant ids; iceServers: from welcome;
   * stream: the local MediaStream whose tracks are sent;
   * send(payload): emit a `signal` ({to, description} or {to, candidate});
   * handlers: {track(event), ice(state)};
   * RTCPeerConnection: the constructor to use (the page's, or a fake);
   * timers: {setTimeout, clearTimeout} (default: the window's); now(): ms, for stats;
   * delays: {politeOfferMs, iceStallMs} to shorten the waits (tests).
   */
  constructor({selfId, peerId, iceServers, stream, send, handlers, RTCPeerConnection,
               timers = globalThis, now = () => performance.now(), delays = {}}) {
    this.peerId = peerId;
    this.polite = selfId < peerId;
    this.send = send;
    this.handlers = handlers || {};
    this.timers = timers;
    this.politeOfferMs = delays.politeOfferMs ?? POLITE_OFFER_DELAY_MS;
    this.iceStallMs = delays.iceStallMs ?? ICE_STALL_MS;
    this.closed = false;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.isSettingRemoteAnswerPending = false;
    this._sampler = new ConnectionSampler(now);
    this._queue = Promise.resolve(); // signals are handled one at a time, in order
    this._early = []; // candidates that came before any remote description
    this._stallTimer = null;
    this._offerTimer = null;
    this._waitedForOffer = false;
    this.pc = new RTCPeerConnection({iceServers: iceServers || []});
    this.stream = stream;
    for (const track of stream.getTracks()) { this.pc.addTrack(track, stream); }

    this.pc.addEventListener("negotiationneeded", () => this._negotiate());
    this.pc.addEventListener("icecandidate", ({candidate}) => {
      if (this.closed) { return; }
      this.send({to: this.peerId, candidate: candidate ? plainCandidate(candidate) : null});
    });
    this.pc.addEventListener("track", (event) => {
      if (this.handlers.track) { this.handlers.track(event); }
    });
    this.pc.addEventListener("signalingstatechange", () => this._watchIce());
    this.pc.addEventListener("iceconnectionstatechange", () => {
      const state = this.pc.iceConnectionState;
      this._watchIce();
      if (state === "failed") { this.restartIce(); }
      if (this.handlers.ice) { this.handlers.ice(state); }
    });
    this.pc.addEventListener("connectionstatechange", () => {
      if (this.pc.connectionState === "failed") { this.restartIce(); }
    });
  }

  /** While negotiated and ICE is still "new", a timer restarts ICE (again and again). */
  _watchIce() {
    this.timers.clearTimeout(this._stallTimer);
    this._stallTimer = null;
    const pc = this.pc;
    if (this.closed || this.polite || pc.signalingState !== "stable" ||
        pc.iceConnectionState !== "new") {
      return;
    }
    this._stallTimer = this.timers.setTimeout(() => {
      this._stallTimer = null;
      if (!this.closed && pc.signalingState === "stable" && pc.iceConnectionState === "new") {
        console.warn("samtale: ICE has not started; restarting it");
        this.restartIce();
        this._watchIce();
      }
    }, this.iceStallMs);
  }

  async _negotiate() {
    if (this.closed) { return; }
    if (this.polite && !this.pc.remoteDescription && !this._waitedForOffer) {
      this._waitedForOffer = true;
      this._offerTimer = this.timers.setTimeout(() => {
        this._offerTimer = null;
        if (!this.pc.remoteDescription) { this._negotiate(); }
      }, this.politeOfferMs);
      return; // an offer that comes meanwhile is answered with our tracks in it
    }
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      // A colliding remote offer may have rolled ours back meanwhile (we are polite): then
      // the answer goes out from _handle, not from here.
      if (!this.closed && this.pc.localDescription && this.pc.localDescription.type === "offer") {
        this.send({to: this.peerId, description: plainDescription(this.pc.localDescription)});
      }
    } catch (err) {
      console.warn("samtale: offer failed", err);
    } finally {
      this.makingOffer = false;
    }
  }

  /** A relayed `signal` from this peer: {description} or {candidate}. */
  handle(message) {
    this._queue = this._queue.then(() => this._handle(message)).catch((err) => {
      console.warn("samtale: signal failed", err);
    });
    return this._queue;
  }

  async _handle({description, candidate}) {
    if (this.closed) { return; }
    const pc = this.pc;
    if (description) {
      const readyForOffer = !this.makingOffer &&
        (pc.signalingState === "stable" || this.isSettingRemoteAnswerPending);
      const offerCollision = description.type === "offer" && !readyForOffer;
      this.ignoreOffer = !this.polite && offerCollision;
      if (this.ignoreOffer) { return; }
      this.isSettingRemoteAnswerPending = description.type === "answer";
      try {
        await pc.setRemoteDescription(description); // rolls back our offer when polite
      } finally {
        this.isSettingRemoteAnswerPending = false;
      }
      await this._addEarly();
      if (description.type === "offer") {
        await pc.setLocalDescription();
        this.send({to: this.peerId, description: plainDescription(pc.localDescription)});
      }
    } else if (candidate) {
      if (!pc.remoteDescription && !this.ignoreOffer) {
        this._early.push(candidate); // a browser refuses it before the offer: keep it till then
        return;
      }
      try {
        await pc.addIceCandidate(candidate);
      } catch (err) {
        if (!this.ignoreOffer) { throw err; } // else: a candidate of the offer we ignored
      }
    }
  }

  async _addEarly() {
    const early = this._early;
    this._early = [];
    for (const candidate of early) {
      try {
        await this.pc.addIceCandidate(candidate);
      } catch (err) {
        console.warn("samtale: an early candidate failed", err);
      }
    }
  }

  /** Send another track of a kind (or none), without renegotiating when a sender exists. */
  async replaceTrack(kind, track) {
    if (this.closed) { return; }
    let sender = this.pc.getSenders().find((s) => s.track && s.track.kind === kind);
    if (!sender) {
      const tr = this.pc.getTransceivers().find((t) => !t.stopped &&
        t.receiver.track && t.receiver.track.kind === kind &&
        (t.direction === "sendrecv" || t.direction === "sendonly"));
      sender = tr ? tr.sender : null;
    }
    if (sender) {
      await sender.replaceTrack(track);
    } else if (track) {
      this.pc.addTrack(track, this.stream); // negotiationneeded follows
    }
  }

  /** ICE restart, after a network change; optionally with fresh ICE servers. */
  restartIce(iceServers) {
    if (this.closed) { return; }
    if (iceServers) {
      try { this.pc.setConfiguration({...this.pc.getConfiguration(), iceServers}); } catch (e) {
        console.warn("samtale: setConfiguration failed", e);
      }
    }
    if (typeof this.pc.restartIce === "function") { this.pc.restartIce(); }
  }

  /** {rtt (ms|null), loss (0..100|null), kbps (|null)} since the previous call. */
  async sample() {
    if (this.closed) { return null; }
    return this._sampler.sample(this.pc);
  }

  close() {
    if (this.closed) { return; }
    this.closed = true;
    this._early = [];
    this.timers.clearTimeout(this._stallTimer);
    this.timers.clearTimeout(this._offerTimer);
    try { this.pc.close(); } catch (e) { /* already closed */ }
  }
}
