// The stages of the consult room and the moves between them. No DOM here: the room draws a
// stage in onChange, and tests/js drives the machine alone.

/** Stages that end this page's part in the call: nothing leads out of them (a reload starts over). */
export const TERMINAL = new Set(["denied", "ended", "left", "error"]);

/** Which stage may follow which (null: the page just loaded). Only a guest waits or is denied. */
export function transitionsFor(role) {
  const guest = role !== "host";
  const live = guest ? ["check", "lobby", "call"] : ["check", "call"];
  const ends = guest ? ["denied", "ended", "left", "error"] : ["ended", "left", "error"];
  const next = new Map([[null, new Set(["check"])]]);
  for (const stage of live) {
    // Forward by joining; back to the check when a hearing's notice must be acknowledged
    // again; from the call to the lobby when a guest is no longer admitted after a reconnect.
    next.set(stage, new Set([...live.filter((s) => s !== stage), ...ends]));
  }
  for (const stage of ends) { next.set(stage, new Set()); }
  return next;
}

export class StageMachine {
  /** transitions: from transitionsFor; onChange(stage, previous) after each move. */
  constructor({transitions, onChange = () => {}, warn = (m) => console.warn(m)}) {
    this.transitions = transitions;
    this.onChange = onChange;
    this.warn = warn;
    this.stage = null;
  }

  get terminal() { return TERMINAL.has(this.stage); }

  can(next) {
    const allowed = this.transitions.get(this.stage);
    return !!allowed && allowed.has(next);
  }

  /** Move to next; true when moved. Staying put is no change; an illegal move is refused. */
  go(next) {
    if (next === this.stage) { return false; }
    if (!this.can(next)) {
      // A late server event after the end, say: not worth an error, but worth a trace.
      this.warn(`samtale: no move from stage ${this.stage} to ${next}`);
      return false;
    }
    const previous = this.stage;
    this.stage = next;
    this.onChange(next, previous);
    return true;
  }
}
