// Publishing this browser's media to the recorder, on a peer connection of its own (record.js
// decides when; docs/signaling.md, "Recording").

import {callVideo, encodingLike, withoutOwnEstimate} from "./record-rate.js";

const GATHER_TIMEOUT_MS = 3000;
// How often the link's ceiling follows the call's own rate (record-rate.js).
const FOLLOW_MS = 1000;
// A withdrawn link stops sending at once but closes only once the portal has the withdrawal
// (or after this): a close seen first would stop the recording as a lost connection.
const WITHDRAW_CLOSE_MS = 5000;

/**
 * emit(event, payload): to the portal; failed(): tell the user sending failed; callPcs(): the
 * call's peer connections, whose rate the recorder's link follows.
 */
export function createRecorderLink({media, emit, failed, callPcs = () => []}) {
  let link = null; // {id, pc, closed, senders, silent, startKbps, encoding, follow}

  function close() {
    if (!link) { return; }
    link.closed = true;
    clearInterval(link.follow);
    try { link.pc.close(); } catch (e) { /* already closed */ }
    link = null;
  }

  /** Consent withdrawn: not one frame more from now; the connection closes a moment later. */
  function silence() {
    const mine = link;
    if (!mine) { return; }
    mine.silent = true;
    for (const sender of Object.values(mine.senders)) {
      sender.replaceTrack(null).catch(() => { /* closed meanwhile */ });
    }
    setTimeout(() => { if (link === mine) { close(); } }, WITHDRAW_CLOSE_MS);
  }

  /** Offer our tracks for recording `id`; false when there is nothing to send. */
  async function publish(id, iceServers) {
    close(); // the server asks again only when it has no publication of ours
    const tracks = [media.audioTrack, media.videoTrack].filter(Boolean);
    if (!tracks.length) { return false; }
    const pc = new RTCPeerConnection({iceServers});
    const mine = {id, pc, closed: false, senders: {}};
    link = mine;
    try {
      // One sendonly transceiver per track this page has: the recorder waits for exactly
      // the kinds offered. A swapped camera is sent with replaceTrack, no renegotiation.
      for (const track of tracks) {
        mine.senders[track.kind] = pc.addTransceiver(track,
          {direction: "sendonly", streams: [media.stream]}).sender;
      }
      const now = await callVideo(callPcs());
      mine.startKbps = now ? now.rate / 1000 : 0;
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      if (mine.closed) { return true; }
      // The recorder does not trickle: the offer carries every candidate.
      emit("record:offer", {id, sdp: pc.localDescription.sdp});
    } catch (err) {
      console.warn("samtale: publishing to the recorder failed", err);
      if (!mine.closed) { close(); failed(); }
    }
    return true;
  }

  /** Send the recorder what the call gets: its rate and picture size (record-rate.js). */
  async function follow(mine) {
    const sender = mine.senders.video;
    const now = await callVideo(callPcs());
    const track = sender && sender.track;
    if (mine.closed || mine.silent || !now || !track) { return; }
    const want = encodingLike(now, track.getSettings().width || 0);
    const had = mine.encoding;
    if (had && Math.abs(want.maxBitrate - had.maxBitrate) < 0.1 * had.maxBitrate &&
        want.scaleResolutionDownBy === had.scaleResolutionDownBy) { return; }
    const params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) { return; }
    Object.assign(params.encodings[0], want);
    try {
      await sender.setParameters(params);
      mine.encoding = want;
    } catch (e) { /* renegotiating or closed: the next round tries again */ }
  }

  function gathered(pc) {
    if (pc.iceGatheringState === "complete") { return Promise.resolve(); }
    return new Promise((resolve) => {
      const timer = setTimeout(done, GATHER_TIMEOUT_MS);
      function done() {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
      function check() { if (pc.iceGatheringState === "complete") { done(); } }
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  /** record:answer from the recorder. */
  async function answer({id, sdp} = {}) {
    const mine = link;
    if (!mine || mine.id !== id || typeof sdp !== "string") { return; }
    try {
      await mine.pc.setRemoteDescription(
        {type: "answer", sdp: withoutOwnEstimate(sdp, mine.startKbps)});
      if (mine.closed) { return; }
      mine.follow = setInterval(() => follow(mine), FOLLOW_MS);
    } catch (err) {
      console.warn("samtale: the recorder's answer failed", err);
      if (link === mine) { close(); failed(); }
    }
  }

  return {
    close,
    silence,
    publish,
    answer,
    /** Which recording we publish to, or null. */
    get id() { return link ? link.id : null; },
    /** For window.samtale.recorder: {id, pc} or null. */
    get hook() { return link ? {id: link.id, pc: link.pc} : null; },
    /** A local track was swapped: the recorder gets the new one too. */
    replaceTrack(kind, track) {
      const sender = link && !link.silent && link.senders[kind];
      if (sender) {
        sender.replaceTrack(track).catch((err) => console.warn("samtale: recorder replaceTrack", err));
      }
    },
  };
}
