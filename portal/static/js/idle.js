// The idle warning on staff pages: a sign-in ends after PORTAL_IDLE_MINUTES without activity
// (portal/accounts/sessions.py). Shortly before, this shows how long is left and a "stay
// signed in" button; at the end it reloads the page, which the server answers with the
// sign-in page. The server is the judge: before warning, and at zero, it asks how long is
// really left (another tab, or being in a call, may have kept the sign-in going); asking is
// not activity.

/** "m:ss" for a number of seconds. */
export function clockText(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

const SYSTEM = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => window.setTimeout(fn, ms),
  clearTimeout: (id) => window.clearTimeout(id),
};

/**
 * Watch the sign-in for the warning box `el` (#idle-warning, its data-* from base.html).
 * clock: {now, setTimeout, clearTimeout}; fetch and reload as the page's, replaceable in tests.
 */
export function watchIdle(el, {clock = SYSTEM, fetch = window.fetch.bind(window),
                               reload = () => location.reload()} = {}) {
  const left = el.querySelector("[data-idle-left]");
  const stay = el.querySelector("[data-idle-stay]");
  let warnSeconds = Number(el.dataset.warnSeconds);
  let deadline = clock.now() + Number(el.dataset.idleSeconds) * 1000;
  let timer = null;
  let tick = null;

  function schedule() {
    clock.clearTimeout(timer);
    const untilWarning = deadline - warnSeconds * 1000 - clock.now();
    if (untilWarning > 0) {
      hide();
      timer = clock.setTimeout(check, untilWarning);
    } else {
      show();
      timer = clock.setTimeout(check, Math.max(0, deadline - clock.now()) + 500);
    }
  }

  function show() {
    if (el.hidden) {
      el.hidden = false;
      stay.focus();
    }
    draw();
  }

  function hide() {
    el.hidden = true;
    clock.clearTimeout(tick);
  }

  function draw() {
    left.textContent = clockText((deadline - clock.now()) / 1000);
    clock.clearTimeout(tick);
    tick = clock.setTimeout(draw, 1000);
  }

  /** Take the server's word for the time left. */
  function heard(status) {
    if (!status || !status.signed_in || status.seconds_left <= 0) {
      hide();
      clock.clearTimeout(timer);
      reload();
      return;
    }
    warnSeconds = status.warn_seconds;
    deadline = clock.now() + status.seconds_left * 1000;
    schedule();
  }

  async function ask(url, options) {
    try {
      const response = await fetch(url, {credentials: "same-origin", ...options});
      return response.ok || response.status === 401 ? await response.json() : null;
    } catch {
      return undefined; // offline for a moment: look again shortly
    }
  }

  async function check() {
    const status = await ask(el.dataset.statusUrl);
    if (status === undefined) { timer = clock.setTimeout(check, 15000); return; }
    heard(status);
  }

  async function stayed() {
    const status = await ask(el.dataset.touchUrl, {
      method: "POST", headers: {"X-CSRFToken": el.dataset.csrf},
    });
    if (status !== undefined) { heard(status); }
  }

  stay.addEventListener("click", stayed);
  schedule();
}

const box = document.getElementById("idle-warning");
if (box) { watchIdle(box); }
