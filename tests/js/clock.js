// A clock the tests move by hand: PeerLink's timers fire only when told to.
export class FakeClock {
  constructor() {
    this.now = 0;
    this.timers = new Map();
    this.next = 1;
  }

  setTimeout(fn, ms) {
    const id = this.next++;
    this.timers.set(id, {at: this.now + (ms || 0), fn});
    return id;
  }

  clearTimeout(id) { this.timers.delete(id); }

  /** Move on by ms, firing what falls due, in order. */
  tick(ms) {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.timers].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) { break; }
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = until;
  }
}
