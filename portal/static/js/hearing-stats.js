// What a hearing's receive-only connection gets, per participant, from getStats: for the e2e
// tests and the bench (window.samtale.hearing.stats(), hooks.js).

/**
 * pc: the receive-only RTCPeerConnection; map: mid -> {participantId, kind}.
 * Returns {at (ms), bytesReceived (the whole connection), participants: {id: {video:
 * {framesDecoded, bytesReceived, width, height}, audio: {packetsReceived, bytesReceived}}}}.
 */
export async function receiveStats(pc, map) {
  const out = {at: performance.now(), bytesReceived: 0, participants: {}};
  if (!pc) { return out; }
  // Chromium names the m-line of an inbound stream (mid); older ones only its track.
  const midOfTrack = new Map(pc.getTransceivers().filter((t) => t.receiver && t.receiver.track)
    .map((t) => [t.receiver.track.id, t.mid]));
  const report = await pc.getStats();
  report.forEach((r) => {
    if (r.type === "transport") { out.bytesReceived += r.bytesReceived || 0; }
    if (r.type !== "inbound-rtp") { return; }
    const stream = map.get(r.mid !== undefined ? r.mid : midOfTrack.get(r.trackIdentifier));
    if (!stream || stream.kind !== r.kind) { return; }
    const entry = out.participants[stream.participantId] ||= {};
    entry[r.kind] = r.kind === "video"
      ? {framesDecoded: r.framesDecoded || 0, bytesReceived: r.bytesReceived || 0,
        width: r.frameWidth || 0, height: r.frameHeight || 0}
      : {packetsReceived: r.packetsReceived || 0, bytesReceived: r.bytesReceived || 0};
  });
  return out;
}

/** The whole receive-only connection's downlink in bit/s, measured over ms (0 without one). */
export async function downlink(pc, ms) {
  if (!pc) { return 0; }
  const a = await receiveStats(pc, new Map());
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = await receiveStats(pc, new Map());
  return b.at > a.at ? (8 * (b.bytesReceived - a.bytesReceived)) / ((b.at - a.at) / 1000) : 0;
}
