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
