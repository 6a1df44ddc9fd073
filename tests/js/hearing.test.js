// A hearing's browser logic without a media server: which layer a tile asks for (and when),
// which m-line is whose, whose tile is large, and the two connections against small fakes.
import {LayerPicker, layerFor} from "/static/js/hearing-layers.js";
import {chooseLarge} from "/static/js/hearing-layout.js";
import {ENCODINGS, Publisher, vp8First} from "/static/js/hearing-publish.js";
import {isNewSession, participantsOf, sdpVersion, streamMap, tracksByParticipant}
  from "/static/js/hearing-streams.js";
import {Subscriber} from "/static/js/hearing-subscribe.js";
import {FakeClock} from "./clock.js";
import {assert, equal, settle, test} from "./runner.js";

// --- layers ------------------------------------------------------------------------------

test("hearing: a tile's width picks the layer: large 2, strip 0, between 1", () => {
  equal([0, -5, NaN, undefined].map(layerFor), [0, 0, 0, 0], "not laid out");
  equal([120, 180, 319].map(layerFor), [0, 0, 0], "strip tiles");
  equal([320, 412, 639].map(layerFor), [1, 1, 1], "a phone's speaker tile");
  equal([640, 928, 1264].map(layerFor), [2, 2, 2], "a desktop's speaker tile");
});

function picker() {
  const clock = new FakeClock();
  const sent = [];
  const layers = new LayerPicker({send: (id, s) => sent.push([id, s]), timers: clock,
    delayMs: 400});
  return {clock, sent, layers};
}

test("hearing: the first layer goes out at once, changes only once the size settles", () => {
  const {clock, sent, layers} = picker();
  layers.update(7, 150);
  equal(sent, [[7, 0]], "first choice at once");
  layers.update(7, 700); // becomes the speaker
  layers.update(7, 500); // still moving
  clock.tick(399);
  equal(sent, [[7, 0]], "nothing while it moves");
  layers.update(7, 900);
  clock.tick(399);
  equal(sent, [[7, 0]], "a new size waits again");
  clock.tick(1);
  equal(sent, [[7, 0], [7, 2]]);
  equal([...layers.wanted()], [[7, 2]]);
});

test("hearing: a size that comes back before the pause sends nothing", () => {
  const {clock, sent, layers} = picker();
  layers.update(3, 700);
  layers.update(3, 150);
  layers.update(3, 800);
  clock.tick(1000);
  equal(sent, [[3, 2]]);
  layers.update(3, 660); // same layer, another width
  clock.tick(1000);
  equal(sent, [[3, 2]]);
});

test("hearing: layers are per participant; a forgotten one starts afresh", () => {
  const {clock, sent, layers} = picker();
  layers.update(1, 700);
  layers.update(2, 150);
  layers.update(2, 400);
  layers.forget(2); // left: its pending change is dropped
  clock.tick(1000);
  equal(sent, [[1, 2], [2, 0]]);
  layers.update(2, 400);
  equal(sent, [[1, 2], [2, 0], [2, 1]], "back: at once");
});

test("hearing: a new subscription sends every choice again, pending ones included", () => {
  const {clock, sent, layers} = picker();
  layers.update(1, 700);
  layers.update(2, 150);
  layers.update(3, 150);
  layers.update(2, 500); // pending
  sent.length = 0;
  layers.resend(new Set([1, 2])); // 3 is no longer received
  equal(sent, [[1, 2], [2, 1]]);
  clock.tick(1000);
  equal(sent, [[1, 2], [2, 1]], "the pending change is not sent twice");
  equal([...layers.wanted()].sort(), [[1, 2], [2, 1]]);
});

// --- streams -----------------------------------------------------------------------------

const STREAMS = [
  {mid: "0", participant_id: 11, kind: "audio"},
  {mid: "1", participant_id: 11, kind: "video"},
  {mid: "2", participant_id: 12, kind: "audio"},
  {mid: "3", participant_id: 12, kind: "video"},
  {mid: "4", participant_id: 13, kind: "audio"}, // camera off: audio only
];

test("hearing: the offer's streams map each mid to its participant and kind", () => {
  const map = streamMap(STREAMS);
  equal(map.size, 5);
  equal(map.get("3"), {participantId: 12, kind: "video"});
  equal(participantsOf(map), [11, 12, 13]);
});

test("hearing: malformed stream entries are left out", () => {
  const map = streamMap([
    null, {mid: 1, participant_id: 2, kind: "video"}, {mid: "", participant_id: 2, kind: "audio"},
    {mid: "5", participant_id: "x", kind: "audio"}, {mid: "6", participant_id: 2, kind: "data"},
    {mid: "7", participant_id: "9", kind: "audio"},
  ]);
  equal([...map], [["7", {participantId: 9, kind: "audio"}]]);
  equal(streamMap(undefined).size, 0);
  equal(streamMap({mid: "1"}).size, 0);
});

