// A hearing's screen: the active speaker's tile large, everyone else in a strip of small tiles
// below it (on a phone as on a desktop; the sizes are CSS's). Every tile keeps playing, so
// everyone is heard. Tiles are made by tiles.js in #tiles; this only moves them between the
// large area and the strip, and reports each tile's width (for the layer, hearing-layers.js).

/**
 * Whose tile is large: the speaker (not ourselves, and only someone with a tile), else the one
 * large now while they are still here, else the first.
 */
export function chooseLarge({ids, current, speaker, selfId}) {
  if (speaker !== null && speaker !== selfId && ids.includes(speaker)) { return speaker; }
  if (current !== null && ids.includes(current)) { return current; }
  return ids.length ? ids[0] : null;
}

/** container: #tiles; selfId(); resized(participantId, width): a tile's new CSS width. */
export function createLayout({container, selfId, resized}) {
  const large = document.createElement("div");
  large.className = "hearing-large";
  const strip = document.createElement("div");
  strip.className = "hearing-strip";
  let current = null;
  let speaker = null;
  let started = false;
  const widths = new Map(); // participant id -> last width

  const sizes = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const id = Number(entry.target.dataset.peerTile);
      const width = Math.round(entry.contentRect.width);
      widths.set(id, width);
      resized(id, width);
    }
  });

  const observed = new Set(); // tiles whose size is watched
  // tiles.js adds tiles to #tiles and removes them itself: place them again on each change.
  const changes = new MutationObserver(() => render());

  function tilesNow() {
    return [...container.querySelectorAll("[data-peer-tile]")];
  }

  function render() {
    if (!started) { return; }
    const tiles = tilesNow();
    const ids = tiles.map((tile) => Number(tile.dataset.peerTile)).sort((a, b) => a - b);
    current = chooseLarge({ids, current, speaker, selfId: selfId()});
    for (const tile of tiles) {
      const id = Number(tile.dataset.peerTile);
      const home = id === current ? large : strip;
      tile.classList.toggle("speaker", id === current);
      if (tile.parentElement !== home) {
        home.append(tile); // a move, in one task: the video keeps playing
        const video = tile.querySelector("video");
        if (video && video.srcObject && video.paused) { video.play().catch(() => {}); }
      }
      if (!observed.has(tile)) { observed.add(tile); sizes.observe(tile); }
    }
    for (const tile of [...observed]) {
      if (!tiles.includes(tile)) { observed.delete(tile); sizes.unobserve(tile); }
    }
    container.dataset.speaker = current === null ? "" : String(current);
  }

  return {
    /** Switch #tiles to the hearing layout. */
    start() {
      if (started) { return; }
      started = true;
      container.dataset.layout = "speaker";
      container.append(large, strip);
      changes.observe(container, {childList: true, subtree: true});
      render();
    },
    /** hearing:speaker. */
    setSpeaker(id) {
      speaker = Number(id);
      render();
    },
    render,
    /** A participant's tile's width now (0: no tile, or not laid out). */
    width(id) {
      if (widths.has(id)) { return widths.get(id); }
      const tile = container.querySelector(`[data-peer-tile="${Number(id)}"]`);
      return tile ? Math.round(tile.getBoundingClientRect().width) : 0;
    },
    forget(id) { widths.delete(id); },
    get large() { return current; },
  };
}
