// A hearing's send-only connection: this browser's camera and microphone to the media server,
// through the portal (hearing:publish -> hearing:answer, candidates as hearing:candidate).
// Video goes out as VP8 simulcast in three layers; the server forwards each subscriber the
// one it asks for (hearing-layers.js).

// Janus reads the rids in this order (highest first, its default "hml"): h is substream 2.
// Chromium sends only the layers the camera's size allows (one below 480x270), so a small
// camera costs no more than without simulcast.
export const ENCODINGS = Object.freeze([
  {rid: "h", maxBitrate: 900_000},
  {rid: "m", maxBitrate: 300_000, scaleResolutionDownBy: 2},
  {rid: "l", maxBitrate: 100_000, scaleResolutionDownBy: 4},
]);

/** VP8 first (the room's only video codec), keeping its repair streams (rtx). */
export function vp8First(codecs) {
  const vp8 = codecs.filter((c) => /^video\/vp8$/i.test(c.mimeType));
  const repair = codecs.filter((c) => /^video\/(rtx|red|ulpfec)$/i.test(c.mimeType));
  return vp8.length ? [...vp8, ...repair] : codecs;
}

function plainCandidate(c) {
  return c ? {candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex} : null;
}

export class Publisher {
  /**
   * stream: the LocalMedia's MediaStream; iceServers: from welcome; emit(event, payload): to
   * the portal; onState(connectionState); RTCPeerConnection: the constructor to use.
   */
  constructor({stream, iceServers, emit, onState = () => {}, RTCPeerConnection}) {
    this.stream = stream;
    this.emit = emit;
    this.onState = onState;
    this.closed = false;
    this.senders = {};
    this.pc = new RTCPeerConnection({iceServers: iceServers || [], bundlePolicy: "max-bundle"});
    this.pc.addEventListener("icecandidate", ({candidate}) => {
      if (!this.closed) {
        this.emit("hearing:candidate", {pc: "publish", candidate: plainCandidate(candidate)});
      }
    });
    this.pc.addEventListener("connectionstatechange", () => {
      if (!this.closed) { this.onState(this.pc.connectionState); }
    });
  }

  /** Offer our tracks; false when there is nothing to send (no camera, no microphone). */
  async start() {
    const audio = this.stream.getAudioTracks()[0];
    const video = this.stream.getVideoTracks()[0];
    if (!audio && !video) { return false; }
    if (audio) {
      this.senders.audio = this.pc.addTransceiver(audio,
        {direction: "sendonly", streams: [this.stream]}).sender;
    }
    if (video) {
      const transceiver = this.pc.addTransceiver(video, {direction: "sendonly",
        streams: [this.stream], sendEncodings: ENCODINGS.map((e) => ({...e}))});
      this.senders.video = transceiver.sender;
      preferVp8(transceiver);
    }
    await this.pc.setLocalDescription(await this.pc.createOffer());
    if (!this.closed) { this.emit("hearing:publish", {sdp: this.pc.localDescription.sdp}); }
    return true;
  }

  /** hearing:answer. An answer that does not fit (a late one, for an earlier offer) is dropped. */
  async answer(sdp) {
    if (this.closed || this.pc.signalingState !== "have-local-offer") { return false; }
    await this.pc.setRemoteDescription({type: "answer", sdp});
    return true;
  }

  /** Send another track of a kind; false when the connection has no sender for it. */
  async replaceTrack(kind, track) {
    const sender = this.senders[kind];
    if (this.closed || !sender || !track) { return false; }
    await sender.replaceTrack(track);
    return true;
  }

  close() {
    if (this.closed) { return; }
    this.closed = true;
    try { this.pc.close(); } catch (e) { /* already closed */ }
  }
}

function preferVp8(transceiver) {
  const Receiver = globalThis.RTCRtpReceiver;
  if (!Receiver || !Receiver.getCapabilities || !transceiver.setCodecPreferences) { return; }
  try {
    transceiver.setCodecPreferences(vp8First(Receiver.getCapabilities("video").codecs));
  } catch (err) {
    // Not fatal: the server's answer picks VP8 anyway.
    console.warn("samtale: setCodecPreferences", err);
  }
}
