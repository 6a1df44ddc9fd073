// A hearing's court procedure in the page: what each role is offered, what a board row offers,
// what a place says (and its changes), counsel's choices, and the tiles following what the
// portal sends (a neutral tile when the video is withheld). The server decides every right;
// these check what the page shows of it.
import {createCourt} from "/static/js/court.js";
import {renderBoard} from "/static/js/court-board.js";
import {renderCounsel, renderPlace, tickedMembers} from "/static/js/court-guest.js";
import {benchMembers, controlsFor, counselChoices, feedOf, hearingActions, mayOpenRoom, placeView,
  rowActions, screeningChoices} from "/static/js/court-state.js";
import {createHearing} from "/static/js/hearing.js";
import {createTiles} from "/static/js/tiles.js";
import {translator} from "/static/js/text.js";
import {assert, equal, settle, test} from "./runner.js";

const t = translator({}); // keys show as themselves
const row = (id, role, extra = {}) => ({id, name: `${role} ${id}`, role, place: "waiting",
  state: "in_call", room: null, interprets_for: null, mute_locked: false, screened_from: [],
  ...extra});
const BOARD = {stage: "opening", rooms: [], observers: 2, participants: [
  row(1, "judge", {place: "hearing"}), row(2, "clerk", {place: "hearing"}), row(3, "panel"),
  row(4, "counsel"), row(5, "party"), row(6, "witness"),
  row(7, "interpreter", {interprets_for: 6}), row(8, "party", {state: "not_joined"}),
]};

// --- controls by role --------------------------------------------------------------------

test("court: the board and bench messages are the hosts'; counsel a private room", () => {
  const shown = (role) => Object.entries(controlsFor(role)).filter(([, on]) => on)
    .map(([k]) => k);
  for (const role of ["judge", "clerk", "host"]) {
    equal(shown(role), ["board", "bench", "publish", "chat"], role);
  }
  equal(shown("panel"), ["publish", "chat"]);
  equal(shown("counsel"), ["counsel", "publish", "chat"]);
  for (const role of ["party", "witness", "interpreter", "expert"]) {
    equal(shown(role), ["publish", "chat"], role);
  }
  equal(shown("observer"), [], "an observer sends nothing and has no chat");
});

test("court: the hearing's buttons follow its stage; recall only with rooms in use", () => {
  equal(hearingActions(BOARD, 2), ["start", "mute_all", "mute_all_lock", "bench"]);
  equal(hearingActions({...BOARD, stage: "in_session"}, 2),
    ["pause", "mute_all", "mute_all_lock"]);
  equal(hearingActions({...BOARD, stage: "paused", rooms: [{id: 1, kind: "counsel"}]}, 2),
    ["resume", "mute_all", "mute_all_lock", "bench", "recall"]);
});

test("court: a row offers call before dismiss, never on a host or ourselves", () => {
  const [judge, clerk, panel, , party, witness, interpreter, absent] = BOARD.participants;
  equal(rowActions(judge, BOARD, 2), [], "another host");
  equal(rowActions(clerk, BOARD, 2), [], "ourselves");
  equal(rowActions(panel, BOARD, 2), ["mute", "mute_lock"], "the panel: muted, never moved");
  equal(rowActions(witness, BOARD, 2), ["mute", "mute_lock", "screen", "remove"],
    "no call before the start");
  const started = {...BOARD, stage: "in_session"};
  equal(rowActions(witness, started, 2), ["call", "mute", "mute_lock", "screen", "remove"]);
  equal(rowActions({...witness, place: "hearing"}, started, 2),
    ["dismiss", "mute", "mute_lock", "screen", "remove"]);
  equal(rowActions(interpreter, started, 2), ["mute", "mute_lock", "screen", "remove"],
    "an interpreter moves with their principal");
  equal(rowActions({...party, mute_locked: true}, started, 2),
    ["call", "unlock", "screen", "remove"], "a latecomer is called in; a lock is lifted");
  equal(rowActions(absent, started, 2), ["screen", "remove"], "not in the call: nothing to move");
  equal(rowActions({...party, state: "removed"}, started, 2), ["screen"]);
});

