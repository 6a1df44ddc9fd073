// PeerLink (portal/static/js/peers.js) against FakePeerConnection: perfect negotiation's glare
// handling, rollback, queued candidates, ICE restart. Messages travel only when a test says.
import {PeerLink} from "/static/js/peers.js";
import {FakeClock} from "./clock.js";
import {FakePeerConnection} from "./fake_pc.js";
import {assert, equal, settle, test} from "./runner.js";

const POLITE_MS = 1500;
const STALL_MS = 8000;

function stream() {
  const tracks = [{kind: "audio", id: "a"}, {kind: "video", id: "v"}];
  return {getTracks: () => tracks};
}

/** Participant `id` with its outbox; the lower id is polite. */
function side(id, otherId, clock) {
  const outbox = [];
  const link = new PeerLink({
    selfId: id, peerId: otherId, iceServers: [], stream: stream(),
    send: (payload) => outbox.push(payload),
    RTCPeerConnection: FakePeerConnection, timers: clock, now: () => clock.now,
    delays: {politeOfferMs: POLITE_MS, iceStallMs: STALL_MS},
  });
  return {link, pc: link.pc, outbox};
}

function pair() {
  const clock = new FakeClock();
  return {clock, polite: side(1, 2, clock), impolite: side(2, 1, clock)};
}

const descriptions = (s, type) => s.outbox.filter((m) => m.description &&
  (!type || m.description.type === type));

/** Hand what `from` sent (all of it, or those passing `which`) to `to`, in order. */
async function deliver(from, to, which = () => true) {
  const taken = from.outbox.filter(which);
  from.outbox.splice(0, from.outbox.length, ...from.outbox.filter((m) => !which(m)));
  for (const message of taken) { await to.link.handle(message); }
  await settle();
}

/** Both sides offer before either has seen the other's offer. */
async function glare() {
  const p = pair();
  await settle();
  p.clock.tick(POLITE_MS); // the polite side stops waiting for the other's offer
  await settle();
  equal(p.polite.pc.signalingState, "have-local-offer", "polite offered");
  equal(p.impolite.pc.signalingState, "have-local-offer", "impolite offered");
  const isOffer = (m) => m.description && m.description.type === "offer";
  const politeOffer = descriptions(p.polite, "offer")[0].description;
  const impoliteOffer = descriptions(p.impolite, "offer")[0].description;
  // The offers cross.
  await Promise.all([deliver(p.polite, p.impolite, isOffer), deliver(p.impolite, p.polite, isOffer)]);
  return {...p, politeOffer, impoliteOffer};
}

test("the polite side waits for the other's offer and answers it, never offering", async () => {
  const {clock, polite, impolite} = pair();
  await settle();
  equal(descriptions(polite).length, 0, "polite sent a description at once");
  equal(descriptions(impolite, "offer").length, 1, "impolite offers at once");
  await deliver(impolite, polite);
  equal(descriptions(polite, "answer").length, 1, "polite answers");
  await deliver(polite, impolite);
  clock.tick(POLITE_MS * 2);
  await settle();
  equal(descriptions(polite, "offer").length, 0, "polite offered after all");
  equal([polite.pc.signalingState, impolite.pc.signalingState], ["stable", "stable"]);
});

test("glare: the polite side rolls back its offer and answers the other's", async () => {
  const {polite, impoliteOffer} = await glare();
  assert(polite.pc.log.includes("rollback"), `no rollback: ${polite.pc.log}`);
  equal(polite.pc.remoteDescription, impoliteOffer, "polite took the impolite offer");
  equal(descriptions(polite, "answer").length, 1, "polite answered once");
  equal(polite.pc.signalingState, "stable");
});

test("glare: the impolite side ignores the colliding offer and keeps its own", async () => {
  const {impolite, impoliteOffer} = await glare();
  equal(impolite.pc.signalingState, "have-local-offer", "impolite dropped its offer");
  equal(impolite.pc.remoteDescription, null, "impolite applied the colliding offer");
  assert(!impolite.pc.log.includes("rollback"), "impolite rolled back");
  equal(descriptions(impolite, "answer").length, 0, "impolite answered the colliding offer");
  equal(impolite.pc.localDescription, impoliteOffer);
});

test("glare: one exchange settles both sides, and nobody offers again", async () => {
  const {clock, polite, impolite, politeOffer} = await glare();
  const warned = [];
  const warn = console.warn;
  console.warn = (...args) => warned.push(args.join(" "));
  try {
    await deliver(polite, impolite); // the answer, and the candidates of both offers
    await deliver(impolite, polite);
    clock.tick(STALL_MS - 1);
    await settle();
  } finally {
    console.warn = warn;
  }
  equal([polite.pc.signalingState, impolite.pc.signalingState], ["stable", "stable"]);
  equal(impolite.pc.remoteDescription.type, "answer");
  assert(impolite.pc.remoteDescription.sdp !== politeOffer.sdp, "the rolled-back offer won");
  equal(polite.outbox.length + impolite.outbox.length, 0, "more signals after settling");
  // The candidate of the ignored offer is dropped quietly, not reported as a failure.
  equal(warned, [], "warnings");
});

