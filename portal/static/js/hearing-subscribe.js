// A hearing's receive-only connection: the server offers exactly the streams this participant
// may receive (`hearing:offer`, again whenever that set changes), the browser answers
// (`hearing:subscribe`) and trickles its candidates. A re-offer renegotiates the same
// connection; an offer of a new media session gets a fresh one (hearing-streams.js).
import {isNewSession, streamMap, tracksByParticipant} from "./hearing-streams.js";

export class Subscriber {
  /**
   * iceServers: from welcome; emit(event, payload): to the portal; onTracks(Map participant id
   * -> {audio, video}, fresh) after each offer (fresh: on a new connection); onState(
   * connectionState); RTCPeerConnection: the constructor to use.
   */
  constructor({iceServers, emit, onTracks, onState = () => {}, RTCPeerConnection}) {
    this.iceServers = iceServers || [];
    this.emit = emit;
    this.onTracks = onTracks;
    this.onState = onState;
    this.RTCPeerConnection = RTCPeerConnection;
    this.pc = null;
    this.map = new Map(); // mid -> {participantId, kind}
    this.closed = false;
    this._queue = Promise.resolve(); // offers are handled one at a time, in order
  }

  /** hearing:offer {sdp, streams}. */
  offer(message) {
    this._queue = this._queue.then(() => this._offer(message)).catch((err) => {
      console.warn("samtale: the hearing's offer failed", err);
    });
    return this._queue;
  }

  async _offer({sdp, streams}) {
    if (this.closed || typeof sdp !== "string") { return; }
    const current = this.pc && this.pc.remoteDescription ? this.pc.remoteDescription.sdp : null;
    const fresh = !this.pc || this.pc.signalingState === "closed" || isNewSession(current, sdp);
    if (fresh) { this._fresh(); }
    const pc = this.pc;
    await pc.setRemoteDescription({type: "offer", sdp});
    await pc.setLocalDescription();
    if (this.closed || pc !== this.pc) { return; }
    this.emit("hearing:subscribe", {sdp: pc.localDescription.sdp});
    this.map = streamMap(streams);
    this.onTracks(this.received(), fresh);
  }

  _fresh() {
    this._closePc();
    const pc = new this.RTCPeerConnection({iceServers: this.iceServers});
    pc.addEventListener("icecandidate", ({candidate}) => {
      if (this.closed || pc !== this.pc) { return; }
      this.emit("hearing:candidate", {pc: "subscribe", candidate: candidate
        ? {candidate: candidate.candidate, sdpMid: candidate.sdpMid,
          sdpMLineIndex: candidate.sdpMLineIndex} : null});
    });
    pc.addEventListener("connectionstatechange", () => {
      if (!this.closed && pc === this.pc) { this.onState(pc.connectionState); }
    });
    this.pc = pc;
  }

  /** Participant id -> {audio, video} tracks, as the last offer said. */
  received() {
    if (!this.pc) { return new Map(); }
    const live = this.pc.getTransceivers()
      .filter((t) => !t.stopped && t.currentDirection !== "inactive")
      .map((t) => ({mid: t.mid, track: t.receiver.track}));
    return tracksByParticipant(this.map, live);
  }

  _closePc() {
    if (!this.pc) { return; }
    try { this.pc.close(); } catch (e) { /* already closed */ }
    this.pc = null;
    this.map = new Map();
  }

  close() {
    this.closed = true;
    this._closePc();
  }
}