test("court: screening offers guests only, never an interpreter and their principal", () => {
  const [, , , , party, witness, interpreter] = BOARD.participants;
  const choices = screeningChoices({...witness, screened_from: [5]}, BOARD);
  equal(choices.map((c) => [c.id, c.on]), [[4, false], [5, true], [8, false]]);
  equal(screeningChoices(interpreter, BOARD).map((c) => c.id), [4, 5, 8]);
  assert(!screeningChoices(party, BOARD).some((c) => c.id === 5), "not from themselves");
});

// --- places ------------------------------------------------------------------------------

test("court: each place says where one is; a witness waits to be called", () => {
  const own = (stage, place, room = null) => ({stage, place, room, mute_locked: false});
  equal(placeView(own("opening", "waiting"), "party").key, "place_waiting_start");
  equal(placeView(own("opening", "waiting"), "witness").key, "place_waiting_called");
  equal(placeView(own("in_session", "waiting"), "interpreter").key, "place_waiting_called");
  // An interpreter waits with whom they interpret for: a party's goes in at the start.
  const forParty = {...own("opening", "waiting"), interprets_for: {id: 5, name: "Pat",
    role: "party"}};
  equal(placeView(forParty, "interpreter"), {place: "waiting", key: "place_waiting_with_start",
    vars: {name: "Pat"}, private: false, room: null});
  const forWitness = {...forParty, interprets_for: {id: 6, name: "Wes", role: "witness"}};
  equal(placeView(forWitness, "interpreter").key, "place_waiting_with_called");
  equal(placeView(own("in_session", "hearing"), "party").key, "place_hearing");
  equal(placeView(own("paused", "hearing"), "party").key, "place_hearing_paused");
  const room = {id: 3, kind: "counsel", private: true, recorded: false};
  const inRoom = placeView(own("paused", "consultation", room), "party");
  equal([inRoom.place, inRoom.key, inRoom.private], ["consultation", "place_private", true]);
  equal(placeView(own("paused", "consultation", {...room, kind: "bench"}), "judge").key,
    "place_bench");
  equal(placeView(own("in_session", "waiting"), "observer").key, "place_observer_in_session");
  equal(placeView(null, "party").key, "place_waiting_start", "before any state");
});

function placeParts() {
  const box = document.createElement("div");
  const make = (tag) => box.appendChild(document.createElement(tag));
  return {box, text: make("p"), private: make("p"), opened: make("p"), leave: make("button"),
    observers: make("p")};
}

test("court: a private room shows its banner and who took us there, until we leave", () => {
  const el = placeParts();
  const room = {id: 3, kind: "counsel", private: true, recorded: false,
    opened_by: {id: 4, name: "Cora Counsel"}};
  renderPlace({t, own: {stage: "opening", place: "waiting", room: null, observers: 0},
    role: "party", selfId: 5, el});
  equal([el.box.hidden, el.private.hidden, el.leave.hidden, el.observers.hidden],
    [false, true, true, true]);
  equal(el.text.textContent, "place_waiting_start");
  renderPlace({t, own: {stage: "opening", place: "consultation", room, observers: 1},
    role: "party", selfId: 5, el});
  equal([el.box.dataset.private, el.private.hidden, el.leave.hidden], ["true", false, false]);
  equal([el.opened.hidden, el.opened.textContent], [false, "room_opened_by"]);
  equal(el.observers.hidden, false, "a count of observers, nobody's name");
  renderPlace({t, own: {stage: "opening", place: "consultation", room, observers: 1},
    role: "counsel", selfId: 4, el});
  equal(el.opened.hidden, true, "counsel opened it themselves");
  renderPlace({t, own: {stage: "in_session", place: "hearing", room: null, observers: 1},
    role: "party", selfId: 5, el});
  equal([el.box.dataset.place, el.private.hidden, el.leave.hidden], ["hearing", true, true]);
  renderPlace({t, own: {stage: "in_session", place: "hearing", room: null}, role: "judge",
    selfId: 1, el});
  equal(el.box.hidden, true, "a host has the board instead");
  renderPlace({t, own: {stage: "paused", place: "consultation", room: {id: 2, kind: "bench"}},
    role: "judge", selfId: 1, el});
  equal([el.box.hidden, el.private.hidden, el.text.textContent], [false, false, "place_bench"]);
});

