// A stand-in for RTCPeerConnection with what PeerLink relies on: the signaling states (offer,
// answer, explicit and implicit rollback), one operation at a time, negotiationneeded once
// stable, ICE restart (a new ufrag in the next offer), candidates refused before a remote
// description (as browsers do). What it did is in .log, for the assertions.

let made = 0;

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

export class FakePeerConnection extends EventTarget {
  constructor(config) {
    super();
    this.id = ++made;
    this.config = {...config};
    this.signalingState = "stable";
    this.iceConnectionState = "new";
    this.connectionState = "new";
    this.localDescription = null;
    this.remoteDescription = null;
    this.log = [];
    this.candidates = []; // added remote candidates
    this.senders = [];
    this._ufrag = 1;
    this._current = {local: null, remote: null}; // last stable descriptions
    this._tracksNeeded = false;
    this._restartNeeded = false;
    this._offered = null; // what the outstanding local offer covers
    this._chain = Promise.resolve();
    this._ops = 0;
    this._flag = false; // negotiationneeded fired and not yet negotiated
    this._retry = false; // a check came while operations ran: check again when they end
  }

  get ufrag() { return `u${this.id}x${this._ufrag}`; }

  addTrack(track) {
    const sender = {track, replaceTrack: async (t) => { sender.track = t; }};
    this.senders.push(sender);
    this._tracksNeeded = true;
    this._needed();
    return sender;
  }

  getSenders() { return this.senders.slice(); }

  getTransceivers() {
    return this.senders.map((sender) => ({stopped: false, sender, direction: "sendrecv",
      receiver: {track: {kind: sender.track ? sender.track.kind : "audio"}}}));
  }

  getConfiguration() { return {...this.config}; }

  setConfiguration(config) { this.config = {...config}; this.log.push("setConfiguration"); }

  restartIce() {
    this.log.push("restartIce");
    this._restartNeeded = true;
    this._needed();
  }

  setLocalDescription(description) {
    return this._op(() => {
      const answering = this.signalingState === "have-remote-offer";
      const type = (description && description.type) || (answering ? "answer" : "offer");
      if (type === "offer") {
        if (!["stable", "have-local-offer"].includes(this.signalingState)) { throw this._state(); }
        if (this._restartNeeded) { this._ufrag += 1; }
        this._offered = {tracks: this._tracksNeeded, restart: this._restartNeeded};
        this._tracksNeeded = this._restartNeeded = false;
        this.localDescription = {type, sdp: this._sdp(type)};
        this._setState("have-local-offer");
      } else if (type === "answer") {
        if (!answering) { throw this._state(); }
        this._tracksNeeded = false; // our tracks go into the answer's m-lines
        this.localDescription = {type, sdp: this._sdp(type)};
        this._setState("stable");
      } else if (type === "rollback") {
        this._rollback();
      }
      this.log.push(`local ${type}`);
      if (type !== "rollback") { this._gather(); }
    });
  }

  setRemoteDescription(description) {
    return this._op(() => {
      const {type} = description;
      if (type === "rollback") {
        if (this.signalingState === "have-remote-offer") {
          this.remoteDescription = this._current.remote;
          this._setState("stable");
        }
      } else if (type === "offer") {
        if (this.signalingState === "have-local-offer") { this._rollback(); } // implicit
        else if (this.signalingState !== "stable") { throw this._state(); }
        this.remoteDescription = {type, sdp: description.sdp};
        this._setState("have-remote-offer");
      } else if (type === "answer") {
        if (this.signalingState !== "have-local-offer") { throw this._state(); }
        this.remoteDescription = {type, sdp: description.sdp};
        this._offered = null;
        this._setState("stable");
      }
      this.log.push(`remote ${type}`);
    });
  }

  addIceCandidate(candidate) {
    return this._op(() => {
      if (!this.remoteDescription) {
        throw new DOMException("The remote description was null", "InvalidStateError");
      }
      this.candidates.push(candidate);
      this.log.push(`candidate ${candidate.candidate}`);
    });
  }

  async getStats() { return new Map(); }

  close() {
    this.signalingState = "closed";
    this.log.push("close");
  }

  /** Test helper: the ICE agent reports a new state. */
  setIce(state) {
    this.iceConnectionState = state;
    this.dispatchEvent(new Event("iceconnectionstatechange"));
  }

  _rollback() {
    this.log.push("rollback");
    this.localDescription = this._current.local;
    if (this._offered) {
      this._tracksNeeded ||= this._offered.tracks;
      this._restartNeeded ||= this._offered.restart;
      this._offered = null;
    }
    this._setState("stable");
  }

  _setState(state) {
    if (state === "stable" && this.localDescription && this.remoteDescription) {
      this._current = {local: this.localDescription, remote: this.remoteDescription};
    }
    this.signalingState = state;
    this.dispatchEvent(new Event("signalingstatechange"));
    if (state === "stable") { this._flag = false; this._needed(); }
  }

  /**
   * negotiationneeded, as the spec's "update the negotiation-needed flag": from a task, only
   * when stable with no operation running, and once until the next return to stable.
   */
  _needed() {
    setTimeout(() => {
      if (this.signalingState === "closed") { return; }
      if (this._ops > 0) { this._retry = true; return; }
      if (this.signalingState !== "stable" || this._flag) { return; }
      if (!this._tracksNeeded && !this._restartNeeded) { return; }
      this._flag = true;
      this.log.push("negotiationneeded");
      this.dispatchEvent(new Event("negotiationneeded"));
    }, 0);
  }

  _gather() {
    const candidate = {candidate: `candidate:${this.id} 1 udp 1 127.0.0.1 ${9000 + this.id} typ host`,
      sdpMid: "0", sdpMLineIndex: 0, usernameFragment: this.ufrag};
    setTimeout(() => {
      if (this.signalingState === "closed") { return; }
      const event = new Event("icecandidate");
      event.candidate = candidate;
      this.dispatchEvent(event);
    }, 0);
  }

  _sdp(type) {
    const kinds = this.senders.map((s) => `m=${s.track.kind}`).join("\r\n");
    return `v=0\r\no=fake-${this.id} ${type}\r\na=ice-ufrag:${this.ufrag}\r\n${kinds}\r\n`;
  }

  _state() {
    return new DOMException(`wrong state: ${this.signalingState}`, "InvalidStateError");
  }

  /** Operations run one after another, each a task later, like a browser's operations chain. */
  _op(fn) {
    if (this.signalingState === "closed") {
      return Promise.reject(new DOMException("closed", "InvalidStateError"));
    }
    this._ops += 1;
    const run = this._chain.then(tick).then(fn);
    this._chain = run.catch(() => {}).then(() => {
      this._ops -= 1;
      if (this._ops === 0 && this._retry) { this._retry = false; this._needed(); }
    });
    return run;
  }
}