test("an offer that arrives while the polite side makes its own: rolled back, answered",
  async () => {
    const {clock, polite, impolite} = pair();
    await settle();
    const offer = descriptions(impolite, "offer")[0];
    impolite.outbox.splice(impolite.outbox.indexOf(offer), 1);
    clock.tick(POLITE_MS); // polite starts setLocalDescription(offer)...
    const handled = polite.link.handle(offer); // ...and the other's offer comes meanwhile
    assert(polite.link.makingOffer, "the polite offer was not under way");
    await handled;
    await settle();
    assert(polite.pc.log.includes("rollback"), `no rollback: ${polite.pc.log}`);
    equal(descriptions(polite, "answer").length, 1, "no answer");
    await deliver(polite, impolite); // its stale offer (ignored), then the answer
    await deliver(impolite, polite);
    equal([polite.pc.signalingState, impolite.pc.signalingState], ["stable", "stable"]);
    equal(impolite.pc.remoteDescription.type, "answer");
  });

test("candidates that arrive before the remote description are queued, then applied",
  async () => {
    const {polite, impolite} = pair();
    await settle();
    const candidate = impolite.outbox.find((m) => m.candidate);
    assert(candidate, "impolite gathered no candidate");
    await polite.link.handle(candidate); // before the offer
    equal(polite.pc.candidates.length, 0, "added before the remote description");
    assert(!polite.pc.log.some((l) => l.startsWith("candidate")), "tried too early");
    await deliver(impolite, polite, (m) => !!m.description);
    equal(polite.pc.candidates, [candidate.candidate], "the early candidate was not applied");
    equal(descriptions(polite, "answer").length, 1);
  });

test("rollback: the polite side's tracks travel in its answer; the offer is not repeated",
  async () => {
    const {polite, impolite} = await glare();
    await deliver(polite, impolite);
    await deliver(impolite, polite);
    equal(polite.pc.localDescription.type, "answer", "the rolled-back offer is still local");
    assert(/m=audio\r\nm=video/.test(polite.pc.localDescription.sdp), "tracks not answered");
    equal(polite.pc.log.filter((l) => l === "local offer").length, 1, "polite offers");
    equal(impolite.pc.log.filter((l) => l === "local offer").length, 1, "impolite offers");
  });

/** Two sides connected by one offer/answer. */
async function connected() {
  const p = pair();
  await settle();
  await deliver(p.impolite, p.polite);
  await deliver(p.polite, p.impolite);
  equal([p.polite.pc.signalingState, p.impolite.pc.signalingState], ["stable", "stable"]);
  return p;
}

const ufrag = (d) => /a=ice-ufrag:(\S+)/.exec(d.sdp)[1];

test("restartIce(servers): fresh ICE servers and credentials, answered by the other side",
  async () => {
    for (const who of ["polite", "impolite"]) {
      const p = await connected();
      const me = p[who], other = who === "polite" ? p.impolite : p.polite;
      const before = ufrag(me.pc.localDescription);
      const servers = [{urls: "stun:stun.samtale.test"}];
      me.link.restartIce(servers);
      equal(me.pc.getConfiguration().iceServers, servers, `${who}: servers`);
      await settle();
      const offers = descriptions(me, "offer");
      equal(offers.length, 1, `${who}: restart offers`);
      assert(ufrag(offers[0].description) !== before, `${who}: same ICE credentials`);
      await deliver(me, other);
      await deliver(other, me);
      equal([me.pc.signalingState, other.pc.signalingState], ["stable", "stable"], who);
      equal(ufrag(other.pc.remoteDescription), ufrag(me.pc.localDescription), who);
    }
  });

test("ICE failed: the link restarts ICE by itself", async () => {
  const {polite} = await connected();
  polite.pc.setIce("failed");
  await settle();
  assert(polite.pc.log.includes("restartIce"), "no restart");
  equal(descriptions(polite, "offer").length, 1, "no restart offer");
});

test("ICE that never starts: the impolite side restarts it, the polite side does not",
  async () => {
    const {clock, polite, impolite} = await connected();
    clock.tick(STALL_MS - 1);
    await settle();
    assert(!impolite.pc.log.includes("restartIce"), "restarted too early");
    clock.tick(1);
    await settle();
    assert(impolite.pc.log.includes("restartIce"), "the impolite side did not restart");
    assert(!polite.pc.log.includes("restartIce"), "the polite side restarted too");
    equal(descriptions(impolite, "offer").length, 1, "no restart offer");
  });

test("a closed link sends nothing and handles nothing", async () => {
  const {clock, polite, impolite} = pair();
  await settle();
  polite.link.close();
  equal(clock.timers.size, 0, "the polite side's offer timer outlived close()");
  await deliver(impolite, polite);
  clock.tick(POLITE_MS + STALL_MS);
  await settle();
  equal(polite.outbox, []);
  equal(polite.pc.remoteDescription, null, "a closed link took the offer");
});