test("court: counsel may take aside their parties and other counsel, not in session", () => {
  const own = {stage: "opening", place: "waiting", represents: [{id: 5, name: "Pat"}]};
  const peers = [{id: 4, role: "counsel", name: "Me"}, {id: 9, role: "counsel", name: "Other"},
    {id: 8, role: "party", name: "Not mine"}, {id: 6, role: "witness", name: "W"}];
  equal(counselChoices(own, peers, 4), [{id: 5, name: "Pat", with: false},
    {id: 9, name: "Other", with: false}]);
  equal(mayOpenRoom(own), true);
  equal(mayOpenRoom({...own, stage: "in_session"}), false);
  equal(mayOpenRoom({...own, place: "consultation"}), false);
  const list = document.createElement("ul");
  const el = {list, open: document.createElement("button"), leave: document.createElement("button"),
    nobody: document.createElement("p"), inSession: document.createElement("p")};
  renderCounsel({t, own, peers, selfId: 4, inRoom: new Set(), el});
  equal([el.open.hidden, el.open.disabled, el.leave.hidden], [false, false, true]);
  list.querySelector("input[value='9']").checked = false;
  equal(tickedMembers(list), [5]);
  renderCounsel({t, own: {...own, place: "consultation"}, peers, selfId: 4,
    inRoom: new Set([5]), el});
  equal([el.open.hidden, el.leave.hidden], [true, false]);
  equal([...list.querySelectorAll("[data-court-action=invite]")].map((b) => b.dataset.participant),
    ["9"], "invite whoever is not with us yet");
});

test("court: the bench room takes the judge and the panel in the call, outside a session", () => {
  equal(benchMembers(BOARD, 2), [1, 3], "the clerk opens it for the judge and the panel");
  equal(benchMembers(BOARD, 1), [3], "the judge takes the panel");
  equal(hearingActions(BOARD, 1).includes("bench"), true);
  equal(hearingActions({...BOARD, stage: "in_session"}, 1).includes("bench"), false);
  const away = {...BOARD, participants: BOARD.participants.map((p) => (p.id === 3
    ? {...p, state: "not_joined"} : p))};
  equal(benchMembers(away, 1), [], "nobody to take: no button");
  equal(hearingActions(away, 1).includes("bench"), false);
});

test("court: the board draws every row with its actions; removing is marked dangerous", () => {
  const el = {stage: document.createElement("strong"), observers: document.createElement("span"),
    rooms: document.createElement("span"), actions: document.createElement("p"),
    list: document.createElement("ul")};
  const board = {...BOARD, stage: "in_session", rooms: [{id: 1, kind: "counsel"}],
    participants: BOARD.participants.map((p) => (p.id === 6 ? {...p, screened_from: [5]} : p))};
  renderBoard({t, roles: {witness: "Witness"}, board, selfId: 2, el});
  equal([...el.actions.children].map((b) => b.dataset.courtAction),
    ["pause", "mute_all", "mute_all_lock", "recall"]);
  equal(el.list.children.length, 8);
  const witness = el.list.querySelector("[data-court-row='6']");
  equal([witness.dataset.place, witness.dataset.state], ["waiting", "in_call"]);
  equal([...witness.querySelectorAll("button")].map((b) => b.dataset.courtAction),
    ["call", "mute", "mute_lock", "screen", "remove"]);
  equal(witness.querySelector("[data-court-action=remove]").className, "danger");
  assert(witness.querySelector(".badge.screened"), "screening is shown");
  assert(witness.textContent.includes("Witness"), "the role's label");
  const interpreter = el.list.querySelector("[data-court-row='7']");
  assert(interpreter.textContent.includes("interprets_for"), "whom they interpret for");
  equal(el.rooms.hidden, false);
  const quality = {...board, participants: [row(5, "party", {quality: "poor"})]};
  renderBoard({t, roles: {}, board: quality, selfId: 2, el});
  assert(el.list.querySelector(".badge.quality-poor"), "the connection's quality, when known");
  const stuck = {...board, participants: [row(5, "party", {state: "device_check_failed",
    device_check: {media: "fail", network: "ok"}})]};
  const said = translator({state_device_check_failed: "Device check failed",
    check_failed_what: "{state}: {what}", check_failed_media: "camera or microphone"});
  renderBoard({t: said, roles: {}, board: stuck, selfId: 2, el});
  const state = el.list.querySelector(".badge.state-device_check_failed");
  equal(state.textContent, "Device check failed: camera or microphone", "says what failed");
});

