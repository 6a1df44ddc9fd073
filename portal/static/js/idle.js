// The idle warning on staff pages: a sign-in ends after PORTAL_IDLE_MINUTES without activity
// (portal/accounts/sessions.py). Shortly before, this shows how long is left and a "stay
// signed in" button; at the end it reloads the page, which the server answers with the
// sign-in page. The server is the judge: before warning, and at zero, it asks how long is
// really left (another tab, or being in a call, may have kept the sign-in going); asking is
// not activity.

const box = document.getElementById("idle-warning");

/** "m:ss" for a number of seconds. */
export function clockText(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function start(el) {
  const left = el.querySelector("[data-idle-left]");
  const stay = el.querySelector("[data-idle-stay]");
  let warnSeconds = Number(el.dataset.warnSeconds);
  let deadline = Date.now() + Number(el.dataset.idleSeconds) * 1000;
  let timer = null;
  let ticking = null;

  const signedOut = () => { location.reload(); };

  function schedule() {
    clearTimeout(timer);
    const untilWarning = deadline - warnSeconds * 1000 - Date.now();
    if (untilWarning > 0) {
      hide();
      timer = setTimeout(check, untilWarning);
    } else {
      show();
      timer = setTimeout(check, Math.max(0, deadline - Date.now()) + 500);
    }
  }

  function show() {
    if (el.hidden) {
      el.hidden = false;
      stay.focus();
    }
    if (!ticking) { ticking = setInterval(draw, 1000); }
    draw();
  }

  function hide() {
    el.hidden = true;
    clearInterval(ticking);
    ticking = null;
  }

  function draw() { left.textContent = clockText((deadline - Date.now()) / 1000); }

  /** Take the server's word for the time left. */
  function heard(status) {
    if (!status || !status.signed_in) { signedOut(); return; }
    warnSeconds = status.warn_seconds;
    deadline = Date.now() + status.seconds_left * 1000;
    if (status.seconds_left <= 0) { signedOut(); return; }
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
    if (status === undefined) { timer = setTimeout(check, 15000); return; }
    heard(status);
  }

  stay.addEventListener("click", async () => {
    const status = await ask(el.dataset.touchUrl, {
      method: "POST", headers: {"X-CSRFToken": el.dataset.csrf},
    });
    if (status === undefined) { return; }
    heard(status);
  });

  schedule();
}

if (box) { start(box); }
