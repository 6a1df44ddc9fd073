// One connection's quality from getStats, for the quality line (quality.js): round-trip time,
// loss and received bitrate since the previous sample. Used by PeerLink (consults) and by a
// hearing's receive-only connection.

export class ConnectionSampler {
  /** now(): ms, for the bitrate. */
  constructor(now = () => performance.now()) {
    this.now = now;
    this._prev = null; // last sample's totals
  }

  /** {rtt (ms|null), loss (0..100|null), kbps (|null)} of pc since the previous call. */
  async sample(pc) {
    const report = await pc.getStats();
    let pairId = null;
    let rtt = null;
    let lost = 0, received = 0, bytes = 0, inbound = 0;
    const pairs = new Map();
    report.forEach((r) => {
      if (r.type === "transport" && r.selectedCandidatePairId) { pairId = r.selectedCandidatePairId; }
      if (r.type === "candidate-pair") { pairs.set(r.id, r); }
      if (r.type === "inbound-rtp") {
        inbound += 1;
        lost += Math.max(0, r.packetsLost || 0);
        received += r.packetsReceived || 0;
        bytes += r.bytesReceived || 0;
      }
    });
    let pair = pairId ? pairs.get(pairId) : null;
    if (!pair) {
      for (const p of pairs.values()) {
        if (p.state === "succeeded" && (p.nominated || !pair)) { pair = p; }
      }
    }
    if (pair && typeof pair.currentRoundTripTime === "number") {
      rtt = Math.round(pair.currentRoundTripTime * 1000);
    }
    const now = this.now();
    const prev = this._prev;
    this._prev = {now, lost, received, bytes};
    if (!prev || inbound === 0) { return {rtt, loss: null, kbps: null}; }
    const seconds = (now - prev.now) / 1000;
    const dLost = Math.max(0, lost - prev.lost);
    const dReceived = Math.max(0, received - prev.received);
    const loss = dLost + dReceived > 0 ? (100 * dLost) / (dLost + dReceived) : null;
    const kbps = seconds > 0 ? Math.max(0, (8 * (bytes - prev.bytes)) / seconds / 1000) : null;
    return {rtt, loss, kbps};
  }

  /** A new connection: the next sample only sets the baseline again. */
  reset() { this._prev = null; }
}