test("hearing: received tracks are grouped by participant; unknown mids and kinds ignored", () => {
  const map = streamMap(STREAMS);
  const track = (kind, id) => ({kind, id});
  const got = tracksByParticipant(map, [
    {mid: "0", track: track("audio", "a11")}, {mid: "1", track: track("video", "v11")},
    {mid: "3", track: track("video", "v12")}, {mid: "4", track: track("audio", "a13")},
    {mid: "9", track: track("video", "stale")}, {mid: null, track: track("audio", "none")},
    {mid: "2", track: track("video", "wrong kind")},
  ]);
  equal([...got.keys()], [11, 12, 13]);
  equal(got.get(11).audio.id, "a11");
  equal(got.get(11).video.id, "v11");
  equal(got.get(12).audio, null);
  equal(got.get(13), {audio: {kind: "audio", id: "a13"}, video: null});
});

const sdp = (session, version) => `v=0\r\no=- ${session} ${version} IN IP4 127.0.0.1\r\ns=-\r\n`;

test("hearing: a re-offer of the same handle counts up; a new handle's first offer is 1", () => {
  // As Janus 1.1 writes them: a new o= session id on every offer, the version counting up.
  equal(sdpVersion(sdp("1796092884659754", 1)), "1");
  equal(sdpVersion("garbage"), null);
  equal(isNewSession(sdp("1796092884659754", 1), sdp("1796092885858059", 2)), false);
  equal(isNewSession(sdp("1796092885858059", 2), sdp("1796092885875416", 4)), false);
  equal(isNewSession(sdp("1796092885875416", 4), sdp("1796092885877402", 1)), true);
  equal(isNewSession(null, sdp("4711", 3)), true, "no connection yet");
});

// --- the large tile ----------------------------------------------------------------------

test("hearing: the speaker is large; not ourselves, not someone without a tile", () => {
  const ids = [4, 5, 6];
  equal(chooseLarge({ids, current: null, speaker: null, selfId: 1}), 4, "first by default");
  equal(chooseLarge({ids, current: 4, speaker: 6, selfId: 1}), 6, "the speaker");
  equal(chooseLarge({ids, current: 6, speaker: 1, selfId: 1}), 6, "we speak: unchanged");
  equal(chooseLarge({ids, current: 6, speaker: 9, selfId: 1}), 6, "no tile: unchanged");
  equal(chooseLarge({ids: [4, 5], current: 6, speaker: 6, selfId: 1}), 4, "the speaker left");
  equal(chooseLarge({ids: [], current: 6, speaker: 6, selfId: 1}), null);
});

// --- the connections, against small fakes ------------------------------------------------

test("hearing: publishing offers VP8 first and three simulcast layers, h highest", () => {
  const codecs = [{mimeType: "video/VP9"}, {mimeType: "video/rtx"}, {mimeType: "video/VP8"},
    {mimeType: "video/H264"}];
  equal(vp8First(codecs).map((c) => c.mimeType), ["video/VP8", "video/rtx"]);
  equal(vp8First([{mimeType: "video/H264"}]).map((c) => c.mimeType), ["video/H264"]);
  equal(ENCODINGS.map((e) => [e.rid, e.scaleResolutionDownBy || 1]),
    [["h", 1], ["m", 2], ["l", 4]]);
});

class TinyPc extends EventTarget {
  constructor(config) {
    super();
    TinyPc.made.push(this);
    this.config = config;
    this.signalingState = "stable";
    this.remoteDescription = null;
    this.localDescription = null;
    this.transceivers = [];
    this.closed = false;
  }

  addTransceiver(track, init) {
    const t = {mid: String(this.transceivers.length), init, currentDirection: "sendonly",
      stopped: false, sender: {track, replaceTrack: async (next) => { t.sender.track = next; }},
      receiver: {track: null}};
    this.transceivers.push(t);
    return t;
  }

  getTransceivers() { return this.transceivers; }
  async createOffer() { return {type: "offer", sdp: sdp("local", 1)}; }

  async setLocalDescription(d) {
    if (this.signalingState === "have-remote-offer") {
      this.localDescription = {type: "answer", sdp: "answer:" + this.remoteDescription.sdp};
      this.signalingState = "stable";
    } else {
      this.localDescription = d;
      this.signalingState = "have-local-offer";
    }
  }

  async setRemoteDescription(d) {
    this.remoteDescription = d;
    if (d.type === "offer") {
      // Each offered m-line (written as "m:<mid>:<kind>" lines here) gets a receiver.
      for (const [, mid, kind] of d.sdp.matchAll(/^m:(\w+):(\w+)$/gm)) {
        if (!this.transceivers.some((t) => t.mid === mid)) {
          this.transceivers.push({mid, currentDirection: "recvonly", stopped: false,
            receiver: {track: {kind, id: `${kind}-${mid}-${TinyPc.made.indexOf(this)}`}}});
        }
      }
      this.signalingState = "have-remote-offer";
    } else {
      this.signalingState = "stable";
    }
  }