// --- tiles follow what the portal sends --------------------------------------------------

function realTrack(kind) {
  if (kind === "audio") {
    return new AudioContext().createMediaStreamDestination().stream.getAudioTracks()[0];
  }
  const canvas = document.createElement("canvas");
  canvas.getContext("2d");
  return canvas.captureStream().getVideoTracks()[0];
}

class OfferPc extends EventTarget {
  constructor() {
    super();
    this.signalingState = "stable";
    this.transceivers = [];
    this.remoteDescription = null;
    this.localDescription = null;
  }

  async setRemoteDescription(d) {
    this.remoteDescription = d;
    for (const [, mid, kind] of d.sdp.matchAll(/^m:(\w+):(\w+)$/gm)) {
      if (!this.transceivers.some((x) => x.mid === mid)) {
        this.transceivers.push({mid, currentDirection: "recvonly", stopped: false,
          receiver: {track: realTrack(kind)}});
      }
    }
    this.signalingState = "have-remote-offer";
  }

  async setLocalDescription() {
    this.localDescription = {type: "answer", sdp: "answer"};
    this.signalingState = "stable";
  }

  getTransceivers() { return this.transceivers; }
  close() { this.signalingState = "closed"; }
}

const offer = (version, lines) => ({
  sdp: `v=0\r\no=- 1 ${version} IN IP4 127.0.0.1\r\ns=-\r\n` +
    lines.map(([mid, , kind]) => `m:${mid}:${kind}`).join("\n") + "\n",
  streams: lines.map(([mid, id, kind]) => ({mid, participant_id: id, kind})),
});

test("court: tiles follow the subscription; a withheld video is a neutral tile", async () => {
  const room = Object.assign(document.createElement("div"), {id: "room"});
  const container = document.createElement("div");
  const alone = document.createElement("p");
  const soundOn = document.createElement("button");
  room.append(container, alone, soundOn);
  document.body.append(room);
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = OfferPc;
  try {
    const tiles = createTiles({container, alone, soundOn, t});
    const handlers = {};
    const sent = [];
    const people = {5: {id: 5, name: "Pat Party", audio: true, video: true},
      6: {id: 6, name: "Wendy Witness", audio: true, video: true}};
    const hearing = createHearing({t, media: {stream: new MediaStream()}, tiles, container,
      emit: (event) => sent.push(event), iceServers: () => [], selfId: () => 5,
      inCall: () => true, peer: (id) => people[id] || null, netStatus: () => {},
      alertUser: () => {}, refreshJoin: () => {}});
    const feeds = [];
    hearing.onFeeds = (ids) => feeds.push(ids);
    hearing.attach({on: (event, fn) => { handlers[event] = fn; }});
    handlers.welcome({media: "janus"});
    const tile = (id) => container.querySelector(`[data-peer-tile="${id}"]`);
    // Screened: the witness's audio only. Nobody else's tile.
    handlers["hearing:offer"](offer(1, [["0", 6, "audio"]]));
    await settle();
    equal(tile(6).dataset.feed, "audio", "a neutral tile with the name");
    equal(tile(6).querySelector(".name").textContent, "Wendy Witness");
    equal(tile(6).querySelector(".initials").textContent, "WW");
    equal(container.querySelectorAll("[data-peer-tile]").length, 1);
    // The screening lifted: picture and sound on the same tile.
    handlers["hearing:offer"](offer(2, [["0", 6, "audio"], ["1", 6, "video"]]));
    await settle();
    equal(tile(6).dataset.feed, "av");
    equal(tile(6).querySelector("video").srcObject.getTracks().length, 2);
    // Dismissed to the waiting room: the tile goes with the streams.
    handlers["hearing:offer"](offer(3, []));
    await settle();
    equal(tile(6), null);
    equal(feeds, [[6], [6], []]);
    equal(sent.filter((e) => e === "hearing:subscribe").length, 3);
    hearing.stop();
  } finally {
    window.RTCPeerConnection = Native;
    room.remove();
  }
});

