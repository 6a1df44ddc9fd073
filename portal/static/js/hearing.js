// A hearing's media (docs/signaling.md, "Hearings through Janus"): when `welcome` says the
// call goes through the media server (`media: "janus"`), the room opens no PeerLinks. It sends
// its camera and microphone on one send-only connection (hearing-publish.js) and receives
// everyone the portal allows on one receive-only connection (hearing-subscribe.js), lays the
// tiles out around the active speaker (hearing-layout.js) and asks for each feed's layer by
// its tile's size (hearing-layers.js). Joining, the controls, the chat and the recording
// notice are the room's own (call.js, controls.js, record.js).
import {feedOf} from "./court-state.js";
import {LayerPicker} from "./hearing-layers.js";
import {createLayout} from "./hearing-layout.js";
import {Publisher} from "./hearing-publish.js";
import {downlink, receiveStats} from "./hearing-stats.js";
import {Subscriber} from "./hearing-subscribe.js";
import {ConnectionSampler} from "./stats.js";

// A send-only connection that failed (a network change) is made again after this long.
const REPUBLISH_MS = 2000;

/**
 * parts: {t, media (LocalMedia), tiles (tiles.js), container (#tiles), emit(event, payload),
 * iceServers(), selfId(), inCall(), peer(id) -> {id, name, ...} or null, netStatus(message),
 * alertUser(message), refreshJoin(), timers}.
 */