  close() { this.closed = true; this.signalingState = "closed"; }
}
TinyPc.made = [];

function stream(kinds) {
  const tracks = kinds.map((kind) => ({kind, id: kind}));
  return {
    getAudioTracks: () => tracks.filter((t) => t.kind === "audio"),
    getVideoTracks: () => tracks.filter((t) => t.kind === "video"),
    getTracks: () => tracks,
  };
}

test("hearing: the publisher offers its tracks send-only, once, and takes the answer", async () => {
  TinyPc.made = [];
  const sent = [];
  const pub = new Publisher({stream: stream(["audio", "video"]), iceServers: [],
    emit: (event, payload) => sent.push([event, payload]), RTCPeerConnection: TinyPc});
  equal(await pub.start(), true);
  equal(sent.map(([e]) => e), ["hearing:publish"]);
  const [audio, video] = pub.pc.transceivers;
  equal([audio.init.direction, video.init.direction], ["sendonly", "sendonly"]);
  equal(audio.init.sendEncodings, undefined, "audio is not simulcast");
  equal(video.init.sendEncodings.map((e) => e.rid), ["h", "m", "l"]);
  equal(await pub.answer(sdp("janus", 1)), true);
  equal(await pub.answer(sdp("janus", 2)), false, "a second answer does not fit");
  equal(await pub.replaceTrack("video", {kind: "video", id: "other"}), true);
  equal(video.sender.track.id, "other");
  pub.close();
  equal(await pub.replaceTrack("audio", {kind: "audio", id: "x"}), false);
});

test("hearing: without camera and microphone nothing is published", async () => {
  const sent = [];
  const pub = new Publisher({stream: stream([]), iceServers: [],
    emit: (event, payload) => sent.push([event, payload]), RTCPeerConnection: TinyPc});
  equal(await pub.start(), false);
  equal(sent, []);
});

const offerSdp = (session, version, lines) =>
  sdp(session, version) + lines.map(([mid, kind]) => `m:${mid}:${kind}`).join("\n") + "\n";

test("hearing: a re-offer renegotiates the connection; a new handle gets a fresh one", async () => {
  TinyPc.made = [];
  const sent = [], shown = [];
  const sub = new Subscriber({iceServers: [], RTCPeerConnection: TinyPc,
    emit: (event, payload) => sent.push([event, payload]),
    onTracks: (tracks, fresh) => shown.push({fresh, ids: [...tracks.keys()]})});
  await sub.offer({sdp: offerSdp("100", 1, [["0", "audio"], ["1", "video"]]),
    streams: STREAMS.slice(0, 2)});
  const first = sub.pc;
  equal(sent.map(([e]) => e), ["hearing:subscribe"]);
  assert(sent[0][1].sdp.startsWith("answer:"), "the answer goes back");
  equal(shown, [{fresh: true, ids: [11]}]);
  // Participant 12 starts publishing: the same session, one more pair of m-lines.
  await sub.offer({sdp: offerSdp("101", 2, [["0", "audio"], ["1", "video"], ["2", "audio"],
    ["3", "video"]]), streams: STREAMS.slice(0, 4)});
  equal(sub.pc, first, "renegotiated in place");
  equal(shown[1], {fresh: false, ids: [11, 12]});
  // The media server restarted: a new session, a new connection.
  await sub.offer({sdp: offerSdp("200", 1, [["0", "audio"], ["1", "video"]]),
    streams: [{mid: "0", participant_id: 12, kind: "audio"},
      {mid: "1", participant_id: 12, kind: "video"}]});
  assert(sub.pc !== first && first.closed, "the old connection is closed");
  equal(shown[2], {fresh: true, ids: [12]});
  equal(sub.received().get(12).video.id, "video-1-1", "the new connection's track");
  equal(sent.length, 3);
  sub.close();
  assert(TinyPc.made.every((pc) => pc.closed));
});

test("hearing: offers are handled one at a time, in order", async () => {
  TinyPc.made = [];
  const order = [];
  const sub = new Subscriber({iceServers: [], RTCPeerConnection: TinyPc, emit: () => {},
    onTracks: (tracks) => order.push([...tracks.keys()])});
  sub.offer({sdp: offerSdp("1", 1, [["0", "audio"]]), streams: [STREAMS[0]]});
  sub.offer({sdp: offerSdp("2", 2, [["0", "audio"], ["2", "audio"]]),
    streams: [STREAMS[0], STREAMS[2]]});
  await sub.offer({sdp: offerSdp("3", 3, [["0", "audio"]]), streams: [STREAMS[0]]});
  await settle();
  equal(order, [[11], [11, 12], [11]]);
  equal(TinyPc.made.length, 1);
});