test("court: a feed's kind: picture and sound, sound only, or nothing", () => {
  equal(feedOf({audio: {}, video: {}}), "av");
  equal(feedOf({audio: {}, video: null}), "audio");
  equal(feedOf({audio: null, video: {}}), "video");
  equal(feedOf(undefined), null);
});

// --- the room's court part, wired to a fake socket ----------------------------------------

/** The elements court.js reads (as templates/call/_room.html has them in a hearing). */
function courtPage() {
  const root = document.createElement("div");
  root.id = "room";
  const add = (tag, id, parent = root, extra = {}) => {
    const el = Object.assign(document.createElement(tag), {id}, extra);
    parent.append(el);
    return el;
  };
  add("input", "declaration-ack", root, {type: "checkbox"});
  const toggle = add("button", "court-toggle", root, {hidden: true});
  toggle.append(Object.assign(document.createElement("span"), {className: "ctl-label"}));
  const panel = add("aside", "court-panel");
  add("button", "court-close", panel);
  for (const part of ["board", "bench", "counsel"]) {
    const section = add("section", "", panel, {hidden: true});
    section.dataset.courtPart = part;
  }
  for (const id of ["court-stage", "court-observers", "court-rooms", "court-actions"]) {
    add("p", id, panel);
  }
  for (const id of ["court-board", "counsel-list"]) { add("ul", id, panel); }
  for (const id of ["counsel-open", "counsel-leave"]) { add("button", id, panel); }
  for (const id of ["counsel-nobody", "counsel-in-session"]) { add("p", id, panel); }
  add("ol", "bench-log", panel);
  const form = add("form", "bench-form", panel);
  add("input", "bench-input", form);
  const place = add("div", "court-place", root, {hidden: true});
  for (const id of ["court-place-text", "court-private", "court-opened", "court-place-observers"]) {
    add("p", id, place);
  }
  add("button", "court-leave", place);
  add("p", "court-live");
  for (const id of ["court-confirm", "court-screen"]) { add("dialog", id); }
  for (const id of ["court-confirm-text", "court-screen-title"]) { add("p", id); }
  add("ul", "court-screen-list");
  for (const id of ["court-confirm-yes", "court-confirm-no", "court-screen-done"]) {
    add("button", id);
  }
  document.body.append(root);
  return root;
}

function wiredCourt(role, id) {
  const root = courtPage();
  const handlers = {};
  const sent = [];
  const calls = {muted: 0, lock: 0, join: 0};
  const court = createCourt({t, roles: {}, room: root, emit: (e, p) => sent.push([e, p]),
    peers: () => [], refreshJoin: () => { calls.join += 1; },
    muted: () => { calls.muted += 1; }, lockChanged: () => { calls.lock += 1; }});
  court.attach({on: (event, fn) => { handlers[event] = fn; }});
  handlers.welcome({appointment: {kind: "hearing"}, self: {id, role}});
  return {root, court, handlers, sent, calls,
    done: () => { root.remove(); delete document.body.dataset.place; }};
}

