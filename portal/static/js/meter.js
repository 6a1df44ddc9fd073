// The microphone level on the device check.

/** RMS level of a track through a Web Audio AnalyserNode, drawn ~30 times a second. */
export class LevelMeter {
  constructor(ctx, meterEl) {
    this.ctx = ctx;
    this.el = meterEl;
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 1024;
    this.buffer = new Float32Array(this.analyser.fftSize);
    this.source = null;
    this.level = 0;
    this._resume = () => { if (this.ctx.state === "suspended") { this.ctx.resume().catch(() => {}); } };
    // Autoplay rules may start the context suspended until the user touches the page.
    document.addEventListener("pointerdown", this._resume, true);
    document.addEventListener("keydown", this._resume, true);
    this._resume();
    this._tick = this._tick.bind(this);
    this._timer = setInterval(this._tick, 33);
  }

  attach(track) {
    if (this.source) { this.source.disconnect(); }
    this.source = this.ctx.createMediaStreamSource(new MediaStream([track]));
    this.source.connect(this.analyser);
  }

  _tick() {
    if (!this.source) { this.el.value = 0; return; }
    this.analyser.getFloatTimeDomainData(this.buffer);
    let sum = 0;
    for (let i = 0; i < this.buffer.length; i++) { sum += this.buffer[i] * this.buffer[i]; }
    const rms = Math.sqrt(sum / this.buffer.length);
    // Speech sits around 0.02–0.2 RMS; a square root spreads it over the meter. Fall slowly.
    const target = Math.min(1, Math.sqrt(rms) * 1.6);
    this.level = target > this.level ? target : this.level * 0.85 + target * 0.15;
    this.el.value = this.level;
  }

  close() {
    clearInterval(this._timer);
    document.removeEventListener("pointerdown", this._resume, true);
    document.removeEventListener("keydown", this._resume, true);
    if (this.source) { this.source.disconnect(); }
    this.ctx.close().catch(() => {});
    this.el.value = 0;
  }
}
