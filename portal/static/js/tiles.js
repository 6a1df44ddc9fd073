// The call's tiles: one per other participant, with their video, initials, name and badges
// (muted, camera off, reconnecting).

/** container: #tiles; alone: shown while no tile is; soundOn: the "turn on the sound" button. */
export function createTiles({container, alone, soundOn, t}) {
  function of(id) {
    return container.querySelector(`[data-peer-tile="${Number(id)}"]`);
  }

  function updateAlone() {
    alone.hidden = container.querySelector(".tile") !== null;
    container.dataset.count = String(container.querySelectorAll(".tile").length);
  }

  function build(id) {
    const tile = document.createElement("figure");
    tile.className = "tile";
    tile.dataset.peerTile = String(id);
    const video = document.createElement("video");
    video.className = "remote";
    video.autoplay = true;
    video.playsInline = true;
    video.setAttribute("playsinline", "");
    video.dataset.peer = String(id);
    const initials = document.createElement("div");
    initials.className = "initials";
    initials.setAttribute("aria-hidden", "true");
    const caption = document.createElement("figcaption");
    const name = document.createElement("span");
    name.className = "name";
    const badges = document.createElement("span");
    badges.className = "badges";
    for (const [cls, key] of [["b-muted", "muted"], ["b-camera", "camera_is_off"],
      ["b-reconnecting", "reconnecting"]]) {
      const badge = document.createElement("span");
      badge.className = "badge " + cls;
      badge.textContent = t(key);
      badge.hidden = true;
      badges.append(badge);
    }
    caption.append(name, badges);
    tile.append(video, initials, caption);
    container.append(tile);
    return tile;
  }

  /** The tile of a peer {id, name}, made when missing; its name kept current. */
  function ensure(peer) {
    const tile = of(peer.id) || build(peer.id);
    const label = peer.name || "";
    tile.querySelector(".name").textContent = label;
    tile.querySelector(".initials").textContent = label.split(/\s+/).filter(Boolean)
      .slice(0, 2).map((w) => w[0]).join("").toUpperCase();
    tile.querySelector("video").setAttribute("aria-label", label);
    updateAlone();
    return tile;
  }

  function setMedia(tile, audio, video) {
    if (!tile) { return; }
    tile.dataset.audio = audio === false ? "off" : "on";
    tile.dataset.video = video === false ? "off" : "on";
    tile.querySelector(".b-muted").hidden = audio !== false;
    tile.querySelector(".b-camera").hidden = video !== false;
  }

  function setReconnecting(id, on) {
    const tile = of(id);
    if (!tile) { return; }
    tile.dataset.reconnecting = on ? "true" : "false";
    tile.querySelector(".b-reconnecting").hidden = !on;
  }

  /**
   * How a hearing's feed is shown (hearing.js): "av", "video", or "audio" (the portal
   * withholds the video: a neutral tile with the name, never a black or frozen picture).
   */
  function setFeed(id, feed) {
    const tile = of(id);
    if (tile) { tile.dataset.feed = feed || "av"; }
  }

  function remove(id) {
    const tile = of(id);
    if (tile) {
      tile.querySelector("video").srcObject = null;
      tile.remove();
    }
    updateAlone();
  }

  /** A remote track arrived (RTCTrackEvent) for peer {id, name}: show it. */
  function attach(peer, event) {
    const video = (of(peer.id) || ensure(peer)).querySelector("video");
    let stream = event.streams && event.streams[0];
    if (!stream) {
      stream = video.srcObject instanceof MediaStream ? video.srcObject : new MediaStream();
      stream.addTrack(event.track);
    }
    if (video.srcObject !== stream) { video.srcObject = stream; }
    play(video);
  }

  function play(video) {
    const attempt = video.play();
    if (!attempt) { return; }
    attempt.catch((err) => {
      if (err && err.name === "NotAllowedError") {
        // No user gesture yet (a reloaded page): play muted, offer to turn the sound on.
        video.muted = true;
        video.play().catch(() => {});
        soundOn.hidden = false;
      }
    });
  }

  soundOn.addEventListener("click", () => {
    for (const video of container.querySelectorAll("video.remote")) {
      video.muted = false;
      video.play().catch(() => {});
    }
    soundOn.hidden = true;
  });

  return {of, ensure, setMedia, setReconnecting, setFeed, remove, attach, updateAlone};
}
