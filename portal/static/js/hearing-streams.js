// What a hearing's receive-only connection carries (docs/signaling.md, "Hearings through
// Janus"): the `streams` list of `hearing:offer` says which m-line (mid) is whose audio or
// video. No DOM and no RTCPeerConnection here, so tests/js checks it alone.

const KINDS = new Set(["audio", "video"]);

/**
 * The streams of a hearing:offer as a Map mid -> {participantId, kind}. Entries that are not
 * well formed are left out: the server decides what we receive, the page only files it.
 */
export function streamMap(streams) {
  const map = new Map();
  for (const s of Array.isArray(streams) ? streams : []) {
    if (!s || typeof s.mid !== "string" || !s.mid || !KINDS.has(s.kind)) { continue; }
    const id = Number(s.participant_id);
    if (!Number.isInteger(id)) { continue; }
    map.set(s.mid, {participantId: id, kind: s.kind});
  }
  return map;
}

/** Participant ids in the map, in the order their first stream comes. */
export function participantsOf(map) {
  return [...new Set([...map.values()].map((s) => s.participantId))];
}

/**
 * Which receiver track belongs to whom: [{mid, track}] (the connection's transceivers) ->
 * Map participantId -> {audio: track|null, video: track|null}. Mids the map does not know
 * (an m-line the server no longer uses) are ignored.
 */
export function tracksByParticipant(map, received) {
  const out = new Map();
  for (const {mid, track} of received) {
    const s = mid === null || mid === undefined ? null : map.get(mid);
    if (!s || !track || track.kind !== s.kind) { continue; }
    const entry = out.get(s.participantId) || {audio: null, video: null};
    entry[s.kind] = track;
    out.set(s.participantId, entry);
  }
  return out;
}

/** The session version of an SDP's o= line, or null. */
export function sdpVersion(sdp) {
  const m = /^o=\S+ \S+ (\d+) /m.exec(typeof sdp === "string" ? sdp : "");
  return m ? m[1] : null;
}

/**
 * Whether an offer starts a new media session (the media server made a new subscriber handle:
 * after its restart, or our reconnect) rather than renegotiating the current one. A new handle
 * has a new DTLS association, which an existing RTCPeerConnection cannot take up: it needs a
 * fresh connection. Janus numbers each handle's offers from 1 (o= version) and, unlike RFC 3264
 * asks, gives each offer a new o= session id, so the version is what tells them apart.
 */
export function isNewSession(currentSdp, offerSdp) {
  return currentSdp === null || currentSdp === undefined || sdpVersion(offerSdp) === "1";
}