export function createHearing({t, media, tiles, container, emit, iceServers, selfId, inCall,
                               peer, netStatus, alertUser, refreshJoin, timers = globalThis}) {
  const $ = (id) => document.getElementById(id);
  let active = false;
  let status = "ok"; // ok | reconnecting | unavailable
  let publisher = null;
  let subscriber = null;
  let republishTimer = null;
  let videoFeeds = new Set(); // participants whose video we receive now
  const shown = new Map(); // participant id -> MediaStream on their tile
  const sampler = new ConnectionSampler();
  let sampledPc = null;

  const layers = new LayerPicker({
    send: (id, substream) => emit("hearing:layer", {participant_id: id, substream}),
    timers,
  });
  const layout = createLayout({
    container, selfId,
    resized: (id, width) => { if (videoFeeds.has(id)) { layers.update(id, width); } },
  });
  const RTC = () => window.RTCPeerConnection; // looked up late: the e2e tests wrap it

  // ------------------------------------------------------------------ sending

  function publish() {
    timers.clearTimeout(republishTimer);
    republishTimer = null;
    if (publisher) { publisher.close(); publisher = null; }
    if (!active || !inCall() || status !== "ok") { return; }
    const mine = new Publisher({
      stream: media.stream, iceServers: iceServers(), emit, RTCPeerConnection: RTC(),
      onState: (connection) => {
        if (connection === "failed" && publisher === mine && !republishTimer) {
          republishTimer = timers.setTimeout(publish, REPUBLISH_MS);
        }
      },
    });
    publisher = mine;
    mine.start().then((sent) => {
      if (!sent && publisher === mine) { mine.close(); publisher = null; }
    }).catch((err) => {
      console.warn("samtale: publishing to the hearing failed", err);
      if (publisher !== mine) { return; }
      mine.close();
      publisher = null;
      alertUser(t("hearing_send_failed"));
    });
  }

  async function replaceTrack(kind, track) {
    if (!active || !inCall() || status !== "ok") { return; }
    if (!media.stream.getTracks().length) {
      // Both devices gone: stop sending rather than offer nothing.
      if (publisher) { publisher.close(); publisher = null; }
      emit("hearing:unpublish", {});
      return;
    }
    let done = false;
    try {
      done = !!publisher && await publisher.replaceTrack(kind, track);
    } catch (err) {
      console.warn("samtale: replaceTrack", err);
    }
    if (!done) { publish(); } // a kind we did not send yet, or one gone: offer anew
  }

  // ------------------------------------------------------------------ receiving

  function offer(message) {
    if (!active || !inCall() || !message) { return; }
    if (!subscriber) {
      subscriber = new Subscriber({
        iceServers: iceServers(), emit, RTCPeerConnection: RTC(), onTracks: showTracks,
        onState: (connection) => {
          const lost = connection === "failed" || connection === "disconnected";
          for (const id of videoFeeds) { tiles.setReconnecting(id, lost); }
        },
      });
    }
    subscriber.offer(message);
  }

  /**
   * After each offer (fresh: of a new session): a tile for each participant we receive, and
   * none for anyone else (the portal decides: the waiting room, private rooms, screening);
   * a feed without video (withheld by screening, or no camera) is a neutral tile with the
   * name. Layers for new feeds.
   */
  function showTracks(received, fresh) {
    const before = videoFeeds;
    videoFeeds = new Set([...received].filter(([, tr]) => tr.video).map(([id]) => id));
    for (const [id, tracks] of received) {
      const wanted = [tracks.audio, tracks.video].filter(Boolean);
      const old = shown.get(id);
      if (!old || !sameTracks(old.getTracks(), wanted)) {
        const stream = new MediaStream(wanted);
        shown.set(id, stream);
        const who = peer(id) || {id, name: ""};
        tiles.attach(who, {streams: [stream], track: wanted[0]});
        tiles.setMedia(tiles.of(id), who.audio, who.video);
        tiles.setReconnecting(id, false);
      }
      tiles.setFeed(id, feedOf(tracks));
    }
    for (const id of [...shown.keys()]) {
      if (received.has(id)) { continue; }
      shown.delete(id); // no longer ours to receive (left, or not allowed any more)
      tiles.remove(id);
    }
    if (api.onFeeds) { api.onFeeds([...received.keys()]); }
    layout.render();
    for (const id of before) { if (!videoFeeds.has(id)) { layers.forget(id); } }
    const sent = layers.wanted();
    // A new subscription starts each feed at the server's default layer: ask again.
    if (fresh) { layers.resend(videoFeeds); }
    for (const id of videoFeeds) {
      if (!sent.has(id)) { layers.update(id, layout.width(id)); }
    }
  }

  function sameTracks(a, b) {
    return a.length === b.length && a.every((track) => b.includes(track));
  }

  // ------------------------------------------------------------------ the media server's state

  function setStatus(next, message) {
    status = next;
    document.body.dataset.hearing = next;
    const box = $("hearing-unavailable");
    if (box) {
      box.hidden = next !== "unavailable";
      $("hearing-unavailable-text").textContent = next === "unavailable" ? message || "" : "";
    }
    if (next === "reconnecting") {
      stopMedia(); // Janus is gone, and its connections with it
      if (inCall()) { netStatus(t("hearing_reconnecting")); }
      for (const tile of container.querySelectorAll("[data-peer-tile]")) {
        tiles.setReconnecting(Number(tile.dataset.peerTile), true);
      }
    } else if (next === "ready") {
      // Our place in the media server's room exists (after call:joined, or after the media
      // server came back): send afresh; a hearing:offer follows.
      status = "ok";
      document.body.dataset.hearing = "ok";
      if (inCall()) { netStatus(""); }
      for (const tile of container.querySelectorAll("[data-peer-tile]")) {
        tiles.setReconnecting(Number(tile.dataset.peerTile), false);
      }
      publish();
    } else if (next === "unavailable") {
      stopMedia();
    }
    refreshJoin();
  }

  function stopMedia() {
    timers.clearTimeout(republishTimer);
    republishTimer = null;
    if (publisher) { publisher.close(); publisher = null; }
    if (subscriber) { subscriber.close(); subscriber = null; }
    layers.clear();
    videoFeeds = new Set();
    shown.clear();
  }

  // ------------------------------------------------------------------ for the room

  function attach(socket) {
    socket.on("welcome", (welcome) => {
      active = !!welcome && welcome.media === "janus";
      if (!active) { return; }
      document.getElementById("room").dataset.media = "janus";
      layout.start();
    });
    socket.on("hearing:answer", ({sdp} = {}) => {
      if (!publisher || typeof sdp !== "string") { return; }
      const mine = publisher;
      mine.answer(sdp).catch((err) => {
        console.warn("samtale: the hearing's answer failed", err);
        if (publisher === mine) { publish(); }
      });
    });
    socket.on("hearing:offer", offer);
    socket.on("hearing:speaker", ({participant_id: id} = {}) => {
      if (active && Number.isInteger(id)) { layout.setSpeaker(id); }
    });
    socket.on("hearing:media", ({state, message} = {}) => {
      if (["reconnecting", "ready", "unavailable"].includes(state)) { setStatus(state, message); }
    });
  }

  const api = {
    /** Set by the room: (participant ids) after each offer, whose media we receive now. */
    onFeeds: null,
    attach,
    get active() { return active; },
    /** Join stays off while there is no media server. */
    mayJoin() { return !active || status !== "unavailable"; },
    /**
     * call:joined (again). The portal says `hearing:media` "ready" once our place in the media
     * server's room exists, and we publish then; until then, nothing of ours is sent.
     */
    joined() {
      if (publisher) { publisher.close(); publisher = null; }
    },
    /** A participant left the call. */
    removed(id) {
      layers.forget(id);
      layout.forget(id);
      shown.delete(id);
      videoFeeds.delete(id);
    },
    replaceTrack,
    /** Leaving, or the call's connections closing: stop sending and receiving. */
    stop: stopMedia,
    /** A refused hearing:* event; the message to show ("" for none). */
    errorMessage({code, message, event} = {}) {
      // A layer or candidate that raced a change (a feed gone, a connection replaced).
      if (event === "hearing:layer" || event === "hearing:candidate") { return ""; }
      if (event === "hearing:publish" && publisher) { publisher.close(); publisher = null; }
      return message || t("error_generic", {message: code || "?"});
    },
    /** For quality.js: the receive-only connection, sampled like a PeerLink. */
    qualitySources() {
      const pc = subscriber && subscriber.pc;
      if (!pc) { return []; }
      if (pc !== sampledPc) { sampler.reset(); sampledPc = pc; }
      return [{sample: () => sampler.sample(pc)}];
    },
    /** For window.samtale.hearing (hooks.js). */
    hook: {
      get active() { return active; },
      get status() { return status; },
      get publishPc() { return publisher ? publisher.pc : null; },
      get subscribePc() { return subscriber ? subscriber.pc : null; },
      /** mid -> {participantId, kind} of the current subscription. */
      get streams() { return subscriber ? new Map(subscriber.map) : new Map(); },
      /** participant id -> substream asked for. */
      get layers() { return layers.wanted(); },
      get large() { return layout.large; },
      stats() {
        return receiveStats(subscriber && subscriber.pc, subscriber ? subscriber.map : new Map());
      },
      /** The receive-only connection's downlink in bit/s over the next ms. */
      downlink(ms = 2000) { return downlink(subscriber && subscriber.pc, ms); },
    },
  };
  return api;
}
