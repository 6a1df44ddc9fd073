// The connection quality line of the call, from getStats every 2 s; the worst link decides.

/** el: #quality; links: the call's Map of PeerLinks. */
export function createQuality({el, t, links}) {
  let timer = null;

  async function update() {
    const samples = [];
    for (const link of links.values()) {
      try {
        const s = await link.sample();
        if (s) { samples.push(s); }
      } catch (e) { /* closed meanwhile */ }
    }
    // The first sample of a connection only sets the baseline for loss and bitrate.
    const usable = samples.filter((s) => s.kbps !== null);
    if (!usable.length) { el.hidden = true; delete el.dataset.level; return; }
    const rtt = Math.max(...usable.map((s) => s.rtt || 0));
    const loss = Math.max(...usable.map((s) => s.loss || 0));
    const kbps = Math.min(...usable.map((s) => s.kbps));
    let level = "good";
    if (rtt > 400 || loss > 8 || kbps < 30) { level = "poor"; }
    else if (rtt > 150 || loss > 2 || kbps < 150) { level = "fair"; }
    el.dataset.level = level;
    el.textContent = t("quality", {
      level: t("quality_" + level),
      rtt: rtt,
      loss: loss < 1 && loss > 0 ? loss.toFixed(1) : Math.round(loss),
      rate: Math.round(kbps),
    });
    el.title = t("quality_label");
    el.hidden = false;
  }

  return {
    start() { if (!timer) { timer = setInterval(update, 2000); } },
    stop() { if (timer) { clearInterval(timer); timer = null; } },
  };
}