test("court: the panel, its parts and the declaration, by role", () => {
  for (const [role, toggle, parts] of [["clerk", false, ["board", "bench"]],
    ["counsel", false, ["counsel"]], ["party", true, []], ["observer", true, []]]) {
    const {root, court, calls, done} = wiredCourt(role, 9);
    try {
      equal(root.querySelector("#court-toggle").hidden, toggle, role);
      equal([...root.querySelectorAll("[data-court-part]")].filter((s) => !s.hidden)
        .map((s) => s.dataset.courtPart), parts, role);
      equal([court.mayJoin(), court.joinExtras()], [false, {}], "the declaration first");
      const box = root.querySelector("#declaration-ack");
      box.checked = true;
      box.dispatchEvent(new Event("change"));
      equal([court.mayJoin(), court.joinExtras(), calls.join], [true, {declaration: true}, 1]);
      court.declarationRefused();
      equal(court.mayJoin(), false);
    } finally {
      done();
    }
  }
});

test("court: a guest's place follows hearing:state; a lock follows hearing:muted", () => {
  const {root, court, handlers, calls, done} = wiredCourt("party", 5);
  try {
    const state = (place, room = null, extra = {}) => ({stage: "opening", place, room,
      mute_locked: false, represents: [], observers: 0, ...extra});
    handlers["hearing:state"](state("waiting"));
    equal([document.body.dataset.place, court.hook.place], ["waiting", "waiting"]);
    equal(root.querySelector("#court-live").textContent, "place_waiting_start");
    handlers["hearing:state"](state("consultation", {id: 1, kind: "counsel", private: true,
      recorded: false, opened_by: {id: 4, name: "Cole"}}));
    equal(document.body.dataset.place, "consultation");
    equal(root.querySelector("#court-private").hidden, false);
    equal(root.querySelector("#court-live").textContent, "invited place_private",
      "who took us aside is said aloud");
    handlers["hearing:muted"]({locked: true});
    equal([court.muteLocked, calls.muted, calls.lock], [true, 1, 1]);
    handlers["hearing:state"](state("hearing", null, {stage: "in_session", mute_locked: true}));
    equal([court.muteLocked, calls.lock], [true, 1], "no change, no redraw");
    handlers["hearing:state"](state("hearing", null, {stage: "in_session"}));
    equal([court.muteLocked, calls.lock], [false, 2]);
    equal(root.querySelector("#court-private").hidden, true);
  } finally {
    done();
  }
});

test("court: a host's buttons send the procedure's events; start and remove ask first", () => {
  const {root, handlers, sent, done} = wiredCourt("clerk", 2);
  const dialog = root.querySelector("#court-confirm");
  dialog.showModal = () => { dialog.open = true; };
  dialog.close = () => { dialog.open = false; };
  try {
    handlers["hearing:state"]({...BOARD, participants: BOARD.participants});
    const click = (selector) => root.querySelector(selector).click();
    click("[data-court-action=start]");
    equal(sent, [], "nothing before the confirmation");
    click("#court-confirm-yes");
    equal(sent, [["hearing:start", {}]]);
    handlers["hearing:state"]({...BOARD, stage: "in_session"});
    click("[data-court-action=call][data-participant='6']");
    click("[data-court-action=mute_lock][data-participant='5']");
    click("[data-court-action=remove][data-participant='5']");
    click("#court-confirm-no");
    click("[data-court-action=remove][data-participant='8']");
    click("#court-confirm-yes");
    equal(sent.slice(1), [["hearing:call", {participant: 6}],
      ["hearing:mute", {participant: 5, lock: true}], ["hearing:remove", {participant: 8}]]);
    handlers["bench:message"]({id: 1, from: {id: 1, name: "Judge"}, text: "Ready",
      sent_at: "2026-12-01T07:00:00Z"});
    assert(root.querySelector("#bench-log").textContent.includes("Ready"));
  } finally {
    done();
  }
});
