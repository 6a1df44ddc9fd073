// Which simulcast layer of each feed this browser asks for (`hearing:layer`), by the width its
// tile has on screen. Publishers send three layers (full, 1/2, 1/4 size; hearing-publish.js):
// a large tile gets the full one, a strip tile the smallest. Widths are CSS pixels, not device
// pixels: a phone's speaker tile (~400 CSS px) then gets the middle layer, 640x360 from a 720p
// camera, which keeps the phone's whole downlink under 1.5 Mbit/s.

export const LARGE_WIDTH = 640; // at least this wide: substream 2
export const SMALL_WIDTH = 320; // narrower than this: substream 0
// Tiles change size in bursts (a rotated phone, the chat opening): ask once it settles.
export const DEBOUNCE_MS = 400;

/** The substream (0 smallest .. 2 full) for a tile this many CSS pixels wide. */
export function layerFor(width) {
  if (!(width > 0)) { return 0; } // hidden or not laid out: the cheapest
  if (width >= LARGE_WIDTH) { return 2; }
  if (width < SMALL_WIDTH) { return 0; }
  return 1;
}

export class LayerPicker {
  /**
   * send(participantId, substream): emit hearing:layer; timers: {setTimeout, clearTimeout};
   * delayMs: the debounce.
   */
  constructor({send, timers = globalThis, delayMs = DEBOUNCE_MS}) {
    this.send = send;
    this.timers = timers;
    this.delayMs = delayMs;
    this.sent = new Map(); // participant id -> substream last asked for
    this.pending = new Map(); // participant id -> {substream, timer}
  }

  /** A tile is now `width` wide. The first choice goes out at once, changes after a pause. */
  update(participantId, width) {
    const substream = layerFor(width);
    const waiting = this.pending.get(participantId);
    if (waiting) {
      if (waiting.substream === substream) { return; }
      this.timers.clearTimeout(waiting.timer);
      this.pending.delete(participantId);
    }
    if (!this.sent.has(participantId)) {
      this._send(participantId, substream);
      return;
    }
    if (this.sent.get(participantId) === substream) { return; } // back where it was
    const timer = this.timers.setTimeout(() => {
      this.pending.delete(participantId);
      this._send(participantId, substream);
    }, this.delayMs);
    this.pending.set(participantId, {substream, timer});
  }

  _send(participantId, substream) {
    this.sent.set(participantId, substream);
    this.send(participantId, substream);
  }

  /** What we would ask for each participant now (sent or pending). */
  wanted() {
    const out = new Map(this.sent);
    for (const [id, {substream}] of this.pending) { out.set(id, substream); }
    return out;
  }

  /** The participant's feed is gone: forget it. */
  forget(participantId) {
    const waiting = this.pending.get(participantId);
    if (waiting) { this.timers.clearTimeout(waiting.timer); }
    this.pending.delete(participantId);
    this.sent.delete(participantId);
  }

  /**
   * A new subscription (a new media session): the server starts each feed at its default
   * layer, so every choice for a feed still received (ids) goes out again, at once.
   */
  resend(ids) {
    const wanted = this.wanted();
    this.clear();
    for (const [id, substream] of wanted) {
      if (ids.has(id)) { this._send(id, substream); }
    }
  }

  clear() {
    for (const {timer} of this.pending.values()) { this.timers.clearTimeout(timer); }
    this.pending.clear();
    this.sent.clear();
  }
}
